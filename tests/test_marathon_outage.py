"""A Marathon that stops answering: before the first write zdd stops at once, after it zdd waits.

Outages are timed on the world's fake clock: ``Outage`` hands zdd a clock
that shares the world's time and, each time zdd sleeps, takes Marathon down
(connections refused, 5xx answers or dropped connections to zdd only) once a
condition holds, and brings it back after so many simulated seconds.
"""


import pytest

import zdd
from tests.helpers import (
    SEQUENCE_3,
    ActingClock,
    run_json,
    seed_blue,
    seed_half_done,
    settle,
    unhealthy_app,
    writes,
)

ZDD_CLIENT = "^zdd/"


class Outage(ActingClock):
    """The world's clock for zdd; Marathon is away from when ``start()`` holds, for ``for_s`` simulated seconds."""

    def __init__(self, world, kind, start, for_s=None):
        super().__init__(world.clock, self.act)
        self.world = world
        self.kind = kind  # "refused", "503" or "dropped"
        self.start = start
        self.for_s = for_s
        self.began_at = None
        self.ended_at = None

    def act(self):
        now = self.monotonic()
        if self.began_at is None and self.start():
            self.began_at = now
            self.begin()
        elif self.began_at is not None and self.ended_at is None and self.for_s is not None \
                and now - self.began_at >= self.for_s:
            self.ended_at = now
            self.end()

    def begin(self):
        sim = self.world.sim
        if self.kind == "refused":
            sim.go_down()
        elif self.kind == "503":
            sim.inject("error", status=503, client_regex=ZDD_CLIENT)
        else:
            sim.inject("drop", client_regex=ZDD_CLIENT)

    def end(self):
        if self.kind == "refused":
            self.world.sim.come_up()
        else:
            self.world.sim.clear_faults()


def created(world):
    return any(record.path == "/v2/apps" for record in world.sim.writes())


def killed(world):
    return any(record.path == "/v2/tasks/delete" for record in world.sim.writes())


# --- before the first write: nothing is half done, stop at once ----------------------------------


@pytest.mark.parametrize("kind", ["refused", "503", "dropped"])
def test_before_the_first_write_a_marathon_away_stops_at_once(world, app_file, kind):
    seed_blue(world, 3)
    outage = Outage(world, kind, start=lambda: True)
    outage.begin()
    code, events, err = run_json(world, app_file(), clock=outage)
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert "GET" in err and "/v2/apps" in err and "Marathon does not answer" not in err
    assert world.clock.slept_s <= sum(zdd.RETRY_BACKOFF_S)  # the read's own retries, no more
    outage.end()
    assert writes(world) == []
    assert "resume_command" not in events[-1]


# --- after the first write: wait, look again, finish ---------------------------------------------


@pytest.mark.parametrize("kind", ["refused", "503", "dropped"])
def test_after_the_first_kill_a_10_s_outage_is_waited_out(world, app_file, kind):
    seed_blue(world, 3)
    outage = Outage(world, kind, start=lambda: killed(world), for_s=10)
    code, events, err = run_json(world, app_file(), "--stall-timeout", "60", clock=outage)
    assert code == 0, err
    assert outage.ended_at is not None
    assert "Marathon does not answer" in err and "Marathon answers again" in err
    assert writes(world) == SEQUENCE_3
    assert settle(world) == {"/nginx-green": (3, 3)}
    waits = [event for event in events if event["event"] == "waiting" and "Marathon" in event["reason"]]
    assert waits and max(event["waited_s"] for event in waits) < 60


def test_an_outage_right_after_the_create_is_waited_out(world, app_file):
    seed_blue(world, 3)
    outage = Outage(world, "refused", start=lambda: created(world), for_s=30)
    code, _, err = run_json(world, app_file(), "--stall-timeout", "60", clock=outage)
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


def test_an_unanswered_create_then_marathon_away_ends_with_6_and_the_resume_command(world, app_file):
    seed_blue(world, 3)
    world.sim.inject("drop", method="POST", path_regex="^/v2/apps$", count=1)  # not served: green does not exist
    world.sim.inject("error", method="GET", path_regex="^/v2/apps/nginx-green$", status=503)
    code, events, err = run_json(world, app_file(), "--stall-timeout", "60")
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert "Marathon did not answer for" in err and "to finish: zdd" in err
    assert events[-1]["resume_command"].endswith("--resume")
    assert writes(world) == []


