"""The default reload check for an HTTP backend: the grace, read from the stats page alone (no getpids, no fork).

Before a kill or a delete, every marathon-lb's stats must come from an
HAProxy worker that zdd has seen serving for --reload-grace seconds, with
the tasks going away drained or not listed all along: every older worker,
which may have had them UP, then stopped taking requests at least that long
ago (docs/behaviour.rst, 'Old HAProxy workers'). The fake marathon-lb starts
a new worker (its BACKEND rows' lastchg back to 0) at each config change and
at each ``reload_on_stats`` reload, and records when: every kill and delete
must come at least the grace after the last worker start, whatever moment
the reloads come at. In process, on the fake clock.
"""

import bisect
import dataclasses

import pytest

import zdd
from tests.helpers import (
    SEQUENCE_3,
    SEQUENCE_10,
    lb_routes,
    run,
    run_json,
    seed_blue,
    settle,
    unhealthy_app,
    writes,
)
from tests.sandbox.fakelb import FakeMarathonLB
from tests.sandbox.world import load_fixture

GRACE_S = zdd.DEFAULT_RELOAD_GRACE_S
ROUNDING_S = 0.001  # the events' elapsed_s are in milliseconds
FOREVER = ("--max-wait", "100000")


def removals_after_worker_start(events, started_at, *lbs):
    """For each kill and delete: the seconds since the last worker start of any of ``lbs`` (fake clock, to the ms)."""
    starts = sorted(start for lb in lbs for start in lb.worker_starts)
    gaps = []
    for event in events:
        if event["event"] in ("killed", "deleted"):
            moment = started_at + event["elapsed_s"]
            gaps.append(moment - starts[bisect.bisect_right(starts, moment) - 1] + ROUNDING_S)
    return gaps


def test_an_http_backend_is_checked_without_getpids(world, app_file):
    seed_blue(world, 10)
    started_at = world.clock.monotonic()
    code, events, err = run_json(world, app_file())
    assert code == 0, err
    assert writes(world) == SEQUENCE_10
    assert world.lb.pid_polls == 0
    gaps = removals_after_worker_start(events, started_at, world.lb)
    assert len(gaps) == 5 and min(gaps) >= GRACE_S, gaps
    # the wait ends by itself: zdd looks again right then, not a --step-delay later
    assert max(gaps) < GRACE_S + 1.0, gaps


def test_every_stats_read_from_a_new_worker_blocks_every_kill(world, app_file):
    """A reload starts as each stats page is answered: no worker is ever seen serving for the grace."""
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0)
    code, _, err = run(world, app_file(), *FOREVER, "--deadline", "60")
    assert code == zdd.ExitCode.DEADLINE
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "changed less than --reload-grace (2 s) ago" in err
    assert world.lb.pid_polls == 0


def test_once_the_reloads_stop_the_swap_writes_the_same_sequence(world, app_file):
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0, times=6)
    started_at = world.clock.monotonic()
    code, events, err = run_json(world, app_file())
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert min(removals_after_worker_start(events, started_at, world.lb)) >= GRACE_S
    assert settle(world) == {"/nginx-green": (3, 3)}


@pytest.mark.parametrize("reloads", range(1, 8))
def test_a_reload_at_any_read_delays_the_next_kill_by_the_grace(world, app_file, reloads):
    """One reload at the 1st, 2nd, ... 7th stats read of a deployment (it reads 7 or more): no kill comes sooner."""
    seed_blue(world, 3)
    reads = []

    def on_read():
        reads.append(1)
        return len(reads) == reloads

    world.lb.reload_on_stats(0.5, when=on_read)
    started_at = world.clock.monotonic()
    code, events, err = run_json(world, app_file())
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert world.lb.reloads_started == 1
    assert min(removals_after_worker_start(events, started_at, world.lb)) >= GRACE_S


def test_a_reload_blocks_the_delete_of_the_old_app(world, app_file):
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0, when=lb_routes(world, "/nginx-green", 3))
    code, _, err = run(world, app_file(), *FOREVER, "--deadline", "200")
    assert code == zdd.ExitCode.DEADLINE
    assert writes(world) == SEQUENCE_3[:-1]
    assert "changed less than --reload-grace" in err


