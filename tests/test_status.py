"""zdd --status and --watch: the state of a group, read without writing, against the simulator and fake LB.

Each state a group can be in is made the way it happens (a first deployment,
a pre-kill hook refusing halfway, a hybrid run, an HAProxy reloading, a
marathon-lb down), then ``--status`` is run without ``--force`` and without
an answer for prompts: it must never ask, and Marathon must see no write.
"""

import io
import json
import shlex
import signal

import zdd
from tests.helpers import QUIET, ActingClock, refusing_hook, run, seed_blue, writes


def never_ask(question):
    raise AssertionError(f"--status asked: {question}")


def status(world, app_path, *args, clock=None):
    """Run ``zdd --status`` in process, no --force; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["-m", world.sim.url, "-l", world.lb.url, "-j", app_path, *QUIET, "--status", *args]
    code = zdd.main(argv, clock=clock or world.clock, ask=never_ask, stdout=out, stderr=err, environ={})
    return code, out.getvalue(), err.getvalue()


OPTIONAL_STR, OPTIONAL_INT, OPTIONAL_BOOL = (str, type(None)), (int, type(None)), (bool, type(None))
# the status event's fields as the README documents them, besides event, time and elapsed_s
STATUS_FIELDS = {"group": str, "backend": str, "state": str, "summary": str, "apps": list, "lbs": list,
                 "step": OPTIONAL_INT, "steps": OPTIONAL_INT, "new_schedule": list, "old_schedule": list,
                 "waiting": OPTIONAL_STR, "next_step": OPTIONAL_STR, "finish_command": OPTIONAL_STR,
                 "back_command": OPTIONAL_STR}
APP_FIELDS = {"id": str, "colour": OPTIONAL_STR, "role": OPTIONAL_STR, "instances": int, "running": int,
              "healthy": int, "target": int, "started_at": OPTIONAL_STR, "hybrid_goal": int,
              "marathon_deployment": bool}
LB_FIELDS = {"url": str, "pids": (list, type(None)), "reloading": OPTIONAL_BOOL, "error": OPTIONAL_STR,
             "listeners": (list, type(None)), "unmatched": int}
LISTENER_FIELDS = {"app": str, "colour": OPTIONAL_STR, "up": int, "maint": int, "drained": int}
STATES = {"empty", "at_rest", "in_progress", "stuck", "hybrid", "unreadable"}


def check_fields(record, fields):
    assert set(record) == set(fields), record
    for name, kinds in fields.items():
        assert isinstance(record[name], kinds), (name, record[name])


def check_status_event(event):
    """The event has the README's fields, types and states, and nothing else."""
    check_fields({k: v for k, v in event.items() if k not in ("event", "time", "elapsed_s")}, STATUS_FIELDS)
    assert event["state"] in STATES
    for app in event["apps"]:
        check_fields(app, APP_FIELDS)
    for lb in event["lbs"]:
        check_fields(lb, LB_FIELDS)
        assert lb["pids"] is None or all(isinstance(pid, int) for pid in lb["pids"])
        for counts in lb["listeners"] or []:
            check_fields(counts, LISTENER_FIELDS)


def status_event(world, app_path, *args):
    """``zdd --status --output json``: (exit code, the one status event, every event name in order)."""
    code, out, err = status(world, app_path, "--output", "json", *args)
    events = [json.loads(line) for line in out.splitlines()]
    statuses = [event for event in events if event["event"] == "status"]
    assert len(statuses) == 1, out
    check_status_event(statuses[0])
    assert events[-1]["event"] == "finished" and events[-1]["result"] == ("status" if code == 0 else "failed")
    return code, statuses[0], [event["event"] for event in events]


def deploy(world, app_path, *args):
    """A real zdd deployment in the same world (with --force); returns its exit code."""
    return run(world, app_path, *args)[0]


def stopped_at_step_3(world, app_path, tmp_path):
    """blue 10 -> green stopped by the pre-kill hook at its third kill: green 3, blue 8."""
    seed_blue(world, 10)
    code = deploy(world, app_path, "--pre-kill-hook", refusing_hook(tmp_path, 2))
    assert code == zdd.ExitCode.HOOK_REFUSED
    world.clock.advance(30)
    world.sim.clear_log()


# --- each state of a group ----------------------------------------------------------------------


