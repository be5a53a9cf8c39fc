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
import os
import subprocess
import threading
import time

import pytest

from tests.sandbox.fakelb import ProxiedMarathonLB
from tests.sandbox.load import LoadGenerator

pytestmark = pytest.mark.e2e

INSTANCES = 3
REQUEST_TIMEOUT_S = 1.0
DEADLINE_S = 90.0
ZDD_TIMEOUT_S = 240
SETTLE_S = 1.0
SERVING_CHECK_S = 2.0  # load kept running after zdd stopped, before the resume
# --stall-timeout of a scenario that stops at a fault injected at the first kill: longer than any wait before
# it, where zdd waits for a green task to start. In a whole e2e run side by side (-n 4) on 2 cores, a task took up
# to 5.2 s from launch to its first passed check (p99 4.2 s, of 255); 4 s once ended a run before the fault.
HALFWAY_STALL_TIMEOUT_S = 12
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
    rereads = sum(first.stderr.count(text) for text in ("reading Marathon again", "creating it again"))
    print("\n%s: zdd exit %d in %.1f s (wall %.1f s), %d step(s), %d write(s) read again, %d wait(s) for Marathon%s; "
          "injected %s; requests %d, failed %d" % (
              name, first.code, first.duration_s, first.wall_s, first.finished.get("steps", 0), rereads,
              len(marathon_waits(first)), resume_text, faults or "-", counts["requests"], counts["failed"]))
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
    cluster.seed_first(INSTANCES)
    sim = cluster.sim

    def fault():
        sim.inject("error", rate=0.2, method=WRITES, status=(500, 503), client_regex="^zdd/")
        sim.inject("error", rate=0.2, method="GET", status=(500, 503), client_regex="^zdd/")

    first, _, _ = fault_scenario(cluster, "Marathon error rate 20%", "--stall-timeout", "30", fault=fault)
    assert sim.faults_injected["error"] >= 5
    assert "reading Marathon again" in first.stderr


def test_marathon_5xx_burst(cluster):
    """Halfway, the next 3 reads and the next 2 writes of zdd answer 5xx: it goes on and completes."""
    cluster.seed_first(INSTANCES)
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
    cluster.seed_first(INSTANCES)
    sim = cluster.sim
    fault_scenario(
        cluster, "Marathon slow for 3 s", "--stall-timeout", "30",
        fault=lambda: sim.inject("delay", delay_s=2.5, for_s=3.0),
        when=lambda: first_kill_sent(cluster))
    assert sim.faults_injected["delay"] >= 1


def test_marathon_answers_trickle(cluster):
    """Halfway, for 8 s zdd's Marathon reads trickle, a byte every 50 ms: each cut at 1 s, a read fails, waited for."""
    cluster.seed_first(INSTANCES)
    sim = cluster.sim
    first, _, _ = fault_scenario(
        cluster, "Marathon answers trickle for 8 s", "--stall-timeout", "30",
        fault=lambda: sim.inject("trickle", method="GET", for_s=8.0, client_regex="^zdd/"),
        when=lambda: first_kill_sent(cluster))
    assert sim.faults_injected["trickle"] >= 4
    assert "Marathon does not answer" in first.stderr
    assert "no whole answer within the request timeout (1 s)" in first.stderr


def test_marathon_drops_connections(cluster):
    """A quarter of zdd's Marathon connections (reads and writes apart) close without an answer: zdd completes."""
    cluster.seed_first(INSTANCES)
    sim = cluster.sim

    def fault():
        sim.inject("drop", rate=0.25, method=WRITES, client_regex="^zdd/")
        sim.inject("drop", rate=0.25, method="GET", client_regex="^zdd/")

    first, _, _ = fault_scenario(cluster, "Marathon drops 25% of connections", "--stall-timeout", "30",
                                 fault=fault)
    assert sim.faults_injected["drop"] >= 3
    assert "reading Marathon again" in first.stderr


