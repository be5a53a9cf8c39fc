"""Judging the new colour by its traffic: the pure counting and verdict as tables, then the swap in process.

The swap tests run zdd.main against the simulator and the fake marathon-lb
with the fake clock; the fake's ``serve_traffic`` makes every routed server
serve requests as the clock moves, some of them 5xx or slow, and restarts its
counters at every change of the rendered config (as a reloaded HAProxy
worker does).
"""

import json

import pytest

import zdd
from tests.helpers import SEQUENCE_3, make_hook, run, seed_blue, settle, writes
from tests.sandbox.fakelb import FakeMarathonLB
from tests.sandbox.world import FIXTURES_DIR
from tests.test_events import check_schema

GREEN, BLUE = "/nginx-green", "/nginx-blue"
RATE = ("--max-error-rate", "0.05")


def row(name="s1", **counters):
    return zdd.Listener(svname=name, status="UP", scur=0, qcur=0, **counters)


# --- one server between two polls ----------------------------------------------------------------

SERVER_TRAFFIC = [
    # previous row, current row, (requests, failures, rtime weight, timed requests)
    (None, row(stot=10, hrsp_5xx=2, rtime=30), (10, 2, 300, 10)),
    (row(stot=10, hrsp_5xx=2), row(stot=25, hrsp_5xx=2, rtime=4), (15, 0, 60, 15)),
    (row(stot=10, eresp=1, econ=1), row(stot=20, eresp=3, econ=2, hrsp_5xx=1), (10, 4, 0, 0)),
    (row(stot=10), row(stot=10), (0, 0, 0, 0)),
    # connection errors retried on the same server may outnumber its sessions: a rate never above 1
    (row(stot=1), row(stot=2, econ=5), (1, 1, 0, 0)),
    # client aborts and server aborts alone are not failures (server aborts are counted in eresp)
    (row(stot=0), row(stot=4, cli_abrt=2, srv_abrt=1), (4, 0, 0, 0)),
]


@pytest.mark.parametrize("previous, current, expected", SERVER_TRAFFIC)
def test_server_traffic(previous, current, expected):
    traffic = zdd.server_traffic(previous, current)
    assert (traffic.requests, traffic.failures, traffic.rtime_weight_ms, traffic.timed_requests) == expected
    assert traffic.unreadable == 0


@pytest.mark.parametrize("previous, current", [
    (None, row(stot=10, hrsp_5xx=None)),
    (row(stot=10), row(stot=None)),
    (row(stot=10, rtime=None), row(stot=20, hrsp_5xx=4, rtime=3)),  # the row counted from is unknown too
    (row(stot=10), row(stot=20, eresp=None)),
    (row(stot=10), row(stot=20, econ=None)),
])
def test_a_server_row_with_an_unknown_counter_is_unreadable_not_zero(previous, current):
    assert zdd.server_traffic(previous, current) == zdd.Traffic(unreadable=1)


def test_servers_without_an_answer_yet_do_not_pull_the_mean_response_time_down():
    """rtime 0: requests sent (stot) but none answered yet on this worker; the mean is of the others."""
    total = zdd.server_traffic(None, row(stot=8, rtime=0)) + zdd.server_traffic(None, row(stot=40, rtime=300))
    assert (total.requests, total.rtime_ms) == (48, 300)
    assert zdd.server_traffic(None, row(stot=8, rtime=0)).rtime_ms is None


WORKER_RESTARTED = [
    # an unknown counter is no evidence of a restart either way
    ({"a": row("a", stot=5, econ=1)}, (row("a", stot=None, econ=2),), False),
    ({"a": row("a", stot=None, econ=3)}, (row("a", stot=9, econ=2),), True),
    ({"a": row("a", stot=5)}, (row("a", stot=6),), False),
    ({"a": row("a", stot=5)}, (row("a", stot=2),), True),
    # one server going down is enough: the page comes from one worker
    ({"a": row("a", stot=5), "b": row("b", stot=9)}, (row("a", stot=50), row("b", stot=1)), True),
    ({"a": row("a", stot=5, hrsp_5xx=3)}, (row("a", stot=9, hrsp_5xx=0),), True),
    # a server not listed before says nothing about the worker
    ({"a": row("a", stot=5)}, (row("a", stot=5), row("new", stot=0)), False),
    ({}, (row("a", stot=0),), False),
]


