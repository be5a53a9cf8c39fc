"""The swap loop end to end, in process: zdd.main against the fake Marathon and marathon-lb.

Time is the world's FakeClock, so waits of minutes take no time; assertions
are on the writes that reached Marathon, the final state and the exit code.
"""

import base64
import http.server
import io
import json
import threading

import pytest

import zdd
from tests.helpers import (
    SEQUENCE_3,
    SEQUENCE_10,
    SEQUENCE_HYBRID,
    make_hook,
    run,
    seed_blue,
    seed_half_done,
    settle,
    unhealthy_app,
    writes,
    zdd_labels,
)
from tests.sandbox.fakelb import FakeMarathonLB
from tests.sandbox.world import load_fixture


@pytest.mark.parametrize("version", ["1.4", "1.5"])
def test_blue_3_to_green_writes_the_original_sequence(request, version, app_file):
    world = request.getfixturevalue("world14" if version == "1.4" else "world")
    seed_blue(world, 3)
    code, out, err = run(world, app_file())
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert settle(world) == {"/nginx-green": (3, 3)}
    assert json.loads(out)["id"] == "/nginx-green"


def test_blue_10_to_green_writes_the_original_sequence(world, app_file):
    seed_blue(world, 10)
    code, _, err = run(world, app_file())
    assert code == 0, err
    assert writes(world) == SEQUENCE_10
    assert settle(world) == {"/nginx-green": (10, 10)}


def test_hybrid_ends_with_both_colours(world, app_file):
    seed_blue(world, 4)
    code, _, err = run(world, app_file(), "--new-instances", "2")
    assert code == 0, err
    assert writes(world) == SEQUENCE_HYBRID
    assert settle(world) == {"/nginx-blue": (2, 2), "/nginx-green": (2, 2)}


def test_linear_increase_steps_by_k(world, app_file):
    seed_blue(world, 6)
    code, _, err = run(world, app_file(), "--linear-increase", "2")
    assert code == 0, err
    scales = [w[2] for w in writes(world) if w[0] == "scale"]
    assert scales == [3, 5, 6]
    assert settle(world) == {"/nginx-green": (6, 6)}


def test_initial_instances_above_target_is_capped(world, app_file):
    seed_blue(world, 2)
    code, _, err = run(world, app_file(), "--initial-instances", "5")
    assert code == 0, err
    assert writes(world)[0] == ("create", "/nginx-green", 2)
    assert settle(world) == {"/nginx-green": (2, 2)}


def test_first_deploy_creates_blue_with_the_json_instances(world, app_file):
    code, out, err = run(world, app_file())
    assert code == 0, err
    assert writes(world) == [("create", "/nginx-blue", 5)]
    app = json.loads(out)
    assert app["labels"]["HAPROXY_DEPLOYMENT_COLOUR"] == "blue"
    assert app["container"]["portMappings"][0]["servicePort"] == 10000


def test_second_deploy_after_green_goes_back_to_blue_on_the_first_port(world, app_file):
    world.seed_app("1-nginx-marathon1.5.json", id="/nginx-green", instances=2,
                   labels=zdd_labels("green", 10000, 2, "2025-06-01T10:00:00"),
                   container=dict(load_fixture("1-nginx-marathon1.5.json")["container"],
                                  portMappings=[{"containerPort": 8080, "hostPort": 0, "servicePort": 10001}]))
    code, out, err = run(world, app_file())
    assert code == 0, err
    created = world.sim.writes()[0].body
    assert created["id"] == "/nginx-blue"
    assert created["container"]["portMappings"][0]["servicePort"] == 10000
    assert settle(world) == {"/nginx-blue": (2, 2)}


# --- resume and hybrid completion ----------------------------------------------------------------


def test_without_resume_an_existing_deployment_is_refused(world, app_file):
    seed_half_done(world)
    code, _, err = run(world, app_file())
    assert code == zdd.ExitCode.INVALID_ARGS
    assert "in progress" in err and "--resume" in err
    assert writes(world) == []