def test_empty_group(world, app_path):
    code, out, err = status(world, app_path)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "group nginx, HAProxy backend nginx_10000",
        "",
        "no app in the group",
        "",
        f"marathon-lb {world.lb.url}: PIDs 4001 4002 (not reloading)",
        "",
        "verdict: no app in group nginx: a deployment creates its first colour, blue",
    ]
    code, event, names = status_event(world, app_path)
    assert code == 0 and names == ["start", "status", "finished"]
    assert event["state"] == "empty" and event["apps"] == []
    assert event["lbs"] == [{"url": world.lb.url, "pids": [4001, 4002], "reloading": False, "error": None,
                             "listeners": [], "unmatched": 0}]
    assert event["finish_command"] is None and event["back_command"] is None
    assert writes(world) == []


def test_one_app_at_rest(world, app_path):
    seed_blue(world, 3)
    world.clock.advance(30)
    code, out, err = status(world, app_path)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "group nginx, HAProxy backend nginx_10000",
        "",
        "COLOUR  APP          ROLE  RUNNING  HEALTHY  INSTANCES  TARGET  STARTED AT",
        "blue    /nginx-blue  -           3        3          3       3  2025-06-01T10:00:00",
        "",
        f"marathon-lb {world.lb.url}: PIDs 4001 4002 (not reloading)",
        "  blue  /nginx-blue  UP 3  MAINT 0  drained 0",
        "",
        "verdict: at rest: /nginx-blue (blue) alone serves the group, 3/3 healthy",
    ]
    code, event, _ = status_event(world, app_path)
    assert event["state"] == "at_rest"
    assert event["apps"] == [{"id": "/nginx-blue", "colour": "blue", "role": None, "instances": 3, "running": 3,
                              "healthy": 3, "target": 3, "started_at": "2025-06-01T10:00:00", "hybrid_goal": 0,
                              "marathon_deployment": False}]
    assert event["lbs"][0]["listeners"] == [{"app": "/nginx-blue", "colour": "blue", "up": 3, "maint": 0,
                                             "drained": 0}]
    assert writes(world) == []


def test_a_first_deployment_still_starting(world, app_path):
    assert deploy(world, app_path) == 0
    world.sim.clear_log()
    code, event, _ = status_event(world, app_path)
    assert code == 0 and event["state"] == "at_rest"
    assert event["apps"][0]["marathon_deployment"] is True and event["apps"][0]["healthy"] < 5
    assert "its Marathon deployment is in progress" in event["summary"]
    assert writes(world) == []


def test_a_deployment_stopped_halfway(world, app_path, tmp_path):
    stopped_at_step_3(world, app_path, tmp_path)
    code, out, err = status(world, app_path)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[2:5] == [
        "COLOUR  APP           ROLE  RUNNING  HEALTHY  INSTANCES  TARGET  STARTED AT",
        "blue    /nginx-blue   old         8        8          8      10  2025-06-01T10:00:00",
        "green   /nginx-green  new         3        3          3      10  2026-01-01T12:00:00",
    ]
    assert f"marathon-lb {world.lb.url}: PIDs 4001 4002 (not reloading)" in lines
    assert "  blue   /nginx-blue   UP 7  MAINT 1  drained 1" in lines
    assert "  green  /nginx-green  UP 3  MAINT 0  drained 0" in lines
    assert "schedule: green 1 -> 2 -> [3] -> 5 -> 10, blue 10 -> 9 -> [8] -> 7 -> 5 -> 0" in lines
    assert ("verdict: deployment stopped at step 3 of 5: nothing to wait for, and the next step "
            "(killing 1, scaling to 5) is a write only a zdd run makes") in lines
    finish = next(line for line in lines if line.startswith("to finish:  ")).split("to finish:  ", 1)[1]
    back = next(line for line in lines if line.startswith("to go back: ")).split("to go back: ", 1)[1]
    assert finish.endswith(" --resume") and back.endswith(" --complete-prev")
    assert "--status" not in finish and "--status" not in back

    code, event, _ = status_event(world, app_path)
    assert (event["state"], event["step"], event["steps"], event["next_step"]) == ("stuck", 3, 5,
                                                                                    "killing 1, scaling to 5")
    assert (event["new_schedule"], event["old_schedule"]) == ([1, 2, 3, 5, 10], [10, 9, 8, 7, 5, 0])
    assert [app["role"] for app in event["apps"]] == ["old", "new"]
    assert writes(world) == []

    # the printed command finishes the deployment
    argv = shlex.split(finish)[1:]
    assert zdd.main(argv, clock=world.clock, ask=lambda question: True, stdout=io.StringIO(),
                    stderr=io.StringIO(), environ={}) == 0
    assert [app["id"] for app in world.sim.api_apps()] == ["/nginx-green"]