@pytest.mark.parametrize("kind", ["before", "after"])
def test_resume_stops_at_once_before_its_first_poll_and_waits_after(world, app_file, kind):
    """--resume writes nothing before its polls, but both colours exist then: its polls wait too."""
    seed_half_done(world, blue=2, green=1, target=3)
    outage = Outage(world, "refused", start=lambda: True, for_s=20)
    if kind == "before":
        outage.begin()
    code, _, err = run_json(world, app_file(), "--resume", clock=outage)
    if kind == "before":
        assert code == zdd.ExitCode.MARATHON_FAILED, err
        assert writes(world) == [] and "Marathon does not answer" not in err
    else:  # Marathon goes away at the first poll's wait
        assert code == 0, err
        assert "Marathon does not answer" in err and outage.ended_at is not None
        assert settle(world) == {"/nginx-green": (3, 3)}


def test_the_issue_case_four_503s_in_a_row_to_one_read(world, app_file):
    """Four 503s in a row to GET /v2/apps/nginx-green used up the read's attempts: exit 6 halfway, before."""
    seed_blue(world, 3)
    outage = Outage(world, "503", start=lambda: killed(world))
    outage.begin = lambda: world.sim.fail_next("GET", r"^/v2/apps/nginx-green$", 503, count=zdd.GET_ATTEMPTS)
    code, _, err = run_json(world, app_file(), clock=outage)
    assert code == 0, err
    assert err.count("Marathon does not answer") == 1
    assert writes(world) == SEQUENCE_3


@pytest.mark.parametrize("seed", range(20))
def test_20_percent_random_5xx_to_zdd_never_ends_halfway(world, app_file, seed):
    """The issue's flaky proxy: a fifth of zdd's requests (reads and writes) answer 503, at random."""
    seed_blue(world, 3)
    outage = Outage(world, "503", start=lambda: created(world))
    outage.begin = lambda: world.sim.inject("error", rate=0.2, seed=seed, status=(503, 500), client_regex=ZDD_CLIENT)
    code, _, err = run_json(world, app_file(), clock=outage)
    assert code == 0, err
    assert settle(world) == {"/nginx-green": (3, 3)}


def test_a_kill_refused_while_marathon_goes_down_is_decided_again(world, app_file, tmp_path):
    """Marathon goes down during the pre-kill hook: the kill is refused twice, read again (waited for), sent again."""
    seed_blue(world, 3)
    calls = tmp_path / "hook-calls"
    hook = tmp_path / "down-hook.py"
    hook.write_text(  # its first call takes Marathon down (the simulator's control API), between poll and kill
        "#!/usr/bin/env python3\nimport os, time, urllib.request\n"
        f"first = not os.path.exists({str(calls)!r})\n"
        f"open({str(calls)!r}, 'a').write('call\\n')\n"
        "if first:\n"
        f"    urllib.request.urlopen(urllib.request.Request({world.sim.url + '/_sim/down'!r}, data=b'{{}}',"
        " method='POST'), timeout=5)\n"
        "    time.sleep(0.5)\n")
    hook.chmod(0o755)
    outage = Outage(world, "refused", start=lambda: world.sim._server is None, for_s=10)
    code, _, err = run_json(world, app_file(), "--pre-kill-hook", str(hook), "--stall-timeout", "120", clock=outage)
    assert code == 0, err
    assert "POST" in err and "connection refused; reading Marathon again" in err
    assert outage.ended_at is not None
    assert writes(world) == SEQUENCE_3
    assert calls.read_text().count("call") == 3  # the refused kill's hook call, then one per kill
    assert settle(world) == {"/nginx-green": (3, 3)}


# --- waiting ends: --stall-timeout, --deadline, answers waiting cannot fix -----------------------


@pytest.mark.parametrize("kind", ["refused", "503"])
def test_marathon_away_for_longer_than_the_stall_timeout_ends_with_6_then_resume(world, app_file, kind):
    seed_blue(world, 3)
    path = app_file()
    outage = Outage(world, kind, start=lambda: killed(world))
    code, events, err = run_json(world, path, "--stall-timeout", "60", clock=outage)
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert "Marathon did not answer for" in err and "--stall-timeout 60 s" in err
    away_s = world.clock.monotonic() - outage.began_at
    assert 60 <= away_s <= 60 + zdd.GET_ATTEMPTS * zdd.DEFAULT_REQUEST_TIMEOUT_S + sum(zdd.RETRY_BACKOFF_S)
    # the report comes from what zdd saw last, without asking Marathon again
    assert "/nginx-green: green 1/1 (as last seen); /nginx-blue: blue 3/3 (as last seen)" in err
    assert events[-1]["resume_command"].endswith("--resume")
    assert writes(world) == SEQUENCE_3[:3]
    outage.end()
    code, _, err = run_json(world, path, "--resume")
    assert code == 0, err
    assert settle(world) == {"/nginx-green": (3, 3)}


