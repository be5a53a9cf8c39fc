"""zdd under faults, end to end: a flaky, slow or dead Marathon; a marathon-lb down, lying or reloading.

Every scenario runs the real zdd command against the sandbox (3 instances,
blue -> green) under continuous client load, with a fault injected through
the simulator's or the marathon-lb stand-in's knobs. zdd either completes,
or stops with its documented exit code while the cluster still serves; then
``--resume``, with the fault removed, completes the deployment. Zero failed
client requests throughout, in every scenario.

Short timeouts keep each scenario quick: ``--request-timeout 1``, a
``--deadline`` on every run (its run time, as zdd measures it, must stay
within the deadline plus one request timeout: a correctness bound, checked
on zdd's own clock), and ``--stall-timeout`` / ``--max-wait`` per scenario.
"""

import json
import subprocess
import threading
import time

import pytest

from tests.sandbox.load import LoadGenerator

pytestmark = pytest.mark.e2e

INSTANCES = 3
REQUEST_TIMEOUT_S = 1.0
DEADLINE_S = 90.0
ZDD_TIMEOUT_S = 240
SETTLE_S = 1.0
SERVING_CHECK_S = 2.0  # load kept running after zdd stopped, before the resume
STARTUP_ALLOWANCE_S = 10.0  # wall-clock only: the interpreter starting on a loaded machine, before zdd's clock
FINAL_STATE = {"/web-green": (INSTANCES, INSTANCES)}


def first_kill_sent(cluster):
    """True once zdd has killed old tasks: the deployment is halfway."""
    return any(record.path.startswith("/v2/tasks/delete") for record in cluster.sim.writes())


class Run:
    """One zdd run: exit code, stderr, JSON events, run time (zdd's own and wall-clock)."""

    def __init__(self, args, deadline_s, process, stdout, stderr, wall_s):
        self.args = args
        self.deadline_s = deadline_s
        self.code = process.returncode
        self.stderr = stderr
        self.events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        finished = [event for event in self.events if event["event"] == "finished"]
        self.finished = finished[-1] if finished else {}
        self.duration_s = self.finished.get("duration_s")
        self.wall_s = wall_s

    def check_bound(self):
        """zdd's run time stays within --deadline plus one request timeout (a correctness bound).

        Checked on zdd's own clock (the finished event's duration_s, which
        starts with the deadline), and, with an allowance for the interpreter
        starting, on the wall clock around the process, which also sees a hang
        after the last event.
        """
        assert self.duration_s is not None, "no finished event:\n" + self.stderr
        bound_s = self.deadline_s + REQUEST_TIMEOUT_S
        assert self.duration_s <= bound_s, f"zdd ran {self.duration_s} s with --deadline {self.deadline_s}"
        assert self.wall_s <= bound_s + STARTUP_ALLOWANCE_S, f"the zdd process took {self.wall_s:.1f} s"