@pytest.mark.parametrize("previous, listeners, expected", WORKER_RESTARTED)
def test_worker_restarted(previous, listeners, expected):
    assert zdd.worker_restarted(previous, listeners) is expected


# --- the tally over polls ------------------------------------------------------------------------

NEW_APP = {"id": GREEN, "tasks": [{"id": "g1", "host": "10.0.0.1", "ports": [31001]}]}
OLD_APP = {"id": BLUE, "tasks": [{"id": "b1", "host": "10.0.0.2", "ports": [31002]},
                                 {"id": "b2", "host": "10.0.0.3", "ports": [31003]}]}
G1, B1, B2 = "10_0_0_1_31001", "10_0_0_2_31002", "10_0_0_3_31003"


def poll(*lbs):
    """An Observation of NEW_APP and OLD_APP; each lb is {server name: (stot, hrsp_5xx)} or None (no answer)."""
    views = []
    for index, servers in enumerate(lbs):
        listeners = None if servers is None else tuple(
            row(name, stot=stot, hrsp_5xx=failed, rtime=100) for name, (stot, failed) in servers.items())
        views.append(zdd.LbView(url=f"http://lb{index}", pids=(4001, 4002), listeners=listeners))
    return zdd.Observation(NEW_APP, OLD_APP, tuple(views))


def tally_of(*polls):
    tally = zdd.Tally()
    for observation in polls:
        tally = zdd.tally_traffic(tally, zdd.named(observation, lambda host: host))
    return tally


TALLIES = [
    # polls, (new requests, new failures), (old requests, old failures)
    ([poll({G1: (50, 5), B1: (100, 0)})], (0, 0), (0, 0)),  # the first poll is a baseline
    ([poll({G1: (50, 5), B1: (100, 0)}), poll({G1: (70, 9), B1: (130, 1)})], (20, 4), (30, 1)),
    # a reload between polls: every server counts from 0 again (and B2 is new on that worker)
    ([poll({G1: (50, 5), B1: (100, 0)}), poll({G1: (10, 2), B1: (30, 0), B2: (5, 0)})], (10, 2), (35, 0)),
    # two marathon-lbs, each against its own last poll; one that did not answer counts nothing
    ([poll({G1: (1, 0)}, {G1: (100, 0)}), poll({G1: (11, 1)}, None), poll({G1: (21, 2)}, {G1: (140, 4)})],
     (60, 6), (0, 0)),
    # a server of neither app is not counted
    ([poll({"10_9_9_9_1": (1, 0)}), poll({"10_9_9_9_1": (500, 500)})], (0, 0), (0, 0)),
]


@pytest.mark.parametrize("polls, new, old", TALLIES)
def test_tally(polls, new, old):
    tally = tally_of(*polls)
    assert (tally.new.requests, tally.new.failures) == new
    assert (tally.old.requests, tally.old.failures) == old


def test_a_new_window_counts_from_the_last_poll():
    tally = zdd.new_window(tally_of(poll({G1: (50, 5)}), poll({G1: (70, 9)})))
    assert (tally.new.requests, tally.new.failures) == (0, 0)
    tally = zdd.tally_traffic(tally, zdd.named(poll({G1: (75, 9)}), lambda host: host))
    assert (tally.new.requests, tally.new.failures) == (5, 0)


def test_a_window_without_old_traffic_compares_with_the_last_one_that_had_some():
    tally = zdd.new_window(tally_of(poll({G1: (0, 0), B1: (0, 0)}), poll({G1: (10, 1), B1: (40, 8)})))
    tally = zdd.tally_traffic(tally, zdd.named(poll({G1: (60, 11)}), lambda host: host))  # B1 is gone
    assert (tally.old.requests, tally.baseline.requests, tally.baseline.failures) == (0, 40, 8)