def test_resume_finishes_a_stopped_deployment(world, app_file):
    seed_half_done(world, blue=2, green=1, target=3)
    code, _, err = run(world, app_file(), "--resume")
    assert code == 0, err
    # blue 2 + green 1 of 3: marathon-lb drains nothing until green grows, so zdd scales first
    assert writes(world) == [("scale", "/nginx-green", 3), ("delete", "/nginx-blue")]
    assert settle(world) == {"/nginx-green": (3, 3)}


def test_resume_on_a_single_app_group_is_a_normal_deployment(world, app_file):
    seed_blue(world, 3)
    code, _, err = run(world, app_file(), "--resume")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


def test_hybrid_then_complete_cur(world, app_file):
    seed_blue(world, 4)
    assert run(world, app_file(), "-n", "2")[0] == 0
    world.sim.clear_log()
    code, _, err = run(world, app_file(), "--complete-cur")
    assert code == 0, err
    assert writes(world)[-1] == ("delete", "/nginx-blue")
    assert settle(world) == {"/nginx-green": (4, 4)}


def test_hybrid_then_complete_prev(world, app_file):
    seed_blue(world, 4)
    assert run(world, app_file(), "-n", "2")[0] == 0
    world.sim.clear_log()
    code, _, err = run(world, app_file(), "--complete-prev")
    assert code == 0, err
    assert ("scale", "/nginx-blue", 4) in writes(world)
    assert writes(world)[-1] == ("delete", "/nginx-green")
    assert settle(world) == {"/nginx-blue": (4, 4)}


def test_complete_cur_does_not_wait_max_wait_when_nothing_can_drain(world, app_file):
    """The original waited --max-wait (300 s) before its first scale; nothing could drain then."""
    seed_blue(world, 4)
    assert run(world, app_file(), "-n", "2")[0] == 0
    before = world.clock.monotonic()
    assert run(world, app_file(), "--complete-cur")[0] == 0
    assert world.clock.monotonic() - before < 100


# --- dry run on every path -----------------------------------------------------------------------


@pytest.mark.parametrize("setup, flags, expected_id", [
    ("empty", (), "/nginx-blue"),
    ("blue", (), "/nginx-green"),
    ("blue", ("-n", "2"), "/nginx-green"),
    ("half", ("--resume",), "/nginx-green"),
    ("hybrid", ("--complete-cur",), "/nginx-green"),
    ("hybrid", ("--complete-prev",), "/nginx-blue"),
])
def test_dry_run_prints_the_definition_and_writes_nothing(world, app_file, setup, flags, expected_id):
    if setup == "blue":
        seed_blue(world, 4)
    elif setup == "half":
        seed_half_done(world)
    elif setup == "hybrid":
        seed_half_done(world, blue=2, green=2, target=4, new_instances=2)
    code, out, err = run(world, app_file(), "--dry-run", *flags)
    assert code == 0, err
    assert json.loads(out)["id"] == expected_id
    assert out == json.dumps(json.loads(out), sort_keys=True, indent=2) + "\n"
    assert writes(world) == []
    if setup != "empty":
        assert "plan:" in err


def test_dry_run_plan_shows_the_schedule(world, app_file):
    seed_blue(world, 10)
    code, _, err = run(world, app_file(), "--dry-run")
    assert code == 0
    assert "green 1 -> 2 -> 3 -> 5 -> 10, blue 10 -> 9 -> 8 -> 7 -> 5 -> 0" in err


# --- hooks and prompts ---------------------------------------------------------------------------