def test_a_deployment_waiting_for_a_reloading_marathon_lb(world, app_path, tmp_path):
    stopped_at_step_3(world, app_path, tmp_path)
    world.lb.extra_pids = [4003]
    code, out, _ = status(world, app_path)
    assert code == 0
    assert f"marathon-lb {world.lb.url}: PIDs 4001 4002 4003 (reloading)" in out.splitlines()
    expected = (f"deployment in progress at step 3 of 5, waiting: marathon-lb {world.lb.url} "
                "is reloading (3 HAProxy PIDs)")
    assert f"verdict: {expected}" in out.splitlines()
    code, event, _ = status_event(world, app_path)
    assert (event["state"], event["waiting"], event["summary"]) == (
        "in_progress", f"marathon-lb {world.lb.url} is reloading (3 HAProxy PIDs)", expected)
    assert event["lbs"][0]["pids"] == [4001, 4002, 4003] and event["lbs"][0]["reloading"] is True
    assert writes(world) == []


def test_a_hybrid_group(world, app_path):
    seed_blue(world, 4)
    assert deploy(world, app_path, "--new-instances", "2") == 0
    world.clock.advance(30)
    world.sim.clear_log()
    code, out, _ = status(world, app_path)
    assert code == 0
    lines = out.splitlines()
    assert "green   /nginx-green  new         2        2          2       4  2026-01-01T12:00:00  hybrid goal 2" \
        in lines
    assert "verdict: hybrid: green 2 (its goal) and blue 2 serve together, of 4" in lines
    assert next(line for line in lines if line.startswith("to finish:  ")).endswith(" --complete-cur")
    assert next(line for line in lines if line.startswith("to go back: ")).endswith(" --complete-prev")
    assert not any(line.startswith("schedule:") for line in lines)
    code, event, _ = status_event(world, app_path)
    assert event["state"] == "hybrid" and event["step"] is None
    assert {app["id"]: app["hybrid_goal"] for app in event["apps"]} == {"/nginx-blue": 0, "/nginx-green": 2}
    assert writes(world) == []


def test_a_marathon_lb_that_does_not_answer(world, app_path, tmp_path):
    stopped_at_step_3(world, app_path, tmp_path)
    world.lb.down()
    code, out, err = status(world, app_path)
    assert code == zdd.ExitCode.LB_FAILED
    lines = out.splitlines()
    failure = f"GET {world.lb.url}/haproxy?stats;csv;scope=nginx_10000 failed after 4 attempts: connection refused"
    assert f"marathon-lb {world.lb.url}: did not answer: {failure}" in lines
    assert lines[3].startswith("blue    /nginx-blue   old         8"), "Marathon's part is shown"
    assert next(line for line in lines if line.startswith("to finish:  ")).endswith(" --resume")
    assert err.strip().endswith(f"zdd: marathon-lb {world.lb.url} did not answer: {failure}")
    assert err.count("\n") == 1 and "Traceback" not in err
    code, event, names = status_event(world, app_path)
    assert code == zdd.ExitCode.LB_FAILED and names == ["start", "status", "error", "finished"]
    assert event["lbs"] == [{"url": world.lb.url, "pids": None, "reloading": None, "error": failure,
                             "listeners": None, "unmatched": 0}]
    assert writes(world) == []


def test_a_marathon_lb_whose_pids_fail(world, app_path):
    seed_blue(world, 3)
    world.clock.advance(30)
    world.lb.pids_failure = "500"
    code, out, _ = status(world, app_path)
    assert code == zdd.ExitCode.LB_FAILED
    assert (f"marathon-lb {world.lb.url}: PIDs unknown: GET {world.lb.url}/_haproxy_getpids answered HTTP 500"
            in out.splitlines())
    assert "  blue  /nginx-blue  UP 3  MAINT 0  drained 0" in out.splitlines()
    assert world.lb.pid_polls == 1, "the PIDs are not asked again (each request forks inside HAProxy)"


def test_a_marathon_lb_whose_stats_are_not_csv(world, app_path):
    """The status names the request a page that is not stats CSV answered; no PIDs are asked of it."""
    seed_blue(world, 3)
    world.lb.stats_failure = "garbage"
    code, out, err = status(world, app_path)
    assert code == zdd.ExitCode.LB_FAILED
    failure = (f"GET {world.lb.url}/haproxy?stats;csv;scope=nginx_10000 is not HAProxy's stats CSV "
               "(stats rows before the CSV header)")
    assert f"marathon-lb {world.lb.url}: did not answer: {failure}" in out.splitlines()
    assert err.strip().endswith(f"zdd: marathon-lb {world.lb.url} did not answer: {failure}")
    assert world.lb.pid_polls == 0


