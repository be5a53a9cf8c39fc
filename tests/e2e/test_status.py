"""zdd --status against the sandbox: real HAProxy marathon-lbs, real task processes, clients throughout.

The status of a deployment stopped halfway and of a hybrid group, read from
two real HAProxy instances; the command it prints then finishes the job.
Every zdd run prints its output (visible with ``-s``).
"""

import json
import shlex
import time

import pytest

from tests.e2e.test_deploy import UnderLoad, assert_exit, assert_no_failure
from tests.helpers import refusing_hook
from tests.sandbox.cluster import zdd_command

pytestmark = pytest.mark.e2e


def status(cluster, path, *args):
    """``zdd --status`` (text, or the status event with --output json), printed; (exit code, text or event)."""
    result = cluster.zdd(path, "--status", *args, timeout_s=60)
    print("\n$ zdd ... --status %s\n%s%s" % (" ".join(args), result.stdout, result.stderr))
    if "json" in args:
        events = [json.loads(line) for line in result.stdout.splitlines()]
        return result.returncode, next(event for event in events if event["event"] == "status")
    return result.returncode, result.stdout


def finish(cluster, run, command):
    """Run a command --status printed (it starts with ``zdd``), measured as ``run.zdd`` measures its runs."""
    started_mark, started = run.mark(), time.monotonic()
    result = cluster.run([*zdd_command(), *shlex.split(command)[1:]])
    run.record(command.rsplit(" ", 1)[-1], result.returncode, time.monotonic() - started, run.between(started_mark))
    return result


def test_status_of_a_stopped_deployment_then_its_finish_command(cluster_factory):
    cluster = cluster_factory(lbs=2)
    cluster.seed_first(5)
    path = cluster.write_app(cluster.app(5))
    writes_before = len(cluster.sim.writes())
    with UnderLoad(cluster, "status of a stopped deployment") as run:
        stopped = run.zdd(path, "--pre-kill-hook", refusing_hook(cluster.workdir, 2), step="hook refuses kill 3")
        assert_exit(stopped, 12)
        cluster.wait_idle()
        written = len(cluster.sim.writes())
        code, text = status(cluster, path)
        assert code == 0, text
        code, event = status(cluster, path, "--output", "json")
        assert code == 0
        assert len(cluster.sim.writes()) == written, "--status wrote nothing"
        assert (event["state"], event["step"], event["steps"]) == ("stuck", 3, 4)
        assert event["next_step"] == "killing 1, scaling to 5"
        assert [(app["id"], app["instances"], app["healthy"]) for app in event["apps"]] == [
            ("/web-blue", 3, 3), ("/web-green", 3, 3)]
        for lb in event["lbs"]:
            assert len(lb["pids"]) == 2 and lb["reloading"] is False and lb["error"] is None
            counts = {c["colour"]: (c["up"], c["maint"], c["drained"]) for c in lb["listeners"]}
            assert counts == {"blue": (2, 1, 1), "green": (3, 0, 0)}, lb
        assert "verdict: deployment stopped at step 3 of 4" in text
        finished = finish(cluster, run, event["finish_command"])
        assert_exit(finished)
        code, event = status(cluster, path, "--output", "json")
        assert (code, event["state"]) == (0, "at_rest")
    assert_no_failure(run.load)
    assert cluster.apps() == {"/web-green": (5, 5)}
    assert len(cluster.sim.writes()) > writes_before


def test_status_of_a_hybrid_group_then_complete_cur(cluster):
    cluster.seed_first(4)
    path = cluster.write_app(cluster.app(4))
    with UnderLoad(cluster, "status of a hybrid group") as run:
        assert_exit(run.zdd(path, "--new-instances", "2"))
        cluster.wait_idle()
        code, text = status(cluster, path)
        assert code == 0
        assert "verdict: hybrid: green 2 (its goal) and blue 2 serve together, of 4" in text
        code, event = status(cluster, path, "--output", "json")
        lb = event["lbs"][0]
        assert {c["colour"]: (c["up"], c["maint"]) for c in lb["listeners"]} == {"blue": (2, 0), "green": (2, 0)}
        assert event["finish_command"].endswith("--complete-cur")
        assert_exit(finish(cluster, run, event["finish_command"]))
    assert_no_failure(run.load)
    assert cluster.apps() == {"/web-green": (4, 4)}