def test_the_tally_remembers_killed_tasks():
    """A task Marathon no longer lists still has its last requests counted while HAProxy lists it."""
    gone = zdd.Observation(NEW_APP, dict(OLD_APP, tasks=OLD_APP["tasks"][1:]),
                           (zdd.LbView(url="http://lb0", pids=(4001, 4002), listeners=(row(B1, stot=40),)),))
    tally = zdd.tally_traffic(tally_of(poll({B1: (30, 0)})), zdd.named(gone, lambda host: host))
    assert tally.old.requests == 10


# --- the verdict ---------------------------------------------------------------------------------


def traffic(requests, failures, rtime_ms=0):
    timed = requests if rtime_ms else 0
    return zdd.Traffic(requests, failures, rtime_ms * timed, timed)


VERDICTS = [
    # new, old, min requests, max error rate, max response time ms, outcome
    (traffic(99, 99), traffic(1000, 0), 100, 0.05, None, "inconclusive"),
    (traffic(100, 20), traffic(1000, 0), 100, 0.05, None, "fail"),
    (traffic(100, 5), traffic(1000, 0), 100, 0.05, None, "pass"),  # at the limit is not above it
    (traffic(100, 6), traffic(1000, 0), 100, 0.05, None, "fail"),
    (traffic(100, 20), traffic(1000, 250), 100, 0.05, None, "pass"),  # the old colour fails as much: not the release
    (traffic(100, 20), traffic(0, 0), 100, 0.05, None, "fail"),  # no baseline: the limit alone
    (traffic(100, 20), traffic(1000, 0), 100, None, None, "pass"),  # no error-rate check
    (traffic(200, 0, 450), traffic(600, 0, 20), 100, None, 200, "fail"),
    (traffic(200, 0, 450), traffic(600, 0, 500), 100, None, 200, "pass"),  # as slow as the old colour
    (traffic(200, 0, 150), traffic(600, 0, 20), 100, None, 200, "pass"),
    (traffic(200, 0, 450), traffic(0, 0), 100, 0.05, 200, "fail"),
    (traffic(0, 0), traffic(0, 0), 0, 0.05, 200, "inconclusive"),  # --analysis-min-requests 0: no traffic, no verdict
    (traffic(1, 0), traffic(0, 0), 0, 0.05, 200, "pass"),
    (traffic(200, 0), traffic(600, 0, 20), 100, None, 200, "pass"),  # no answer timed yet: no latency verdict
    # a row whose counters could not be read: its traffic is unknown, so no verdict on the rest
    (traffic(200, 0) + zdd.Traffic(unreadable=1), traffic(600, 0), 100, 0.05, 200, "inconclusive"),
    (traffic(200, 60) + zdd.Traffic(unreadable=1), traffic(600, 0), 100, 0.05, 200, "inconclusive"),
    (traffic(200, 60), traffic(600, 0) + zdd.Traffic(unreadable=2), 100, 0.05, 200, "inconclusive"),
]


@pytest.mark.parametrize("new, old, min_requests, max_rate, max_ms, outcome", VERDICTS)
def test_judge_traffic(new, old, min_requests, max_rate, max_ms, outcome):
    verdict = zdd.judge_traffic(new, old, min_requests, max_rate, max_ms, names=("green", "blue"))
    assert verdict.outcome == outcome, verdict.reason


def test_a_failing_verdict_gives_the_figures():
    verdict = zdd.judge_traffic(traffic(300, 61), traffic(900, 0), 100, 0.05, names=("green", "blue"))
    assert verdict.reason == ("green's error rate 20.3% (61 of 300 requests) is above --max-error-rate 5.0% "
                              "and blue's 0.0% (0 of 900)")