def test_pre_kill_hook_gets_old_app_task_ids_and_new_app(world, app_file, tmp_path):
    seed_blue(world, 3)
    hook, record = make_hook(tmp_path, 0)
    code, _, err = run(world, app_file(), "--pre-kill-hook", hook)
    assert code == 0, err
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(calls) == 2  # one per kill: the delete needs no hook
    killed = [r.body["ids"] for r in world.sim.writes() if r.path == "/v2/tasks/delete"]
    for (old_app, task_ids, new_app), ids in zip(calls, killed):
        assert json.loads(old_app)["id"] == "/nginx-blue"
        assert json.loads(task_ids) == ids
        assert json.loads(new_app)["id"] == "/nginx-green"


def test_failing_pre_kill_hook_stops_with_the_old_app_serving(world, app_file, tmp_path):
    seed_blue(world, 3)
    hook, _ = make_hook(tmp_path, 3)
    code, _, err = run(world, app_file(), "--pre-kill-hook", hook)
    assert code == zdd.ExitCode.HOOK_REFUSED
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert settle(world)["/nginx-blue"] == (3, 3)
    assert "--resume" in err


def test_operator_says_no_before_creating(world, app_file):
    seed_blue(world, 3)
    code, _, err = run(world, app_file(), ask=lambda question: False)
    assert code == zdd.ExitCode.DECLINED
    assert writes(world) == []


def test_prompts_are_asked_without_force(world, app_file):
    seed_blue(world, 3)
    questions = []

    def answer(question):
        questions.append(question)
        return len(questions) < 3

    out, err = io.StringIO(), io.StringIO()
    argv = ["-m", world.sim.url, "-l", world.lb.url, "-j", app_file(), "--syslog-socket", "/dev/null"]
    code = zdd.main(argv, clock=world.clock, ask=answer, stdout=out, stderr=err, environ={})
    assert code == zdd.ExitCode.DECLINED
    assert questions[0] == "Continue with deployment?"
    assert len(questions) == 3
    assert writes(world) == [("create", "/nginx-green", 1), ("kill", 1), ("scale", "/nginx-green", 2)]


# --- marathon-lb views ---------------------------------------------------------------------------


def old_server_names(world):
    for service in world.lb.services():
        return [s.name for s in service.servers if s.app_id == "/nginx-blue"]


def test_max_wait_kills_maint_tasks_still_holding_sessions(world, app_file):
    seed_blue(world, 3)
    for name in old_server_names(world):
        world.lb.hold_sessions(name, scur=2)
    code, _, err = run(world, app_file(), "--max-wait", "60")
    assert code == 0, err
    assert "--max-wait (60 s) passed" in err
    # the warning stands right before the kill it explains, after the step's progress line
    log = [line.split(" zdd: ", 1)[-1] for line in err.splitlines()]
    forced = log.index("--max-wait (60 s) passed: going on with the old tasks in MAINT, drained or not")
    assert log[forced - 1].startswith("step 1: ") and log[forced + 1].startswith("Killing 1 drained old task(s)")
    assert writes(world) == SEQUENCE_3
    assert world.clock.slept_s >= 3 * 60


def test_sessions_block_the_kill(world, app_file):
    seed_blue(world, 3)
    for name in old_server_names(world):
        world.lb.hold_sessions(name, scur=1)
    code, _, err = run(world, app_file(), "--max-wait", "100000", "--stall-timeout", "0", "--deadline", "50")
    assert code == zdd.ExitCode.DEADLINE
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "waiting for HAProxy to drain" in err


def test_a_reloading_lb_is_waited_for(world, app_file):
    seed_blue(world, 3)
    world.lb.extra_pids = [4003]
    code, _, err = run(world, app_file(), "--reload-check", "getpids", "--max-wait", "100000", "--deadline", "40")
    assert code == zdd.ExitCode.DEADLINE
    assert "reloading (3 HAProxy PIDs)" in err
    assert writes(world) == [("create", "/nginx-green", 1)]


