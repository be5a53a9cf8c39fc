"""zdd --on-failure rollback end to end, and --output json, under continuous load.

Two marathon-lbs, real HAProxy, real task processes, the real zdd command.
Each scenario asserts zero failed client requests during the deployment AND
the rollback, and the final Marathon state. Every zdd run here writes JSON
Lines events (--output json): they are checked against the README's schema
(``check_schema`` of tests/test_events.py), and the rollback's duration is
read from them (``rollback`` to ``rolled_back``).

With -s each scenario prints one line: scenario, zdd exit code, zdd
duration, rollback duration, requests, failures.
"""

import json
import stat
import time

import pytest

from tests.test_events import check_schema

pytestmark = pytest.mark.e2e

LBS = 2
SETTLE_S = 1.0


@pytest.fixture
def cluster2(cluster_factory):
    """A started Cluster with two marathon-lbs."""
    return cluster_factory(lbs=LBS)


class Run:
    """One zdd run under load: its result, events, load and timings."""

    def __init__(self, result, load, seconds, offset_s):
        self.result = result
        self.load = load
        self.seconds = seconds
        self.offset_s = offset_s  # zdd started this many seconds after the load
        self.events = [json.loads(line) for line in result.stdout.splitlines()]

    @property
    def code(self):
        return self.result.returncode

    def kinds(self):
        return [event["event"] for event in self.events]

    def first(self, kind):
        return next(event for event in self.events if event["event"] == kind)

    def rollback_s(self):
        """Seconds from the ``rollback`` event to ``rolled_back``, or None without a rollback."""
        kinds = self.kinds()
        if "rollback" not in kinds or "rolled_back" not in kinds:
            return None
        return self.first("rolled_back")["elapsed_s"] - self.first("rollback")["elapsed_s"]

    def timeline(self):
        """The events on the load generator's time axis, one line each (for failure reports)."""
        lines = []
        for event in self.events:
            detail = {key: value for key, value in event.items()
                      if key not in ("event", "time", "elapsed_s", "app", "lbs") or key == "app" and
                      isinstance(value, str)}
            if event["event"] == "poll":
                detail["lbs"] = [{k: v for k, v in lb.items() if k != "url"} for lb in event["lbs"]]
            lines.append("  load t=%.3fs zdd %.3fs %s %s" % (
                self.offset_s + event["elapsed_s"], event["elapsed_s"], event["event"], json.dumps(detail)[:300]))
        return "\n".join(lines)

    def diagnosis(self):
        return "%s\nzdd events:\n%s\nzdd log:\n%s" % (self.load.summary(), self.timeline(), self.result.stderr)

    def report(self, scenario):
        counts = self.load.counts()
        rollback_s = self.rollback_s()
        print("\n%s: zdd exit %d in %.1f s; rollback %s; requests %d, failed %d" % (
            scenario, self.code, self.seconds, "-" if rollback_s is None else "%.1f s" % rollback_s,
            counts["requests"], counts["failed"]))


def zdd_under_load(cluster, app, *args, name="app.json", marathon_idle=True):
    """Run zdd with --output json while clients hit every marathon-lb, until HAProxy shows the end state.

    ``marathon_idle=False``: a run that leaves a Marathon deployment going
    (a new app that never becomes healthy); only the marathon-lbs are awaited.
    """
    path = cluster.write_app(app, name)
    load = cluster.load()
    with load:
        time.sleep(SETTLE_S)
        offset_s = time.monotonic() - load._started_at
        started = time.monotonic()
        result = cluster.zdd(path, "--output", "json", *args, timeout_s=300)
        seconds = time.monotonic() - started
        # the last reloads (after the delete) happen under load too
        if marathon_idle:
            cluster.wait_idle()
        else:
            for lb in cluster.lbs:
                lb.wait_synced()
        time.sleep(SETTLE_S)
    return Run(result, load, seconds, offset_s)


def assert_no_failure(run):
    counts = run.load.counts()
    assert counts["requests"] > 500, run.diagnosis()
    assert counts["failed"] == 0, run.diagnosis()


def assert_rolled_back(run, cluster, instances):
    assert run.code == 13, run.diagnosis()
    check_schema(run.events)
    kinds = run.kinds()
    assert kinds.index("rollback") < kinds.index("rolled_back"), kinds
    final = run.events[-1]
    assert final["result"] == "rolled_back" and final["exit_code"] == 13, final
    assert {"event": "deleted", "app": "/web-green"}.items() <= run.events[kinds.index("rolled_back") - 1].items()
    assert cluster.apps() == {"/web-blue": (instances, instances)}


def counting_hook(workdir, succeed_calls):
    """A pre-kill hook that exits 0 for its first ``succeed_calls`` calls and 1 after; returns (path, counter)."""
    counter = workdir / "hook-calls"
    hook = workdir / "pre-kill-hook.sh"
    hook.write_text(
        "#!/bin/sh\n"
        "# $1: the old app, $2: the task ids to kill, $3: the new app (JSON)\n"
        "n=$(( $(cat '%s' 2>/dev/null || echo 0) + 1 ))\n"
        "echo $n > '%s'\n"
        "[ $n -le %d ]\n" % (counter, counter, succeed_calls))
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    return hook, counter