def run_zdd(cluster, path, *args, deadline_s=DEADLINE_S, fault=None, when=None):
    """Run zdd (JSON events, short request timeout, a deadline); ``fault()`` once ``when()`` holds."""
    argv = ("--output", "json", "--request-timeout", str(REQUEST_TIMEOUT_S), "--deadline", str(deadline_s), *args)
    injected = threading.Event()
    stop = threading.Event()

    def inject_when_ready():
        while not stop.is_set():
            if when is None or when():
                fault()
                injected.set()
                return
            time.sleep(0.05)

    injector = threading.Thread(target=inject_when_ready, daemon=True) if fault else None
    if injector and when is None:
        inject_when_ready()
        injector = None
    started = time.monotonic()
    process = cluster.zdd_popen(path, *argv)
    if injector:
        injector.start()
    try:
        stdout, stderr = process.communicate(timeout=ZDD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail("zdd hung:\n" + stderr)
    finally:
        stop.set()
        if injector:
            injector.join()
    run = Run(argv, deadline_s, process, stdout, stderr, time.monotonic() - started)
    assert "Traceback" not in stderr, stderr
    if fault:
        assert injected.is_set(), "the fault was never injected:\n" + stderr
    return run


def fault_scenario(cluster, name, *args, fault=None, when=None, expect=0, heal=None, deadline_s=DEADLINE_S,
                   load_urls=None):
    """Blue -> green under load with a fault; when zdd stops (``expect`` != 0), heal and resume.

    Returns (first run, resume run or None, load counts).
    """
    path = cluster.write_app(cluster.app(INSTANCES))
    load = cluster.load() if load_urls is None else LoadGenerator(load_urls, keepalive_clients=2, fresh_clients=2)
    resumed = None
    with load:
        time.sleep(SETTLE_S)
        first = run_zdd(cluster, path, *args, deadline_s=deadline_s, fault=fault, when=when)
        assert first.code == expect, first.stderr
        first.check_bound()
        if expect:
            # stopped halfway: both colours exist, and the cluster keeps serving
            assert set(cluster.apps()) == {"/web-blue", "/web-green"}, first.stderr
            assert "--resume" in first.finished.get("resume_command", ""), first.finished
            time.sleep(SERVING_CHECK_S)
            assert load.counts()["failed"] == 0, load.summary()
            if heal:
                heal()
            resumed = run_zdd(cluster, path, *args, "--resume")
            assert resumed.code == 0, resumed.stderr
            resumed.check_bound()
        time.sleep(SETTLE_S)
    counts = load.counts()
    resume_text = "" if resumed is None else "; resume exit %d in %.1f s, %d step(s)" % (
        resumed.code, resumed.duration_s, resumed.finished.get("steps", 0))
    faults = {kind: n for kind, n in cluster.sim.faults_injected.items() if n}
    rereads = first.stderr.count("reading Marathon again") + first.stderr.count("creating it again")
    print("\n%s: zdd exit %d in %.1f s (wall %.1f s), %d step(s), %d write(s) read again%s; injected %s; "
          "requests %d, failed %d" % (
              name, first.code, first.duration_s, first.wall_s, first.finished.get("steps", 0), rereads,
              resume_text, faults or "-", counts["requests"], counts["failed"]))
    assert counts["requests"] > 500, load.summary()
    assert counts["failed"] == 0, load.summary()
    assert cluster.apps() == FINAL_STATE
    return first, resumed, counts


# -- Marathon faults ------------------------------------------------------------------------------


WRITES = "POST|PUT|DELETE"


def test_marathon_error_rate_20_percent(cluster):
    """A fifth of zdd's Marathon reads and of its writes answer 500 or 503: the deployment completes.

    Reads and writes are counted apart, so that the fifth write (of create,
    kill, scale, kill, scale, delete) fails: read again, decided again.
    """
    cluster.deploy_first(INSTANCES)
    sim = cluster.sim

    def fault():
        sim.inject("error", rate=0.2, method=WRITES, status=(500, 503), client_regex="^zdd/")
        sim.inject("error", rate=0.2, method="GET", status=(500, 503), client_regex="^zdd/")

    first, _, _ = fault_scenario(cluster, "Marathon error rate 20%", "--stall-timeout", "30", fault=fault)
    assert sim.faults_injected["error"] >= 5
    assert "reading Marathon again" in first.stderr


def test_marathon_5xx_burst(cluster):
    """Halfway, the next 3 reads and the next 2 writes of zdd answer 5xx: it goes on and completes."""
    cluster.deploy_first(INSTANCES)
    sim = cluster.sim

    def fault():
        sim.inject("error", count=2, method=WRITES, status=(500, 503), client_regex="^zdd/")
        sim.inject("error", count=3, method="GET", status=(500, 503, 502), client_regex="^zdd/")

    first, _, _ = fault_scenario(cluster, "Marathon 5xx burst", "--stall-timeout", "30", fault=fault,
                                 when=lambda: first_kill_sent(cluster))
    assert sim.faults_injected["error"] == 5
    assert first.stderr.count("reading Marathon again") == 2


def test_marathon_slower_than_the_request_timeout(cluster):
    """Halfway, for 3 s every Marathon answer takes 2.5 s (zdd gives up after 1 s): zdd completes."""
    cluster.deploy_first(INSTANCES)
    sim = cluster.sim
    fault_scenario(
        cluster, "Marathon slow for 3 s", "--stall-timeout", "30",
        fault=lambda: sim.inject("delay", delay_s=2.5, for_s=3.0),
        when=lambda: first_kill_sent(cluster))
    assert sim.faults_injected["delay"] >= 1


def test_marathon_drops_connections(cluster):
    """A quarter of zdd's Marathon connections (reads and writes apart) close without an answer: zdd completes."""
    cluster.deploy_first(INSTANCES)
    sim = cluster.sim

    def fault():
        sim.inject("drop", rate=0.25, method=WRITES, client_regex="^zdd/")
        sim.inject("drop", rate=0.25, method="GET", client_regex="^zdd/")

    first, _, _ = fault_scenario(cluster, "Marathon drops 25% of connections", "--stall-timeout", "30",
                                 fault=fault)
    assert sim.faults_injected["drop"] >= 3
    assert "reading Marathon again" in first.stderr


def test_marathon_down_for_good(cluster):
    """Halfway, Marathon refuses every connection: exit 6, the cluster serves on; resume completes."""
    cluster.deploy_first(INSTANCES)
    sim = cluster.sim
    first, _, _ = fault_scenario(
        cluster, "Marathon down", "--stall-timeout", "30",
        fault=sim.go_down, when=lambda: first_kill_sent(cluster), expect=6, heal=sim.come_up)
    assert "connection refused" in first.stderr


# -- marathon-lb faults ---------------------------------------------------------------------------


def test_one_marathon_lb_down(cluster_factory):
    """Halfway, one of 2 marathon-lbs stops: zdd waits, stalls, exit 5; back up, resume completes.

    Clients use the other marathon-lb (as a health-checked DNS name or an
    external balancer would), whose frontend must lose nothing.
    """
    cluster = cluster_factory(lbs=2)
    cluster.deploy_first(INSTANCES)
    down = cluster.lbs[1]
    first, _, _ = fault_scenario(
        cluster, "one marathon-lb down", "--stall-timeout", "4", "--max-wait", "60",
        fault=down.go_down, when=lambda: first_kill_sent(cluster), expect=5, heal=down.come_up,
        load_urls=cluster.frontend_urls()[:1])
    assert "did not answer" in first.stderr and "connection refused" in first.stderr


def test_marathon_lb_stats_garbage(cluster):
    """Halfway, the stats URL answers an HTML page: no progress, exit 5 after the stall timeout; resume."""
    cluster.deploy_first(INSTANCES)
    lb = cluster.lbs[0]
    first, _, _ = fault_scenario(
        cluster, "stats garbage", "--stall-timeout", "4", "--max-wait", "60",
        fault=lb.garble_stats, when=lambda: first_kill_sent(cluster), expect=5,
        heal=lambda: lb.garble_stats(None))
    assert "no CSV header" in first.stderr or "stats" in first.stderr


def test_marathon_lb_keeps_3_pids(cluster):
    """An HAProxy that always keeps its previous worker (3 PIDs): each step goes on after --max-wait."""
    cluster.deploy_first(INSTANCES)
    lb = cluster.lbs[0]
    lb.keep_old_worker()
    try:
        first, _, _ = fault_scenario(cluster, "HAProxy keeps 3 PIDs", "--max-wait", "3", "--stall-timeout", "30")
    finally:
        lb.keep_old_worker(False)
    assert "reloading (3 HAProxy PIDs)" in first.stderr
    assert "--max-wait (3 s) passed" in first.stderr


def test_deadline_passes_mid_deployment(cluster):
    """--deadline 5 passes halfway: exit 10, the cluster serves on; resume completes."""
    cluster.deploy_first(INSTANCES)
    first, resumed, _ = fault_scenario(cluster, "deadline 5 s", "--stall-timeout", "30", deadline_s=5.0, expect=10)
    assert "--deadline passed" in first.stderr
    assert resumed.finished["steps"] >= 1