def test_an_lb_reloading_all_along_is_passed_after_max_wait(world, app_file):
    """An old HAProxy worker that never ends (a long-lived connection): each step goes on after --max-wait,
    killing the old tasks in MAINT, as the stats are read while reloading too."""
    seed_blue(world, 3)
    world.lb.extra_pids = [4003]
    code, _, err = run(world, app_file(), "--reload-check", "getpids", "--max-wait", "30", "--deadline", "600")
    assert code == 0, err
    assert "reloading (3 HAProxy PIDs)" in err and "--max-wait (30 s) passed" in err
    assert writes(world) == SEQUENCE_3


def test_a_lagging_lb_gives_the_same_writes(world, app_file):
    seed_blue(world, 10)
    world.lb.lag = 2
    code, _, err = run(world, app_file())
    assert code == 0, err
    assert writes(world) == SEQUENCE_10
    assert "has not caught up" in err


def test_two_lbs_ipv4_and_ipv6(world, app_file):
    seed_blue(world, 3)
    with FakeMarathonLB(world.sim, host="::1") as second:
        names = old_server_names(world)
        second.hold_sessions(names[0], scur=1)  # drained on one LB only: must not be killed
        code, _, err = run(world, app_file(), lbs=f"{world.lb.url},{second.url}")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert second.stats_polls > 0 and world.lb.stats_polls > 0


def test_lb_without_an_own_port_keeps_the_scheme_default():
    assert zdd.lb_urls(("http://lb.example/",), lambda host: ["192.0.2.7", "2001:db8::7"]) == [
        "http://192.0.2.7/", "http://[2001:db8::7]/"]


# --- apps of other shapes ------------------------------------------------------------------------


def test_ip_per_task_app_drains(world, app_file):
    app = load_fixture("1-nginx-marathon1.5.json")
    app["networks"] = [{"mode": "container", "name": "dcos"}]
    app["container"]["portMappings"][0].pop("hostPort")
    world.seed_app(app, id="/nginx-blue", instances=3,
                   labels=zdd_labels("blue", 10000, 3, "2025-06-01T10:00:00"))
    code, _, err = run(world, app_file(app))
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


def test_port_definitions_app(world, app_file):
    app = {"id": "web", "cmd": "serve", "instances": 3, "portDefinitions": [{"port": 10000, "protocol": "tcp"}],
           "labels": {"HAPROXY_DEPLOYMENT_GROUP": "web", "HAPROXY_DEPLOYMENT_ALT_PORT": "10001"}}
    labels = zdd_labels("blue", 10000, 3, "2025-06-01T10:00:00")
    world.seed_app(dict(app, id="/web-blue", labels=dict(app["labels"], **labels)))
    code, out, err = run(world, app_file(app))
    assert code == 0, err
    assert json.loads(out)["portDefinitions"][0]["port"] == 10001
    assert [w[0] for w in writes(world)] == ["create", "kill", "scale", "kill", "scale", "delete"]


def test_group_with_a_slash_matches_its_backend(world, app_file):
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"]["HAPROXY_DEPLOYMENT_GROUP"] = "/prod/nginx"
    world.seed_app(app, id="/nginx-blue", instances=3,
                   labels=zdd_labels("blue", 10000, 3, "2025-06-01T10:00:00"))
    assert world.lb.services()[0].name == "prod_nginx_10000"
    code, _, err = run(world, app_file(app))
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


# --- failures ------------------------------------------------------------------------------------


def test_new_app_never_healthy_stalls_with_a_resume_hint(world, app_file):
    seed_blue(world, 3)
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"]["SIM_HEALTHY"] = "false"
    code, _, err = run(world, app_file(app), "--stall-timeout", "120")
    assert code == zdd.ExitCode.STALLED
    assert "no progress for 120 s" in err
    assert "--resume" in err and "--complete-prev" in err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert settle(world)["/nginx-blue"] == (3, 3)