def test_one_of_two_marathon_lbs_reloading_blocks_the_kill(world, app_file):
    seed_blue(world, 3)
    with FakeMarathonLB(world.sim, host="127.0.0.2") as second:
        second.reload_on_stats(1.0)
        code, _, err = run(world, app_file(), *FOREVER, "--deadline", "60", lbs=f"{world.lb.url},{second.url}")
        assert code == zdd.ExitCode.DEADLINE
        assert writes(world) == [("create", "/nginx-green", 1)]
        assert f"marathon-lb {second.url} changed less than --reload-grace" in err


def test_max_wait_ends_a_grace_that_never_comes(world, app_file):
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0)
    code, _, err = run(world, app_file(), "--max-wait", "10")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert "--max-wait (10 s) passed" in err


def test_the_rollback_waits_the_grace_before_deleting_the_failed_app(world, app_file):
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0)
    code, _, err = run(world, app_file(unhealthy_app()), "--on-failure", "rollback", "--stall-timeout", "120")
    assert code == zdd.ExitCode.ROLLBACK_FAILED, err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "changed less than --reload-grace" in err


def test_after_the_reloads_the_rollback_deletes(world, app_file):
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0, times=10)
    code, _, err = run(world, app_file(unhealthy_app()), "--on-failure", "rollback", "--stall-timeout", "120")
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert writes(world) == [("create", "/nginx-green", 1), ("delete", "/nginx-green")]
    assert world.lb.pid_polls == 0


def test_a_stats_page_without_the_worker_age_falls_back_to_getpids(world, app_file):
    seed_blue(world, 10)
    world.lb.show_worker_age = False
    code, _, err = run(world, app_file())
    assert code == 0, err
    assert writes(world) == SEQUENCE_10
    assert world.lb.pid_polls == 5


def test_reload_check_grace_without_a_worker_age_waits_for_max_wait(world, app_file):
    seed_blue(world, 3)
    world.lb.show_worker_age = False
    code, _, err = run(world, app_file(), "--reload-check", "grace", "--max-wait", "10")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3 and world.lb.pid_polls == 0
    assert "shows no HAProxy worker age" in err and "--max-wait (10 s) passed" in err


def test_reload_check_grace_is_taken_for_a_tcp_backend_when_asked(world, app_file):
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"]["HAPROXY_0_MODE"] = "tcp"
    seed_blue(world, 3, fixture=app)
    code, _, err = run(world, app_file(app), "--reload-check", "grace")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert world.lb.pid_polls == 0


def test_a_longer_grace_waits_longer(world, app_file):
    seed_blue(world, 3)
    started_at = world.clock.monotonic()
    code, events, err = run_json(world, app_file(), "--reload-grace", "7.5")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert min(removals_after_worker_start(events, started_at, world.lb)) >= 7.5


# --- the pure parts -------------------------------------------------------------------------------


def view(read_at, age, listeners=(), url="http://lb:9090"):
    return zdd.LbView(url=url, listeners=tuple(listeners), read_at=read_at, worker_age_s=age)


def server(name, status="MAINT", scur=0, mode="http"):
    return zdd.Listener(svname=name, status=status, scur=scur, qcur=0, mode=mode)


def tracked(*views, names=("a", "b")):
    """Each view tracked after the ones before it; the last."""
    previous = {}
    for one in views:
        (one,) = zdd.track_reads(previous, (one,), set(names))
        previous = {one.url: one}
    return one


def test_the_same_worker_is_the_one_whose_age_grows_with_the_clock():
    last = tracked(view(100.0, 30), view(101.0, 31), view(103.2, 33))
    assert last.serving_since == 100.0
    # the worker's age in whole seconds: up to a second off on each read
    assert tracked(view(100.0, 30), view(101.9, 31)).serving_since == 100.0
    # younger than the clock allows: a new worker, first seen now
    assert tracked(view(100.0, 30), view(103.0, 2)).serving_since == 103.0
    # no age on the page: every read is a new worker
    assert tracked(view(100.0, None), view(101.0, None)).serving_since == 101.0