def test_parse_stats_reads_the_counters():
    text = (FIXTURES_DIR / "haproxy_stats.csv").read_text()
    www = zdd.parse_stats(text, "www")[0]
    assert (www.stot, www.hrsp_5xx, www.eresp, www.econ, www.rtime, www.check_status) == (
        1343634, 4, 163, 0, 16, "L7OK")


def test_an_unreadable_verdict_names_the_rows():
    verdict = zdd.judge_traffic(traffic(300, 0) + zdd.Traffic(unreadable=2), traffic(900, 0), 100, 0.05,
                                names=("green", "blue"))
    assert verdict.reason == ("the stats counters of 2 of green's server rows were unreadable (missing, '-' or "
                              "garbage): their traffic is unknown")


def test_a_window_whose_old_rows_were_unreadable_is_its_own_baseline():
    """Not the last window that had requests: what the old colour served now is unknown, not none."""
    tally = zdd.Tally(old=zdd.Traffic(unreadable=1), old_before=traffic(600, 0))
    assert tally.baseline == zdd.Traffic(unreadable=1)


def test_parse_stats_without_counter_columns_reads_unknown():
    (listener,) = zdd.parse_stats("# pxname,svname,status,scur,qcur\nweb_80,a,UP,1,0\n", "web_80")
    assert (listener.stot, listener.hrsp_5xx, listener.rtime) == (None, None, None)
    assert (listener.scur, listener.doubt) == (1, None)  # the sessions are read as before


@pytest.mark.parametrize("values, expected", [
    ("12,3,40", (12, 3, 40)),
    (",,", (0, 0, 0)),  # HAProxy leaves empty the counters that do not apply (hrsp_5xx in TCP mode)
    ("12,-,40", (12, None, 40)),
    ("12,3x,4.5", (12, None, None)),
    ("12,-1,40", (12, None, 40)),
    ("12", (12, None, None)),  # a row cut short
])
def test_parse_stats_reads_a_counter_that_is_not_a_whole_number_as_unknown(values, expected):
    text = "# pxname,svname,status,scur,qcur,stot,hrsp_5xx,rtime\nweb_80,a,UP,1,0,%s\n" % values
    (listener,) = zdd.parse_stats(text, "web_80")
    assert (listener.stot, listener.hrsp_5xx, listener.rtime) == expected
    assert (listener.scur, listener.qcur, listener.doubt) == (1, 0, None)


# --- the swap, in process ------------------------------------------------------------------------


def analysis_events(out):
    return [event for event in map(json.loads, out.splitlines()) if event["event"] == "analysis"]


def test_a_bad_release_is_stopped_at_its_first_step(world, app_path):
    seed_blue(world, 3)
    world.lb.serve_traffic(100, error_rate={GREEN: 0.2})
    code, out, err = run(world, app_path, *RATE, "--output", "json")
    assert code == zdd.ExitCode.CHECK_FAILED, err
    assert writes(world) == [("create", GREEN, 1)]
    (analysis,) = analysis_events(out)
    assert analysis["verdict"] == "fail" and analysis["step"] == 1
    green, blue = analysis["colours"]["green"], analysis["colours"]["blue"]
    assert green["role"] == "new" and blue["role"] == "old"
    assert green["requests"] >= 100 and green["rate"] == pytest.approx(0.2, abs=0.02)
    assert blue["requests"] > 0 and blue["failures"] == 0
    assert "the analysis stopped the release at step 1: green's error rate" in err
    assert "--resume" in err  # both apps are left, as after any other failure
    assert set(settle(world)) == {BLUE, GREEN}
    check_schema([json.loads(line) for line in out.splitlines()])


def test_a_bad_release_is_rolled_back(world, app_path):
    seed_blue(world, 3)
    world.lb.serve_traffic(100, error_rate={GREEN: 0.2})
    code, _, err = run(world, app_path, *RATE, "--on-failure", "rollback")
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert writes(world)[0] == ("create", GREEN, 1) and writes(world)[-1] == ("delete", GREEN)
    assert ("scale", GREEN, 2) not in writes(world)
    assert settle(world) == {BLUE: (3, 3)}
    assert "green's error rate" in err and "rolled back to /nginx-blue" in err