def test_the_deadline_ends_the_wait_with_10(world, app_file):
    seed_blue(world, 3)
    outage = Outage(world, "refused", start=lambda: killed(world))
    code, _, err = run_json(world, app_file(), "--deadline", "40", clock=outage)
    assert code == zdd.ExitCode.DEADLINE, err
    assert "Marathon does not answer" in err
    assert world.clock.slept_s <= 40
    assert "(as last seen)" in err and "to finish: zdd" in err


@pytest.mark.parametrize("status", [401, 403])
def test_an_answer_waiting_cannot_fix_stops_at_once(world, app_file, status):
    seed_blue(world, 3)
    outage = Outage(world, "503", start=lambda: killed(world))
    outage.begin = lambda: world.sim.fail_next("GET", r"^/v2/apps/nginx-", status, count=100)
    code, _, err = run_json(world, app_file(), clock=outage)
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert f"HTTP {status}" in err and "Marathon does not answer" not in err
    # one read in the loop, no retry, no wait; the failure report makes no request (the last state seen)
    assert [record.status for record in world.sim.requests].count(status) == 1
    assert "state: /nginx-green: green 1/1; /nginx-blue: blue 3/3" in err
    assert writes(world) == SEQUENCE_3[:3]


def test_the_stall_watch_does_not_count_the_outage(world, app_file):
    """New tasks that never become healthy stall after --stall-timeout of waiting for them, outage not included."""
    seed_blue(world, 3)
    outage = Outage(world, "refused", start=lambda: world.clock.slept_s >= 40, for_s=50)
    code, _, err = run_json(world, app_file(unhealthy_app()), "--stall-timeout", "60", clock=outage)
    assert code == zdd.ExitCode.STALLED, err
    assert outage.ended_at is not None
    assert world.clock.slept_s >= 60 + 50


# --- during a rollback --------------------------------------------------------------------------


def refusing_hook_that_breaks_marathon(tmp_path, world, fault):
    """A pre-kill hook that refuses (exit 1), after starting a Marathon fault through the simulator's control API."""
    control = {"down": ("/_sim/down", {}),
               "503": ("/_sim/faults", {"kind": "error", "status": 503, "client_regex": ZDD_CLIENT})}[fault]
    hook = tmp_path / "refusing-hook.py"
    hook.write_text(
        "#!/usr/bin/env python3\nimport json, sys, time, urllib.request\n"
        f"urllib.request.urlopen(urllib.request.Request({world.sim.url + control[0]!r}, "
        f"data=json.dumps({control[1]!r}).encode(), method='POST'), timeout=5)\n"
        "time.sleep(0.5)\nsys.exit(1)\n")
    hook.chmod(0o755)
    return str(hook)


def test_an_outage_during_a_rollback_is_waited_out(world, app_file, tmp_path):
    """The hook refuses and Marathon answers 503 to zdd for 10 s from then: the rollback waits, then completes."""
    seed_blue(world, 5)
    hook = refusing_hook_that_breaks_marathon(tmp_path, world, "503")
    outage = Outage(world, "503", start=lambda: world.sim.faults_injected["error"] > 0, for_s=10)
    outage.begin = lambda: None  # the hook began it
    code, events, err = run_json(world, app_file(), "--on-failure", "rollback", "--pre-kill-hook", hook,
                            "--stall-timeout", "60", clock=outage)
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert outage.ended_at is not None and "Marathon does not answer" in err
    kinds = [event["event"] for event in events]
    marathon_waits = [index for index, event in enumerate(events)
                      if event["event"] == "waiting" and event["reason"].startswith("Marathon does not answer")]
    assert marathon_waits and kinds.index("rollback") < marathon_waits[0] < kinds.index("rolled_back")
    assert writes(world) == [("create", "/nginx-green", 1), ("scale", "/nginx-blue", 6), ("scale", "/nginx-blue", 5),
                             ("delete", "/nginx-green")]
    assert settle(world) == {"/nginx-blue": (5, 5)}


def test_marathon_away_for_good_during_a_rollback_ends_with_14(world, app_file, tmp_path):
    seed_blue(world, 5)
    hook = refusing_hook_that_breaks_marathon(tmp_path, world, "down")
    outage = Outage(world, "refused", start=lambda: world.sim._server is None)
    code, events, err = run_json(world, app_file(), "--on-failure", "rollback", "--pre-kill-hook", hook,
                            "--stall-timeout", "60", clock=outage)
    assert code == zdd.ExitCode.ROLLBACK_FAILED, err
    assert "the rollback failed too: Marathon did not answer for" in err
    assert "/nginx-green: green 1/1 (as last seen)" in err and "to go back: zdd" in err
    assert events[-1]["resume_command"].endswith("--resume")
    outage.end()
    assert writes(world) == [("create", "/nginx-green", 1)]