def test_deadline_ends_the_run(world, app_file):
    seed_blue(world, 3)
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"]["SIM_HEALTHY"] = "false"
    code, _, err = run(world, app_file(app), "--deadline", "45", "--stall-timeout", "0")
    assert code == zdd.ExitCode.DEADLINE
    assert world.clock.slept_s <= 45 + 1e-6
    assert "--deadline" in err


@pytest.mark.parametrize("method, path, code", [
    ("POST", r"^/v2/apps$", zdd.ExitCode.CREATE_FAILED),
    ("POST", r"^/v2/tasks/delete$", zdd.ExitCode.SCALE_FAILED),
    ("PUT", r"^/v2/apps/nginx-green$", zdd.ExitCode.SCALE_FAILED),
    ("DELETE", r"^/v2/apps/nginx-blue$", zdd.ExitCode.DELETE_FAILED),
])
def test_a_refused_write_ends_with_its_exit_code(world, app_file, method, path, code):
    seed_blue(world, 3)
    world.sim.fail_next(method, path, 422, body={"message": "Object is not valid"})
    exit_code, _, err = run(world, app_file())
    assert exit_code == code
    assert "Object is not valid" in err
    assert "Traceback" not in err


def test_locked_app_is_waited_out_never_forced(world, app_file):
    seed_blue(world, 3)
    lock = {"message": "App is locked by one or more deployments. Override with the option '?force=true'.",
            "deployments": [{"id": "x"}]}
    world.sim.fail_next("PUT", r"^/v2/apps/nginx-green$", 409, count=2, body=lock)
    code, _, err = run(world, app_file())
    assert code == 0, err
    assert all("force" not in r.query for r in world.sim.requests)
    assert settle(world) == {"/nginx-green": (3, 3)}


def test_marathon_5xx_on_get_is_retried(world, app_file):
    seed_blue(world, 3)
    world.sim.fail_next("GET", r"^/v2/apps/nginx-green$", 503, count=2)
    code, _, err = run(world, app_file())
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


def test_marathon_gone_mid_run_ends_with_6_after_the_stall_timeout(world, app_file):
    seed_blue(world, 3)
    world.sim.fail_next("GET", r"^/v2/apps/nginx-green$", 500, count=10000)
    code, _, err = run(world, app_file(), "--stall-timeout", "100")
    assert code == zdd.ExitCode.MARATHON_FAILED
    assert "HTTP 500" in err and "Marathon did not answer for" in err
    assert writes(world) == [("create", "/nginx-green", 1)]


def test_lb_down_mid_run_ends_with_5_after_the_stall_timeout(world, app_file):
    seed_blue(world, 3)
    world.lb.stats_failure = "500"
    code, _, err = run(world, app_file(), "--stall-timeout", "200", "--max-wait", "1000")
    assert code == zdd.ExitCode.LB_FAILED
    assert writes(world) == [("create", "/nginx-green", 1)]


def test_garbage_stats_are_waited_on_not_crashed_on(world, app_file):
    seed_blue(world, 3)
    world.lb.stats_failure = "garbage"
    code, _, err = run(world, app_file(), "--stall-timeout", "100", "--max-wait", "1000")
    assert code == zdd.ExitCode.LB_FAILED
    assert f"marathon-lb {world.lb.url} did not answer (stats rows before the CSV header)" in err
    assert "Traceback" not in err


# --- logging and auth ----------------------------------------------------------------------------


def test_missing_syslog_socket_warns_once(world, app_file):
    seed_blue(world, 3)
    out, err = io.StringIO(), io.StringIO()
    argv = ["-m", world.sim.url, "-l", world.lb.url, "-j", app_file(), "-f", "--syslog-socket", "/nonexistent/log"]
    assert zdd.main(argv, clock=world.clock, stdout=out, stderr=err, environ={}) == 0
    assert err.getvalue().count("syslog") == 1


def test_longhelp_prints_the_description():
    out = io.StringIO()
    assert zdd.main(["--longhelp"], stdout=out) == 0
    assert out.getvalue().startswith(zdd.__doc__)
    assert "HAPROXY_DEPLOYMENT_ALT_PORT" in out.getvalue()