def hook_calls(counter):
    return int(counter.read_text()) if counter.exists() else 0


def test_never_healthy_new_app_is_rolled_back(cluster2):
    cluster2.seed_first(3)
    app = cluster2.app(3, SIM_HEALTHY="false")
    run = zdd_under_load(cluster2, app, "--on-failure", "rollback", "--stall-timeout", "8")
    run.report("never healthy, --on-failure rollback")
    assert_rolled_back(run, cluster2, 3)
    assert "no progress" in run.first("rollback")["reason"]
    assert_no_failure(run)
    assert set(run.load.counts()["by_colour"]) == {"blue"}


def test_hook_refusing_halfway_is_rolled_back(cluster2):
    cluster2.seed_first(5)
    hook, counter = counting_hook(cluster2.workdir, succeed_calls=1)
    run = zdd_under_load(cluster2, cluster2.app(5), "--on-failure", "rollback", "--pre-kill-hook", str(hook))
    run.report("hook refuses its 2nd call (5 instances), --on-failure rollback")
    assert hook_calls(counter) == 2
    assert_rolled_back(run, cluster2, 5)
    assert run.kinds().count("killed") == 1
    rollback = run.first("rollback")
    assert "pre-kill hook" in rollback["reason"] and rollback["target"] == 5
    assert {"event": "scaled", "app": "/web-blue", "instances": 5}.items() <= \
        run.events[run.kinds().index("rollback") + 1].items()
    assert_no_failure(run)
    assert set(run.load.counts()["by_colour"]) == {"blue", "green"}


def test_hook_refusing_the_first_kill_is_rolled_back(cluster2):
    cluster2.seed_first(3)
    hook, counter = counting_hook(cluster2.workdir, succeed_calls=0)
    run = zdd_under_load(cluster2, cluster2.app(3), "--on-failure", "rollback", "--pre-kill-hook", str(hook))
    run.report("hook refuses the first kill, --on-failure rollback")
    assert hook_calls(counter) == 1
    assert_rolled_back(run, cluster2, 3)
    assert "killed" not in run.kinds()
    # blue is at its target, green serves as marathon-lb's new app: zdd scales blue up and straight back so that
    # marathon-lb calls blue new and drains green before the delete
    assert [(e["app"], e["instances"]) for e in run.events if e["event"] == "scaled"] == [("/web-blue", 4),
                                                                                           ("/web-blue", 3)]
    assert_no_failure(run)
    assert set(run.load.counts()["by_colour"]) == {"blue", "green"}


def test_never_healthy_new_app_stops_then_complete_prev_goes_back(cluster2):
    cluster2.seed_first(3)
    app = cluster2.app(3, SIM_HEALTHY="false")
    run = zdd_under_load(cluster2, app, "--stall-timeout", "8", marathon_idle=False)
    run.report("never healthy, --on-failure stop")
    assert run.code == 11, run.diagnosis()
    check_schema(run.events)
    assert run.events[-1]["result"] == "failed" and run.events[-1]["resume_command"].endswith("--resume")
    assert "rollback" not in run.kinds()
    assert cluster2.apps() == {"/web-blue": (3, 3), "/web-green": (1, 0)}
    assert_no_failure(run)

    back = zdd_under_load(cluster2, app, "--complete-prev", "--stall-timeout", "30", marathon_idle=False)
    back.report("--complete-prev after the stall")
    assert back.code == 0, back.diagnosis()
    check_schema(back.events)
    assert back.events[-1]["result"] == "deployed"
    assert cluster2.apps() == {"/web-blue": (3, 3)}
    assert_no_failure(back)
    assert set(run.load.counts()["by_colour"]) == set(back.load.counts()["by_colour"]) == {"blue"}


def test_json_events_of_a_full_deployment(cluster2):
    cluster2.seed_first(3)
    run = zdd_under_load(cluster2, cluster2.app(3))
    run.report("blue -> green, --output json")
    assert run.code == 0, run.diagnosis()
    check_schema(run.events)  # every stdout line parsed as JSON in Run
    final = run.events[-1]
    assert final["event"] == "finished" and final["result"] == "deployed" and final["exit_code"] == 0
    assert final["new_app"] == "/web-green" and final["old_app"] == "/web-blue"
    lb_urls = {lb.url.rstrip("/") for lb in cluster2.lbs}
    polls = [event for event in run.events if event["event"] == "poll" and event["lbs"]]
    assert polls
    for poll in polls:
        assert {lb["url"].rstrip("/") for lb in poll["lbs"]} == lb_urls, poll
    counted = [poll for poll in polls if all("error" not in lb for lb in poll["lbs"])]
    assert counted
    assert any(all(lb["drained"] >= 1 for lb in poll["lbs"]) for poll in counted)
    assert cluster2.apps() == {"/web-green": (3, 3)}
    assert_no_failure(run)
    assert set(run.load.counts()["by_colour"]) == {"blue", "green"}