def test_a_failed_rollback_after_the_analysis_is_14(world, app_path):
    seed_blue(world, 3)
    world.lb.serve_traffic(100, error_rate={GREEN: 0.2})
    world.sim.fail_next("DELETE", r"^/v2/apps/nginx-green$", 500, count=1000)
    code, _, err = run(world, app_path, *RATE, "--on-failure", "rollback", "--stall-timeout", "60")
    assert code == zdd.ExitCode.ROLLBACK_FAILED, err
    assert "green's error rate" in err and "the rollback failed too" in err


def test_a_rollback_delete_answered_5xx_is_read_again_and_decided_again(world, app_path):
    # the rollback's writes take the swap's path: a 5xx may have been done, so look again, do not give up
    seed_blue(world, 3)
    world.lb.serve_traffic(100, error_rate={GREEN: 0.2})
    world.sim.fail_next("DELETE", r"^/v2/apps/nginx-green$", 500)
    code, _, err = run(world, app_path, *RATE, "--on-failure", "rollback", "--stall-timeout", "60")
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert "answered HTTP 500" in err and "reading Marathon again before deciding" in err
    assert writes(world)[-1] == ("delete", GREEN)
    assert settle(world) == {BLUE: (3, 3)}


def test_a_rollback_delete_refused_as_locked_is_waited_for(world, app_path):
    # one write path: a locked app is waited for in the rollback as in the swap (it ended the rollback, exit 14)
    seed_blue(world, 3)
    world.lb.serve_traffic(100, error_rate={GREEN: 0.2})
    world.sim.fail_next("DELETE", r"^/v2/apps/nginx-green$", 409,
                        body={"message": "App is locked by one or more deployments."})
    code, _, err = run(world, app_path, *RATE, "--on-failure", "rollback", "--stall-timeout", "60")
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert "Marathon is busy (App is locked by one or more deployments.) while restoring the old app" in err
    assert writes(world)[-1] == ("delete", GREEN)
    assert settle(world) == {BLUE: (3, 3)}


def test_a_good_release_is_judged_at_every_step_and_completes(world, app_path):
    seed_blue(world, 3)
    world.lb.serve_traffic(100)
    code, out, err = run(world, app_path, *RATE, "--max-response-time", "500", "--output", "json")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    verdicts = [(event["step"], event["verdict"]) for event in analysis_events(out)]
    assert verdicts == [(1, "pass"), (2, "pass"), (3, "pass")]  # before 2, before 3, before the delete
    assert world.lb.reloads == 3  # the counters restarted at every step, and each step was still judged


def test_the_first_baseline_waits_out_marathon(world, app_path):
    """The counters read right after the create wait for Marathon (500 four times) like any poll after a write."""
    seed_blue(world, 3)
    world.lb.serve_traffic(100)
    world.sim.fail_next("GET", r"^/v2/apps/nginx-green$", 500, count=4)
    # getpids: the grace's wait before the kill would give step 1 the requests it lacks
    code, out, err = run(world, app_path, *RATE, "--output", "json", "--reload-check", "getpids")
    assert code == 0, err
    assert "Marathon does not answer" in err and "no traffic baseline" not in err
    assert writes(world) == SEQUENCE_3
    # step 1's window starts once Marathon answered: too short for 100 requests at this rate
    assert [event["verdict"] for event in analysis_events(out)] == ["inconclusive", "pass", "pass"]


def test_an_old_colour_failing_as_much_is_the_baseline(world, app_path):
    seed_blue(world, 3)
    world.lb.serve_traffic(100, error_rate={GREEN: 0.2, BLUE: 0.25})
    code, _, err = run(world, app_path, *RATE)
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