def test_marathon_down_ends_with_6(world, app_path):
    seed_blue(world, 3)
    world.sim.go_down()
    try:
        code, out, err = status(world, app_path)
    finally:
        world.sim.come_up()
    assert code == zdd.ExitCode.MARATHON_FAILED
    assert out == ""
    assert "connection refused" in err and "Traceback" not in err
    assert world.lb.stats_polls == 0 and world.lb.pid_polls == 0
    assert writes(world) == []


def test_one_status_reads_the_stats_and_the_pids_once(world, app_path, tmp_path):
    stopped_at_step_3(world, app_path, tmp_path)
    stats, pids = world.lb.stats_polls, world.lb.pid_polls
    assert status(world, app_path)[0] == 0
    assert (world.lb.stats_polls - stats, world.lb.pid_polls - pids) == (1, 1)


def test_every_flag_of_the_deployment_may_stay(world, app_path, tmp_path):
    """The operator adds --status to the command that failed: nothing is written, nothing asked."""
    stopped_at_step_3(world, app_path, tmp_path)
    code, event, _ = status_event(world, app_path, "--force", "--resume", "--max-wait", "0")
    assert code == 0 and event["state"] == "stuck"
    assert event["finish_command"].endswith("--output json --force --max-wait 0 --resume")
    assert writes(world) == []


def test_watch_without_status_is_refused(world, app_path):
    out, err = io.StringIO(), io.StringIO()
    argv = ["-m", world.sim.url, "-l", world.lb.url, "-j", app_path, *QUIET, "--watch"]
    assert zdd.main(argv, clock=world.clock, stdout=out, stderr=err, environ={}) == zdd.ExitCode.INVALID_ARGS
    assert err.getvalue() == "zdd: error: --watch goes with --status\n"
    assert writes(world) == []


# --- --watch ------------------------------------------------------------------------------------


class CtrlCAfter(ActingClock):
    """The world's clock, raising SIGINT once ``seconds`` have been slept (as Ctrl-C would).

    ``then``: (seconds, callable) pairs, each called once that much has been slept.
    """

    def __init__(self, clock, seconds, then=()):
        super().__init__(clock, self.act)
        self.seconds, self.start = seconds, clock.slept_s
        self.then = list(then)

    def act(self):
        slept = self.clock.slept_s - self.start
        for at, action in [(at, action) for at, action in self.then if slept >= at]:
            self.then.remove((at, action))
            action()
        if slept >= self.seconds:
            signal.raise_signal(signal.SIGINT)


def test_watch_refreshes_every_step_delay_until_ctrl_c(world, app_path, tmp_path):
    stopped_at_step_3(world, app_path, tmp_path)
    stats, pids = world.lb.stats_polls, world.lb.pid_polls
    world.lb.extra_pids = [4003]
    code, out, err = status(world, app_path, "--watch", "--output", "json", "-s", "5",
                            clock=CtrlCAfter(world.clock, 12))
    assert code == zdd.ExitCode.INTERRUPTED
    events = [json.loads(line) for line in out.splitlines()]
    refreshes = [event for event in events if event["event"] == "status"]
    for event in refreshes:
        check_status_event(event)
    assert [event["elapsed_s"] for event in refreshes] == [0.0, 5.0, 10.0]
    assert events[-1]["event"] == "finished" and events[-1]["result"] == "interrupted"
    assert (world.lb.stats_polls - stats, world.lb.pid_polls - pids) == (3, 1), "PIDs on the first refresh only"
    assert refreshes[0]["lbs"][0]["pids"] == [4001, 4002, 4003]
    assert refreshes[1]["lbs"][0]["pids"] is None and refreshes[1]["lbs"][0]["reloading"] is None
    assert refreshes[0]["state"] == "in_progress" and refreshes[1]["state"] == "stuck"
    assert "stopped by SIGINT" in err
    assert writes(world) == []


def test_watch_in_text_off_a_terminal_prints_each_refresh(world, app_path):
    seed_blue(world, 3)
    world.clock.advance(30)
    code, out, _ = status(world, app_path, "--watch", "-s", "5", clock=CtrlCAfter(world.clock, 7))
    assert code == zdd.ExitCode.INTERRUPTED
    assert out.count("verdict: at rest") == 2 and "\x1b[" not in out
    assert f"marathon-lb {world.lb.url}: PIDs not read again (a read forks inside HAProxy)" in out.splitlines()