def test_a_server_routed_again_starts_its_quiet_time_again():
    drained, routed = server("a"), server("a", status="UP")
    last = tracked(view(100.0, 30, [drained]), view(101.0, 31, [routed]), view(102.0, 32, [drained]))
    assert last.serving_since == 100.0 and last.quiet_since["a"] == 102.0
    # not listed counts as quiet, MAINT with a session does not
    last = tracked(view(100.0, 30, []), view(101.0, 31, [server("a", scur=1)]), view(102.0, 32, []))
    assert last.quiet_since["a"] == 102.0 and last.quiet_since["b"] == 100.0


def _observation(lb_views, old_tasks=("t-a",)):
    old_app = {"id": "/old", "tasks": [{"id": task_id} for task_id in old_tasks]}
    return zdd.Observation({"id": "/new"}, old_app, lbs=tuple(lb_views), names={"t-a": "a"})


@pytest.mark.parametrize("reads, safe", [
    ([(100.0, 30), (102.0, 32)], True),  # the worker served for 2 s with "a" drained
    ([(100.0, 30), (101.9, 31)], False),  # 1.9 s: 0.1 s to go
    ([(100.0, 30), (101.0, 0), (103.0, 2)], True),  # a reload: the new worker seen from 101.0
    ([(100.0, 30), (101.0, 0), (102.5, 1)], False),
])
def test_reload_wait(reads, safe):
    last = tracked(*[view(at, age, [server("a")]) for at, age in reads])
    step = zdd.Step(kill=("t-a",))
    waiting = zdd.reload_wait(_observation([last]), step, 2.0)
    assert (waiting is None) == safe
    if waiting:
        assert waiting[1] == pytest.approx(2.0 - (last.read_at - last.serving_since))
    # the delete of the old app: the same for all its tasks
    assert (zdd.reload_wait(_observation([last]), zdd.Step(delete_old=True), 2.0) is None) == safe


@pytest.mark.parametrize("second_read, step, waited_s, expected", [
    ((102.0, 32), zdd.Step(kill=("t-a",)), 0, zdd.Step(kill=("t-a",))),  # the grace is over: the kill
    ((101.5, 31.5), zdd.Step(kill=("t-a",)), 0, zdd.Step(wait="grace", look_again_s=0.5)),  # 0.5 s to go
    ((101.5, 31.5), zdd.Step(kill=("t-a",)), 300, zdd.Step(kill=("t-a",), forced=True)),  # --max-wait passed
    ((101.5, 31.5), zdd.Step(kill=("t-a",), forced=True), 0, zdd.Step(kill=("t-a",), forced=True)),  # forced already
    ((101.5, 31.5), zdd.Step(delete_old=True), 0, zdd.Step(wait="grace", look_again_s=0.5)),
], ids=["over", "to-go", "max-wait", "forced", "delete"])
def test_graced_step(second_read, step, waited_s, expected):
    last = tracked(view(100.0, 30, [server("a")]), view(*second_read, [server("a")]))
    got = zdd.graced_step(_observation([last]), step, 2.0, waited_s, 300)
    if expected.wait:
        assert got.wait.startswith("marathon-lb http://lb:9090 changed less than --reload-grace (2 s) ago")
        got = dataclasses.replace(got, wait="grace")
        assert got.look_again_s == pytest.approx(expected.look_again_s)
        got = dataclasses.replace(got, look_again_s=expected.look_again_s)
    assert got == expected


def test_reload_check_of():
    http_lb = view(1.0, 5, [server("a")])
    assert zdd.reload_check_of([http_lb], "auto") == "grace"
    assert zdd.reload_check_of([http_lb, view(1.0, 5, [server("a", mode="tcp")])], "auto") == "getpids"
    assert zdd.reload_check_of([view(1.0, None, [server("a")])], "auto") == "getpids"
    assert zdd.reload_check_of([view(1.0, 5, [server("a", mode="")])], "auto") == "getpids"  # no mode column
    assert zdd.reload_check_of([http_lb], "getpids") == "getpids"


def test_parse_worker_age_is_the_oldest_backend():
    text = ("# pxname,svname,status,lastchg,mode\n"
            "stats,FRONTEND,OPEN,,http\nstats,BACKEND,UP,41,http\n"
            "web,s1,MAINT,3,http\nweb,BACKEND,UP,7,http\n")
    assert zdd.parse_worker_age(text) == 41
    assert zdd.parse_worker_age("# pxname,svname,status\nstats,BACKEND,UP\n") is None