def test_marathon_down_for_good(cluster):
    """Halfway, Marathon refuses every connection: zdd waits --stall-timeout, exit 6; resume completes."""
    cluster.seed_first(INSTANCES)
    sim = cluster.sim
    first, _, _ = fault_scenario(
        cluster, "Marathon down", "--stall-timeout", str(HALFWAY_STALL_TIMEOUT_S),
        fault=sim.go_down, when=lambda: first_kill_sent(cluster), expect=6, heal=sim.come_up)
    assert "connection refused" in first.stderr and "Marathon did not answer for" in first.stderr
    check_outage_bound(first, HALFWAY_STALL_TIMEOUT_S)


# -- Marathon away from zdd only (marathon-lb keeps syncing): a leader election, a flaky proxy --------


OUTAGE_S = 10.0


def first_write_sent(cluster):
    return bool(cluster.sim.writes())


def marathon_waits(run):
    """The waiting events for a Marathon that does not answer."""
    return [event for event in run.events
            if event["event"] == "waiting" and event["reason"].startswith("Marathon does not answer")]


def check_outage_bound(run, stall_timeout_s):
    """zdd gave up within --stall-timeout plus one read's attempts of the outage's first wait (its own clock)."""
    waits = marathon_waits(run)
    assert waits, run.stderr
    one_read_s = 4 * REQUEST_TIMEOUT_S + 3.5  # GET_ATTEMPTS, and the backoff between them
    assert run.duration_s - waits[0]["elapsed_s"] <= stall_timeout_s + one_read_s, run.stderr


@pytest.mark.parametrize("kind", ["503", "dropped"])
def test_marathon_away_from_zdd_for_10_s_mid_deployment(cluster_factory, kind):
    """Halfway, with 2 marathon-lbs, Marathon answers zdd 503 (or drops its connections) for 10 s: zdd waits, exit 0."""
    cluster = cluster_factory(lbs=2)
    cluster.seed_first(INSTANCES)
    sim = cluster.sim

    def fault():
        if kind == "503":
            sim.inject("error", status=503, for_s=OUTAGE_S, client_regex="^zdd/")
        else:
            sim.inject("drop", for_s=OUTAGE_S, client_regex="^zdd/")

    first, _, _ = fault_scenario(cluster, "Marathon away from zdd for 10 s (%s)" % kind, "--stall-timeout", "30",
                                 fault=fault, when=lambda: first_kill_sent(cluster))
    waits = marathon_waits(first)
    assert waits and "Marathon answers again" in first.stderr, first.stderr
    print("  waited for Marathon: %d look(s), longest %.1f s" % (len(waits), max(e["waited_s"] for e in waits)))


def test_marathon_away_from_zdd_for_10_s_during_a_rollback(cluster_factory):
    """The pre-kill hook refuses, zdd rolls back; Marathon answers zdd 503 for 10 s from the rollback's writes on."""
    cluster = cluster_factory(lbs=2)
    cluster.seed_first(INSTANCES)
    sim = cluster.sim
    hook = cluster.workdir / "refusing-hook.sh"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)

    def rolling_back():
        """Both writes of the hand-over sent (blue scaled to 4 and back to 3): the rollback waits for a drain now."""
        return sum(record.method == "PUT" and record.path == "/v2/apps/web-blue" for record in sim.writes()) == 2

    path = cluster.write_app(cluster.app(INSTANCES))
    with cluster.load() as load:
        time.sleep(SETTLE_S)
        run = run_zdd(cluster, path, "--on-failure", "rollback", "--pre-kill-hook", str(hook), "--stall-timeout", "30",
                      fault=lambda: sim.inject("error", status=503, for_s=OUTAGE_S, client_regex="^zdd/"),
                      when=rolling_back)
        cluster.wait_idle()
        time.sleep(SETTLE_S)
    counts = load.counts()
    kinds = [event["event"] for event in run.events]
    waits = [index for index, event in enumerate(run.events) if event in marathon_waits(run)]
    print("\nMarathon away from zdd for 10 s during a rollback: zdd exit %d in %.1f s, %d Marathon wait(s); "
          "injected %s; requests %d, failed %d" % (run.code, run.duration_s, len(waits),
                                                    sim.faults_injected["error"], counts["requests"],
                                                    counts["failed"]))
    assert run.code == 13, run.stderr
    run.check_bound()
    assert waits and all(kinds.index("rollback") < index < kinds.index("rolled_back") for index in waits), kinds
    assert counts["requests"] > 500, load.summary()
    assert counts["failed"] == 0, load.summary()
    assert cluster.apps() == {"/web-blue": (INSTANCES, INSTANCES)}