def test_watch_goes_on_while_marathon_is_down(world, app_path):
    seed_blue(world, 3)
    world.clock.advance(30)
    world.sim.go_down()
    try:
        # each refresh's reads take 3.5 s of retries: refreshes at 0 and 8.5 s, Ctrl-C at 14 s
        code, out, _ = status(world, app_path, "--watch", "--output", "json", "-s", "5",
                              clock=CtrlCAfter(world.clock, 14))
    finally:
        world.sim.come_up()
    assert code == zdd.ExitCode.INTERRUPTED
    refreshes = [json.loads(line) for line in out.splitlines() if '"event": "status"' in line]
    for event in refreshes:
        check_status_event(event)
    assert [event["state"] for event in refreshes] == ["unreadable", "unreadable"]
    assert "connection refused" in refreshes[0]["summary"]


def test_a_complete_cur_stopped_halfway_is_finished_by_complete_cur(world, app_path):
    seed_blue(world, 4)
    assert deploy(world, app_path, "--new-instances", "2") == 0
    world.clock.advance(30)
    world.sim.fail_next("DELETE", r"^/v2/apps/nginx-blue$", 400)  # green scaled to 4, then the delete fails
    assert deploy(world, app_path, "--complete-cur") == zdd.ExitCode.DELETE_FAILED
    world.clock.advance(30)
    world.sim.clear_log()
    code, event, _ = status_event(world, app_path)
    assert code == 0
    assert [(app["id"], app["instances"]) for app in event["apps"]] == [("/nginx-blue", 2), ("/nginx-green", 4)]
    assert (event["state"], event["next_step"]) == ("stuck", "deleting the old app")
    assert event["finish_command"].endswith(" --complete-cur")
    assert event["back_command"].endswith(" --complete-prev")
    assert writes(world) == []


def test_no_force_and_no_terminal_is_fine_for_status(world, app_path):
    """A deployment without -f and without a terminal refuses to start (exit 3); --status never prompts."""
    seed_blue(world, 3)
    out, err = io.StringIO(), io.StringIO()
    argv = ["-m", world.sim.url, "-l", world.lb.url, "-j", app_path, *QUIET, "--status"]
    code = zdd.main(argv, clock=world.clock, stdout=out, stderr=err, environ={})  # the real prompt, stdin no tty
    assert (code, err.getvalue()) == (0, "")
    assert "verdict: at rest" in out.getvalue()
    deploying = zdd.main(argv[:-1], clock=world.clock, stdout=io.StringIO(), stderr=io.StringIO(), environ={})
    assert deploying == zdd.ExitCode.INVALID_ARGS, "the same command without --status would refuse"
    assert writes(world) == []


def test_watch_reads_the_pids_of_a_marathon_lb_once_it_answers(world, app_path):
    seed_blue(world, 3)
    world.clock.advance(30)
    world.lb.down()
    # refresh 1 at 0 s: the stats fail after 3.5 s of retries; the LB is back at 4 s;
    # refresh 2 at 8.5 s reads its PIDs; refresh 3 at 13.5 s does not; Ctrl-C at 14 s
    clock = CtrlCAfter(world.clock, 14, then=[(4, world.lb.up)])
    code, out, _ = status(world, app_path, "--watch", "--output", "json", "-s", "5", clock=clock)
    assert code == zdd.ExitCode.INTERRUPTED
    refreshes = [json.loads(line) for line in out.splitlines() if '"event": "status"' in line]
    assert [event["lbs"][0]["pids"] for event in refreshes] == [None, [4001, 4002], None]
    assert refreshes[0]["lbs"][0]["error"] is not None and refreshes[2]["lbs"][0]["error"] is None
    assert world.lb.pid_polls == 1


def test_the_printed_commands_drop_status_and_watch_even_abbreviated(world, app_path, tmp_path):
    stopped_at_step_3(world, app_path, tmp_path)
    out, err = io.StringIO(), io.StringIO()
    argv = ["-m", world.sim.url, "-l", world.lb.url, "-j", app_path, *QUIET, "--stat", "--output", "json"]
    assert zdd.main(argv, clock=world.clock, ask=never_ask, stdout=out, stderr=err, environ={}) == 0
    event = next(json.loads(line) for line in out.getvalue().splitlines() if '"event": "status"' in line)
    for command in (event["finish_command"], event["back_command"]):
        assert "--stat" not in command and "--wat" not in command
        assert command.startswith("zdd -m ") and "--output json" in command