def test_a_slow_release_is_stopped(world, app_path):
    seed_blue(world, 3)
    world.lb.serve_traffic(100, rtime_ms={GREEN: 800, BLUE: 20})
    code, _, err = run(world, app_path, "--max-response-time", "300")
    assert code == zdd.ExitCode.CHECK_FAILED, err
    assert "green's mean response time 800 ms is above --max-response-time 300 ms and blue's (20 ms)" in err
    assert writes(world) == [("create", GREEN, 1)]


def test_without_traffic_the_steps_are_inconclusive_and_the_release_completes(world, app_path):
    seed_blue(world, 3)
    code, out, err = run(world, app_path, *RATE, "--output", "json")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert [event["verdict"] for event in analysis_events(out)] == ["inconclusive"] * 3
    assert "0 request(s) to green, fewer than the 100 needed to judge it" in err


def test_a_bad_release_whose_5xx_counter_is_unreadable_is_never_passed(world, app_path):
    """hrsp_5xx '-' on every server row: green's failures are unknown, not 0; with --analysis-inconclusive
    fail the release stops before its first scale-up, as for too little traffic (it read 0 and passed)."""
    seed_blue(world, 3)
    world.lb.serve_traffic(100, error_rate={GREEN: 0.2})
    world.lb.stats_garble = "5xx-dash"
    code, out, err = run(world, app_path, *RATE, "--analysis-inconclusive", "fail", "--output", "json")
    assert code == zdd.ExitCode.CHECK_FAILED, err
    assert writes(world) == [("create", GREEN, 1)]
    assert [event["verdict"] for event in analysis_events(out)] == ["inconclusive"]
    assert "could not judge step 1" in err and "server rows were unreadable" in err


def test_unreadable_counters_leave_every_step_inconclusive(world, app_path):
    """The default --analysis-inconclusive continue: deployed unjudged, as with too little traffic, and said."""
    seed_blue(world, 3)
    world.lb.serve_traffic(100, error_rate={GREEN: 0.2})
    world.lb.stats_garble = "5xx-dash"
    code, out, err = run(world, app_path, *RATE, "--output", "json")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert [event["verdict"] for event in analysis_events(out)] == ["inconclusive"] * 3


def test_too_little_traffic_with_inconclusive_fail_is_15(world, app_path):
    seed_blue(world, 3)
    world.lb.serve_traffic(1)
    code, _, err = run(world, app_path, *RATE, "--analysis-inconclusive", "fail")
    assert code == zdd.ExitCode.CHECK_FAILED
    assert "could not judge step 1" in err
    assert writes(world) == [("create", GREEN, 1)]


def test_inconclusive_wait_waits_for_traffic_then_judges(world, app_path):
    """3 requests a second: 100 take about 33 s, within --max-wait; each step waits, then is judged."""
    seed_blue(world, 3)
    world.lb.serve_traffic(3)
    code, out, err = run(world, app_path, *RATE, "--analysis-inconclusive", "wait", "--output", "json")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    verdicts = [event["verdict"] for event in analysis_events(out)]
    assert verdicts.count("pass") == 3 and "inconclusive" in verdicts
    waits = [event for event in map(json.loads, out.splitlines())
             if event["event"] == "waiting" and event["reason"].startswith("traffic to judge")]
    assert waits and max(event["waited_s"] for event in waits) < 300


def test_inconclusive_wait_goes_on_after_max_wait(world, app_path):
    seed_blue(world, 3)
    code, out, err = run(world, app_path, *RATE, "--analysis-inconclusive", "wait", "--max-wait", "20",
                         "--output", "json")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    waits = [event["waited_s"] for event in map(json.loads, out.splitlines())
             if event["event"] == "waiting" and event["reason"].startswith("traffic to judge")]
    assert waits and max(waits) < 20


def test_a_bad_release_is_judged_on_every_marathon_lb(world, app_path):
    """Only the second marathon-lb sees the failures; the first sees none: their sum still fails."""
    seed_blue(world, 3)
    world.lb.serve_traffic(100)
    with FakeMarathonLB(world.sim) as second:
        second.serve_traffic(100, error_rate={GREEN: 0.5})
        code, _, err = run(world, app_path, *RATE, lbs=f"{world.lb.url},{second.url}")
    assert code == zdd.ExitCode.CHECK_FAILED, err
    assert "green's error rate 25" in err