def test_marathon_away_from_zdd_longer_than_the_stall_timeout(cluster_factory):
    """Halfway, Marathon answers zdd 503 for good: exit 6 after --stall-timeout; healed, --resume completes."""
    cluster = cluster_factory(lbs=2)
    cluster.seed_first(INSTANCES)
    sim = cluster.sim
    first, resumed, _ = fault_scenario(
        cluster, "Marathon away from zdd for good", "--stall-timeout", str(HALFWAY_STALL_TIMEOUT_S),
        fault=lambda: sim.inject("error", status=503, client_regex="^zdd/"),
        when=lambda: first_kill_sent(cluster), expect=6, heal=sim.clear_faults)
    assert "Marathon did not answer for" in first.stderr and "(as last seen)" in first.stderr
    check_outage_bound(first, HALFWAY_STALL_TIMEOUT_S)
    assert resumed.finished["steps"] >= 1


RANDOM_RUNS = int(os.environ.get("ZDD_E2E_RANDOM_RUNS", "1"))


@pytest.mark.parametrize("seed", range(RANDOM_RUNS))
def test_marathon_random_5xx_20_percent(cluster, seed):
    """From the first write on, a random fifth of zdd's requests answer 503 or 500: zdd completes.

    Drawn at random (unlike the evenly spread 20% above), so a read can
    meet four 5xx in a row: that is waited out, not a halfway stop.
    ZDD_E2E_RANDOM_RUNS=N runs N seeds.
    """
    cluster.seed_first(INSTANCES)
    sim = cluster.sim
    fault_scenario(cluster, "Marathon random 5xx 20%% (seed %d)" % seed, "--stall-timeout", "30",
                   fault=lambda: sim.inject("error", rate=0.2, seed=seed, status=(503, 500), client_regex="^zdd/"),
                   when=lambda: first_write_sent(cluster))


# -- marathon-lb faults ---------------------------------------------------------------------------


def test_one_marathon_lb_down(cluster_factory):
    """Halfway, one of 2 marathon-lbs stops: zdd waits, stalls, exit 5; back up, resume completes.

    Clients use the other marathon-lb (as a health-checked DNS name or an
    external balancer would), whose frontend must lose nothing.
    """
    cluster = cluster_factory(lbs=2)
    cluster.seed_first(INSTANCES)
    down = cluster.lbs[1]
    first, _, _ = fault_scenario(
        cluster, "one marathon-lb down", "--stall-timeout", str(HALFWAY_STALL_TIMEOUT_S), "--max-wait", "60",
        fault=down.go_down, when=lambda: first_kill_sent(cluster), expect=5, heal=down.come_up,
        load_urls=cluster.frontend_urls()[:1])
    assert "did not answer" in first.stderr and "connection refused" in first.stderr


def test_marathon_lb_stats_garbage(cluster):
    """Halfway, the stats URL answers an HTML page: no progress, exit 5 after the stall timeout; resume."""
    cluster.seed_first(INSTANCES)
    lb = cluster.lbs[0]
    first, _, _ = fault_scenario(
        cluster, "stats garbage", "--stall-timeout", str(HALFWAY_STALL_TIMEOUT_S), "--max-wait", "60",
        fault=lb.garble_stats, when=lambda: first_kill_sent(cluster), expect=5,
        heal=lambda: lb.garble_stats(None))
    assert "no CSV header" in first.stderr or "stats" in first.stderr