class _AuthRecorder(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_GET(self):
        type(self).seen.append(self.headers.get("Authorization"))
        body = json.dumps({"apps": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("how", ["flag", "file", "env"])
def test_basic_auth_password_may_contain_colons(tmp_path, app_file, how):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _AuthRecorder.seen = []
    try:
        argv = ["-m", f"http://127.0.0.1:{server.server_address[1]}", "-l", "http://127.0.0.1:9", "-j", app_file(),
                "--dry-run", "--syslog-socket", "/dev/null"]
        environ = {}
        if how == "flag":
            argv += ["--auth-credentials", "ops:pa:ss:word"]
        elif how == "file":
            secret = tmp_path / "creds"
            secret.write_text("ops:pa:ss:word\n")
            argv += ["--marathon-auth-credential-file", str(secret)]
        else:
            environ = {"ZDD_AUTH_CREDENTIALS": "ops:pa:ss:word"}
        err = io.StringIO()
        assert zdd.main(argv, stdout=io.StringIO(), stderr=err, environ=environ) == 0, err.getvalue()
    finally:
        server.shutdown()
        server.server_close()
    expected = "Basic " + base64.b64encode(b"ops:pa:ss:word").decode()
    assert _AuthRecorder.seen == [expected]
    assert "pa:ss:word" not in err.getvalue()


def test_unexpected_error_logs_one_traceback(world, app_path):
    """A failure of zdd's own (here the prompt's callback breaks): exit 2 and the traceback once.

    No upstream answer can cause one any more (docs/behaviour.rst, 'Doubtful answers').
    """

    def broken_prompt(question):
        raise RuntimeError("the prompt broke")

    code, _, err = run(world, app_path, ask=broken_prompt)
    assert code == zdd.ExitCode.INTERNAL
    assert err.count("Traceback") == 1
    assert world.sim.writes() == []


def test_environment_names_every_option():
    parser = zdd.build_parser()
    values = zdd._environment_values(parser, {"ZDD_MARATHON": "http://m", "ZDD_STEP_DELAY": "2", "ZDD_FORCE": "yes"})
    assert values == {"env_marathon": "http://m", "step_delay": 2.0, "force": True}  # -m appends: kept aside


# --- rollback (--on-failure rollback) ------------------------------------------------------------


def test_rollback_of_a_new_app_that_never_becomes_healthy(world, app_file):
    seed_blue(world, 3)
    code, _, err = run(world, app_file(unhealthy_app()), "--on-failure", "rollback", "--stall-timeout", "120")
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert writes(world) == [("create", "/nginx-green", 1), ("delete", "/nginx-green")]
    assert settle(world) == {"/nginx-blue": (3, 3)}
    assert "rolled back to /nginx-blue" in err


def test_rollback_when_the_hook_refuses_halfway(world, app_file, tmp_path):
    seed_blue(world, 5)
    counter = tmp_path / "calls"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho x >> {counter}\n[ $(wc -l < {counter}) -lt 3 ]\n")
    hook.chmod(0o755)
    code, _, err = run(world, app_file(), "--on-failure", "rollback", "--pre-kill-hook", str(hook))
    assert code == zdd.ExitCode.ROLLED_BACK, err
    compact = writes(world)
    assert compact[:5] == [("create", "/nginx-green", 1), ("kill", 1), ("scale", "/nginx-green", 2), ("kill", 1),
                           ("scale", "/nginx-green", 3)]
    assert compact[5:] == [("scale", "/nginx-blue", 5), ("delete", "/nginx-green")]
    assert settle(world) == {"/nginx-blue": (5, 5)}


def test_rollback_when_the_hook_refuses_the_first_kill(world, app_file, tmp_path):
    seed_blue(world, 3)
    hook, _ = make_hook(tmp_path, 1)
    code, _, err = run(world, app_file(), "--on-failure", "rollback", "--pre-kill-hook", hook)
    assert code == zdd.ExitCode.ROLLED_BACK, err
    # green serves as marathon-lb's new app: blue is scaled up and straight back (forced) so that it is the
    # app scaled last, which marathon-lb then calls new; green is drained before it is deleted
    assert writes(world) == [("create", "/nginx-green", 1), ("scale", "/nginx-blue", 4), ("scale", "/nginx-blue", 3),
                             ("delete", "/nginx-green")]
    assert [write.query for write in world.sim.writes() if write.method == "PUT"] == [{}, {"force": "true"}]
    assert "--max-wait passed" not in err
    assert settle(world) == {"/nginx-blue": (3, 3)}


def test_rollback_stays_inside_the_deadline(world, app_file):
    seed_blue(world, 3)
    code, _, err = run(world, app_file(unhealthy_app()), "--on-failure", "rollback", "--deadline", "90",
                       "--stall-timeout", "0")
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert world.clock.slept_s <= 90
    assert settle(world) == {"/nginx-blue": (3, 3)}


def test_a_failed_rollback_says_so(world, app_file):
    seed_blue(world, 3)
    world.sim.fail_next("DELETE", r"^/v2/apps/nginx-green$", 500, count=1000)
    code, _, err = run(world, app_file(unhealthy_app()), "--on-failure", "rollback", "--stall-timeout", "60")
    assert code == zdd.ExitCode.ROLLBACK_FAILED
    assert "the rollback failed too" in err
    assert "--complete-prev" in err


def test_without_rollback_a_failure_leaves_both_apps(world, app_file):
    seed_blue(world, 3)
    code, _, _ = run(world, app_file(unhealthy_app()), "--stall-timeout", "60")
    assert code == zdd.ExitCode.STALLED
    assert set(settle(world)) == {"/nginx-blue", "/nginx-green"}


def test_complete_prev_after_a_never_healthy_new_app_deletes_it(world, app_file):
    seed_blue(world, 3)
    path = app_file(unhealthy_app())
    code, _, _ = run(world, path, "--stall-timeout", "60")
    assert code == zdd.ExitCode.STALLED
    code, _, err = run(world, path, "--complete-prev", "--stall-timeout", "60")
    assert code == zdd.ExitCode.OK, err
    # no marathon-lb routes green's never healthy task: it goes at once, with nothing to drain
    assert writes(world) == [("create", "/nginx-green", 1), ("delete", "/nginx-green")]
    assert settle(world) == {"/nginx-blue": (3, 3)}


def test_ctrl_c_at_a_prompt_stops_with_130_and_writes_nothing_more(world, app_file):
    seed_blue(world, 3)
    answers = iter([True])

    def answer(question):
        if next(answers, None) is None:
            raise KeyboardInterrupt
        return True

    code, _, err = run(world, app_file(), ask=answer)
    assert code == zdd.ExitCode.INTERRUPTED
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "to finish: zdd " in err


def test_a_marathon_that_never_answers_ends_with_6(app_file):
    """docs/behaviour.rst, 'Faults of the original', fault 1: the original hung here for ever."""
    import socket

    from tests.sandbox.clock import FakeClock

    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections (backlog), never answers
    try:
        err = io.StringIO()
        argv = ["-m", "http://127.0.0.1:%d" % silent.getsockname()[1], "-l", "http://127.0.0.1:9", "-j", app_file(),
                "--dry-run", "--syslog-socket", "/dev/null", "--request-timeout", "0.3"]
        code = zdd.main(argv, clock=FakeClock(), stdout=io.StringIO(), stderr=err, environ={})
    finally:
        silent.close()
    assert code == zdd.ExitCode.MARATHON_FAILED
    assert "no whole answer within the request timeout (0.3 s)" in err.getvalue()
    assert "after 4 attempts" in err.getvalue()
