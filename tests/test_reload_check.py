"""When zdd reads /_haproxy_getpids (--reload-check getpids, or auto on a TCP backend): only before a kill or
a delete, and after the stats.

marathon-lb's getpids forks inside HAProxy's worker, which can cut requests
the worker serves, so every poll reads the stats only. Before a step kills
old tasks or deletes an app, zdd reads every marathon-lb's PIDs, after its
stats: a reload that started at any moment of the stats read still shows
there, and then nothing is killed. In process, on the fake clock. The grace
(the default for an HTTP backend) is in tests/test_reload_grace.py.
"""

import zdd
from tests.helpers import (
    SEQUENCE_3,
    SEQUENCE_10,
    lb_routes,
    run,
    seed_blue,
    settle,
    unhealthy_app,
    writes,
)
from tests.sandbox.fakelb import FakeMarathonLB
from tests.sandbox.world import load_fixture

KILL_STEPS_10 = 4  # SEQUENCE_10: four steps kill old tasks, then the old app is deleted
GETPIDS = ("--reload-check", "getpids")


def test_getpids_is_read_once_per_kill_step_and_once_for_the_delete(world, app_file):
    seed_blue(world, 10)
    code, _, err = run(world, app_file(), *GETPIDS)
    assert code == 0, err
    assert writes(world) == SEQUENCE_10
    assert world.lb.pid_polls == KILL_STEPS_10 + 1
    assert world.lb.stats_polls > world.lb.pid_polls


def test_two_lbs_each_read_once_per_kill_step(world, app_file):
    seed_blue(world, 10)
    with FakeMarathonLB(world.sim, host="127.0.0.2") as second:
        code, _, err = run(world, app_file(), *GETPIDS, lbs=f"{world.lb.url},{second.url}")
        assert code == 0, err
        assert writes(world) == SEQUENCE_10
        assert (world.lb.pid_polls, second.pid_polls) == (KILL_STEPS_10 + 1, KILL_STEPS_10 + 1)


def test_no_getpids_while_nothing_can_be_killed(world, app_file):
    """Old tasks that never drain: zdd polls the stats all along and never reads getpids (nor in the preflight)."""
    seed_blue(world, 3)
    for service in world.lb.services():
        for server in service.servers:
            world.lb.hold_sessions(server.name, scur=1)
    code, _, err = run(world, app_file(), *GETPIDS, "--max-wait", "100000", "--stall-timeout", "0", "--deadline", "60")
    assert code == zdd.ExitCode.DEADLINE
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "waiting for HAProxy to drain" in err
    assert world.lb.stats_polls > 5 and world.lb.pid_polls == 0


def test_a_reload_started_by_the_stats_read_blocks_every_kill(world, app_file):
    """The reload starts as the stats are answered and ends a second later, long before the next poll:
    read before the stats, getpids would show 2 PIDs every time and the kill would follow."""
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0)
    code, _, err = run(world, app_file(), *GETPIDS, "--max-wait", "100000", "--deadline", "60")
    assert code == zdd.ExitCode.DEADLINE
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "is reloading (3 HAProxy PIDs)" in err
    assert world.lb.pid_polls >= 3


def test_once_the_reloads_stop_the_swap_writes_the_same_sequence(world, app_file):
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0, times=4)
    code, _, err = run(world, app_file(), *GETPIDS)
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert "is reloading (3 HAProxy PIDs)" in err
    assert settle(world) == {"/nginx-green": (3, 3)}


def test_a_reload_blocks_the_delete_of_the_old_app(world, app_file):
    """Reloads start once green runs its 3 tasks (the last old task drained): the delete waits for them."""
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0, when=lb_routes(world, "/nginx-green", 3))
    code, _, err = run(world, app_file(), *GETPIDS, "--max-wait", "100000", "--deadline", "200")
    assert code == zdd.ExitCode.DEADLINE
    assert writes(world) == SEQUENCE_3[:-1]
    assert "is reloading (3 HAProxy PIDs)" in err
    assert world.lb.reloads_started >= 3


def test_a_failed_getpids_after_the_stats_blocks_the_kill(world, app_file):
    seed_blue(world, 3)
    world.lb.pids_failure = "500"
    code, _, err = run(world, app_file(), *GETPIDS, "--stall-timeout", "120", "--max-wait", "100000")
    assert code == zdd.ExitCode.LB_FAILED, err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "did not answer (GET http://127.0.0.1" in err and "/_haproxy_getpids answered HTTP 500" in err


def test_rollback_reads_getpids_only_to_delete_the_failed_app(world, app_file):
    seed_blue(world, 3)
    code, _, err = run(world, app_file(unhealthy_app()), *GETPIDS, "--on-failure", "rollback", "--stall-timeout", "120")
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert writes(world) == [("create", "/nginx-green", 1), ("delete", "/nginx-green")]
    assert world.lb.pid_polls == 1


def test_a_reload_blocks_the_rollback_delete(world, app_file):
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0)
    code, _, err = run(world, app_file(unhealthy_app()), *GETPIDS, "--on-failure", "rollback", "--stall-timeout", "120")
    assert code == zdd.ExitCode.ROLLBACK_FAILED, err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "is reloading (3 HAProxy PIDs)" in err


def test_after_the_reloads_the_rollback_deletes(world, app_file):
    seed_blue(world, 3)
    world.lb.reload_on_stats(1.0, times=10)  # fewer than --stall-timeout of reloading in a row
    code, _, err = run(world, app_file(unhealthy_app()), *GETPIDS, "--on-failure", "rollback", "--stall-timeout", "120")
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert writes(world) == [("create", "/nginx-green", 1), ("delete", "/nginx-green")]
    assert world.lb.pid_polls > 1


def test_auto_reads_getpids_for_a_tcp_backend(world, app_file):
    """The grace bounds requests, not TCP connections: a TCP backend is checked with getpids."""
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"]["HAPROXY_0_MODE"] = "tcp"
    seed_blue(world, 10, fixture=app)
    code, _, err = run(world, app_file(app))
    assert code == 0, err
    assert writes(world) == SEQUENCE_10
    assert world.lb.pid_polls == KILL_STEPS_10 + 1