def test_marathon_lb_keeps_3_pids(cluster):
    """An HAProxy that always keeps its previous worker (3 PIDs): with getpids each step goes on after --max-wait."""
    cluster.seed_first(INSTANCES)
    lb = cluster.lbs[0]
    lb.keep_old_worker()
    try:
        first, _, _ = fault_scenario(cluster, "HAProxy keeps 3 PIDs", "--max-wait", "3", "--stall-timeout", "30",
                                     "--reload-check", "getpids")
    finally:
        lb.keep_old_worker(False)
    assert "reloading (3 HAProxy PIDs)" in first.stderr
    assert "--max-wait (3 s) passed" in first.stderr


def test_deadline_passes_mid_deployment(cluster):
    """--deadline 5 passes halfway: exit 10, the cluster serves on; resume completes."""
    cluster.seed_first(INSTANCES)
    first, resumed, _ = fault_scenario(cluster, "deadline 5 s", "--stall-timeout", "30", deadline_s=5.0, expect=10)
    assert "--deadline passed" in first.stderr
    assert resumed.finished["steps"] >= 1


# -- doubtful answers (docs/behaviour.rst, 'Doubtful answers'): no kill or delete on them ----------------------


def kills_after(run, reason_part):
    """The ``killed`` events after the first ``waiting`` event whose reason holds ``reason_part``."""
    kinds = [(event["event"], event.get("reason") or "") for event in run.events]
    first = next((index for index, (kind, reason) in enumerate(kinds) if kind == "waiting" and reason_part in reason),
                 None)
    assert first is not None, run.stderr
    return [event for event in run.events[first:] if event["event"] == "killed"]


@pytest.mark.parametrize("garble", ["scur-dash", "maint-listed-up"])
def test_marathon_lb_stats_garbled_by_a_proxy(cluster, garble):
    """Halfway, a proxy in front of the stats page (polled as a second marathon-lb) hides the sessions
    (scur '-'), or lists each MAINT server again as UP with sessions: nothing is killed on that view, even
    past --max-wait; exit 5 (10 while waiting for the drain); healed, --resume completes.
    """
    cluster.seed_first(INSTANCES)
    with ProxiedMarathonLB(cluster.lbs[0].url) as proxy:
        def fault():
            proxy.stats_garble = garble

        def heal():
            proxy.stats_garble = None

        if garble == "scur-dash":  # waited on as a marathon-lb that does not answer: --max-wait does not end it
            expect, waited_for = 5, "doubtful stats row"
            bounds = ("--max-wait", "2", "--stall-timeout", str(HALFWAY_STALL_TIMEOUT_S))
        else:  # waited on as a drain (MAINT + UP with sessions is not drained): --deadline ends it, within the
            # stall timeout (which, at 4 s, once ended the run at its first step, a task slow to start on a busy
            # machine, before the fault: exit 5, the fault never injected)
            expect, waited_for, bounds = 10, "drain", ("--max-wait", "60", "--stall-timeout", "30")
        first, _, _ = fault_scenario(
            cluster, "stats garbled by a proxy (%s)" % garble, "-l", proxy.url, *bounds,
            fault=fault, when=lambda: first_kill_sent(cluster), expect=expect, heal=heal,
            deadline_s=DEADLINE_S if expect == 5 else 25.0)
        assert proxy.stats_polls > 0
        assert kills_after(first, waited_for) == [], first.stderr


def test_marathon_answers_the_old_app_with_the_new_apps_id(cluster):
    """Halfway, blue's GET names /web-green: zdd never takes it for green nor deletes green; exit 6; healed, resume."""
    cluster.seed_first(INSTANCES)
    sim = cluster.sim
    first, _, _ = fault_scenario(
        cluster, "old app answered as the new one", "--stall-timeout", str(HALFWAY_STALL_TIMEOUT_S),
        fault=lambda: sim.inject("garble", method="GET", path_regex="^/v2/apps/web-blue$", client_regex="^zdd/",
                                 garble={"path": "app.id", "set": "/web-green"}),
        when=lambda: first_kill_sent(cluster), expect=6, heal=sim.clear_faults)
    assert "gave a doubtful answer: it is the app /web-green, not /web-blue" in first.stderr
    assert not any(record.method == "DELETE" and record.path == "/v2/apps/web-green" for record in sim.writes())
    assert sim.faults_injected["garble"] > 0