def test_step_check_runs_before_each_scale_up_and_the_delete(world, app_path, tmp_path):
    seed_blue(world, 3)
    check, record = make_hook(tmp_path, 0)
    code, _, err = run(world, app_path, "--step-check", check)
    assert code == 0, err
    calls = [[json.loads(argument) for argument in line] for line in map(json.loads, record.read_text().splitlines())]
    assert len(calls) == 3  # before the scale to 2, to 3, and before the delete
    killed = [r.body["ids"] for r in world.sim.writes() if r.path == "/v2/tasks/delete"]
    assert [task_ids for _, task_ids, _ in calls[:2]] == killed
    old_app, last_ids, new_app = calls[2]
    assert old_app["id"] == BLUE and new_app["id"] == GREEN
    assert last_ids == [task["id"] for task in old_app["tasks"]] and len(last_ids) == 1


@pytest.mark.parametrize("on_failure, code, expected", [
    ("stop", zdd.ExitCode.CHECK_FAILED, {BLUE: (3, 3), GREEN: (1, 1)}),
    ("rollback", zdd.ExitCode.ROLLED_BACK, {BLUE: (3, 3)}),
])
def test_a_failing_step_check_stops_the_release(world, app_path, tmp_path, on_failure, code, expected):
    seed_blue(world, 3)
    check, _ = make_hook(tmp_path, 4)
    result, _, err = run(world, app_path, "--step-check", check, "--on-failure", on_failure)
    assert result == code, err
    assert "the step check" in err and "exited with 4" in err
    assert ("scale", GREEN, 2) not in writes(world)
    assert settle(world) == expected


@pytest.mark.parametrize("flags, message", [
    (("--max-error-rate", "1.5"), "--max-error-rate is a share from 0 to 1"),
    (("--step-check", "/nonexistent/check"), "is not an executable file"),
])
def test_bad_analysis_flags_write_nothing(world, app_path, flags, message):
    seed_blue(world, 3)
    code, _, err = run(world, app_path, *flags)
    assert code == zdd.ExitCode.INVALID_ARGS
    assert message in err and err.count("\n") == 1
    assert writes(world) == []


@pytest.mark.parametrize("flags", [("--max-error-rate", "-0.1"), ("--analysis-min-requests", "x"),
                                   ("--analysis-inconclusive", "maybe"), ("--max-response-time", "nan")])
def test_malformed_analysis_flags_are_usage_errors(world, app_path, flags):
    seed_blue(world, 3)
    code, _, err = run(world, app_path, *flags)
    assert code == zdd.ExitCode.INTERNAL  # argparse's usage error, as for every other flag
    assert err.count("\n") == 1 and "Traceback" not in err
    assert writes(world) == []


def test_without_the_flags_nothing_is_judged(world, app_path):
    seed_blue(world, 3)
    world.lb.serve_traffic(100, error_rate={GREEN: 0.5})
    code, out, err = run(world, app_path, "--output", "json")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert analysis_events(out) == []


def test_the_analysis_flags_come_from_the_environment_too():
    options = zdd.parse_options(["-m", "http://m:8080", "-l", "http://l:9090", "-j", "app.json"],
                                {"ZDD_MAX_ERROR_RATE": "0.1", "ZDD_ANALYSIS_MIN_REQUESTS": "50",
                                 "ZDD_ANALYSIS_INCONCLUSIVE": "fail", "ZDD_MAX_RESPONSE_TIME": "250"})
    assert (options.max_error_rate, options.analysis_min_requests, options.analysis_inconclusive,
            options.max_response_time) == (0.1, 50, "fail", 250.0)
    assert options.analysing
    assert not zdd.parse_options(["-m", "http://m:8080", "-l", "http://l:9090", "-j", "app.json"], {}).analysing
