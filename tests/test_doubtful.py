"""Doubtful answers (docs/behaviour.rst, 'Doubtful answers'): no kill, no delete, no traceback.

The stats page and ``/_haproxy_getpids`` garbled by the fake marathon-lb's
knobs, Marathon's answers by the simulator's "garble" fault; then the pure
parts (parse_stats, parse_pids, app_problem, decide, decide_rollback) on
hand-made views.
"""

import pytest

import zdd
from tests.helpers import SEQUENCE_3, run, seed_blue, seed_half_done, unhealthy_app, writes
from tests.sandbox.fakelb import garble_stats, render_stats_csv
from tests.sandbox.world import load_fixture

OLD_APP = "^/v2/apps/nginx-blue$"
NEW_APP = "^/v2/apps/nginx-green$"
APPS_LIST = "^/v2/apps$"


def server_names(world, app_id):
    return [server.name for service in world.lb.services() for server in service.servers if server.app_id == app_id]


def hold_old_sessions(world, scur=2):
    for name in server_names(world, "/nginx-blue"):
        world.lb.hold_sessions(name, scur=scur)


def seed_other_team(world):
    """An app of no deployment group, listed before the nginx apps."""
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"] = {"team": "other"}
    app["container"]["portMappings"][0]["servicePort"] = 10050
    return world.seed_app(app, id="/aaa-other-team", instances=1)


# --- the stats page ------------------------------------------------------------------------------


@pytest.mark.parametrize("garble, shown", [
    ("scur-dash", "no scur"), ("scur-empty", "no scur"), ("no-scur", "no scur"), ("no-status", "no status")],
    ids=["scur-dash", "scur-empty", "no-scur", "no-status"])
def test_unknown_sessions_are_never_read_as_drained(world, app_path, garble, shown):
    """The old servers hold sessions; the page hides them: zdd waits as for a marathon-lb that does not answer.

    Past --max-wait too: nothing is killed on a view with an unknown row. The
    old code read a missing, empty or '-' scur as 0 sessions and killed.
    """
    seed_blue(world, 3)
    hold_old_sessions(world)
    world.lb.stats_garble = garble
    code, _, err = run(world, app_path, "--max-wait", "30", "--stall-timeout", "120")
    assert code == zdd.ExitCode.LB_FAILED, err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "gave a doubtful stats row (server " in err and shown in err


def test_max_wait_does_not_end_a_wait_for_a_marathon_lb_that_does_not_answer(world, app_path):
    """--max-wait bounds a drain: past it, the old code scaled the new app up on a view it could not read."""
    seed_blue(world, 3)
    world.lb.stats_failure = "500"
    code, _, err = run(world, app_path, "--max-wait", "30", "--stall-timeout", "120")
    assert code == zdd.ExitCode.LB_FAILED, err
    assert writes(world) == [("create", "/nginx-green", 1)]


def test_a_server_listed_maint_and_up_with_sessions_is_not_killed(world, app_path):
    """Each MAINT row comes with a second row for the same server, UP with sessions: it is not drained.

    The old code killed the server on its MAINT row.
    """
    seed_blue(world, 3)
    world.lb.stats_garble = "maint-listed-up"
    code, _, err = run(world, app_path, "--max-wait", "100000", "--deadline", "60")
    assert code == zdd.ExitCode.DEADLINE, err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "waiting for HAProxy to drain" in err


@pytest.mark.parametrize("ignore_scope", [False, True], ids=["scoped", "scope-ignored"])
def test_garbage_in_other_backends_does_not_stop_zdd(world, app_path, ignore_scope):
    """Only the group's rows are read: other proxies' broken rows change nothing (a guard, not a fix).

    With the scope ignored (an HAProxy without scopes) the broken rows reach zdd.
    """
    seed_blue(world, 3)
    world.lb.stats_garble, world.lb.backend = "other-backends", "nginx_10000"
    world.lb.ignore_scope = ignore_scope
    code, _, err = run(world, app_path)
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


@pytest.mark.parametrize("failure", ["html", "empty"])
def test_getpids_that_is_not_a_list_of_pids_blocks_the_kill(world, app_path, failure):
    """An error page answered 200 (read as 1 PID before) or an empty body (0 PIDs) while HAProxy reloads."""
    seed_blue(world, 3)
    world.lb.extra_pids = [4003]
    world.lb.pids_failure = failure
    code, _, err = run(world, app_path, "--max-wait", "100000", "--stall-timeout", "120", "--reload-check", "getpids")
    assert code == zdd.ExitCode.LB_FAILED, err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "/_haproxy_getpids answered not a list of PIDs" in err


def test_getpids_that_is_not_a_list_of_pids_blocks_the_delete_in_a_rollback(world, app_file):
    """The new app never becomes healthy: the rollback's delete of it waits for a well-formed list of PIDs."""
    seed_blue(world, 3)
    world.lb.pids_failure = "empty"
    code, _, err = run(world, app_file(unhealthy_app()), "--on-failure", "rollback", "--stall-timeout", "120",
                       "--reload-check", "getpids")
    assert code == zdd.ExitCode.ROLLBACK_FAILED, err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "/_haproxy_getpids answered not a list of PIDs" in err


def test_status_shows_a_doubtful_view_without_a_verdict_to_act_on(world, app_path):
    seed_half_done(world, blue=2, green=1)
    hold_old_sessions(world)
    world.lb.stats_garble = "scur-dash"
    world.lb.pids_failure = "empty"
    code, out, err = run(world, app_path, "--status")
    assert code == zdd.ExitCode.LB_FAILED, err
    assert "did not answer a list of PIDs" in out
    assert "waiting: marathon-lb" in out and "gave a doubtful stats row" in out


# --- Marathon's answers --------------------------------------------------------------------------


def test_an_answer_naming_another_app_is_not_that_app(world, app_path):
    """Asked for blue, Marathon (or a proxy) answers with green's id: blue is never taken for green, nothing deleted.

    The old code deleted the new, serving app at the end of the swap.
    """
    seed_blue(world, 3)
    world.sim.inject("garble", method="GET", path_regex=OLD_APP, garble={"path": "app.id", "set": "/nginx-green"})
    code, _, err = run(world, app_path, "--stall-timeout", "60")
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "gave a doubtful answer: it is the app /nginx-green, not /nginx-blue" in err


def test_an_old_app_without_tasks_is_not_deleted(world, app_path):
    """The last old server has sessions and blue's answer lost its tasks: not "no tasks", so no delete."""
    seed_half_done(world, blue=1, green=3)
    hold_old_sessions(world)
    world.sim.inject("garble", method="GET", path_regex=OLD_APP, garble={"path": "app.tasks", "drop": True})
    code, _, err = run(world, app_path, "--resume", "--stall-timeout", "60")
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert writes(world) == []
    assert "gave a doubtful answer: it has no tasks" in err


@pytest.mark.parametrize("path, edit", [
    pytest.param(OLD_APP, {"path": "app.tasks.0", "set": None}, id="old-task-null"),
    pytest.param(NEW_APP, {"path": "app.labels", "set": None}, id="new-labels-null"),
    pytest.param(NEW_APP, {"path": "app.instances", "set": "1"}, id="new-instances-string"),
    pytest.param(OLD_APP, {"path": "app.tasks.*.healthCheckResults", "set": {"alive": True}}, id="old-health-object"),
])
def test_a_garbled_app_answer_is_waited_out(world, app_path, path, edit):
    """Two garbled answers for an app of the swap: zdd waits as for a Marathon that does not answer, then completes."""
    seed_blue(world, 3)
    world.sim.inject("garble", count=2, method="GET", path_regex=path, garble=edit)
    code, _, err = run(world, app_path, "--stall-timeout", "120")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert "gave a doubtful answer" in err and "Traceback" not in err
    assert world.sim.faults_injected["garble"] == 2


@pytest.mark.parametrize("edit", [
    pytest.param({"path": "apps.0", "set": 42}, id="entry-not-an-object"),
    pytest.param({"path": "apps.0.labels", "set": ["team=other"]}, id="labels-a-list"),
    pytest.param({"path": "apps.0.instances", "set": "2"}, id="instances-a-string"),
    pytest.param({"path": "apps.0.id", "drop": True}, id="no-id"),
])
@pytest.mark.parametrize("status", [False, True])
def test_other_teams_apps_never_stop_zdd(world, app_path, edit, status):
    """Apps of other groups, whatever their shape, are someone else's: deploy and --status go on."""
    seed_other_team(world)
    seed_blue(world, 3)
    world.sim.inject("garble", method="GET", path_regex=APPS_LIST, garble=edit)
    code, _, err = run(world, app_path, *(["--status"] if status else []))
    assert code == 0, err
    assert writes(world) == ([] if status else SEQUENCE_3)


@pytest.mark.parametrize("edit, shown", [
    pytest.param({"path": "apps.*.instances", "set": "3"}, "instances is '3', not a whole number", id="instances"),
    pytest.param({"path": "apps.*.labels.HAPROXY_DEPLOYMENT_TARGET_INSTANCES", "set": "three"},
                 "label HAPROXY_DEPLOYMENT_TARGET_INSTANCES is 'three'", id="target-label"),
    pytest.param({"path": "apps.*.container.portMappings", "set": {"servicePort": 10000}},
                 "container.portMappings is not a list of objects", id="port-mappings"),
])
@pytest.mark.parametrize("args", [(), ("--status",), ("--resume",)])
def test_a_garbled_app_of_the_group_stops_before_any_write(world, app_path, edit, shown, args):
    """The group's own app listed with a wrong type: one line, exit 6, nothing written (the old code: a traceback)."""
    if args == ("--resume",):
        seed_half_done(world)
    else:
        seed_blue(world, 3)
    world.sim.inject("garble", method="GET", path_regex=APPS_LIST, garble=edit)
    code, _, err = run(world, app_path, *args)
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert writes(world) == []
    assert "is doubtful: " + shown in err and "Traceback" not in err


def test_status_with_a_null_task(world, app_path):
    seed_half_done(world)
    world.sim.inject("garble", method="GET", path_regex=OLD_APP, garble={"path": "app.tasks.0", "set": None})
    code, _, err = run(world, app_path, "--status")
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert "gave a doubtful answer: tasks is not a list of objects" in err and "Traceback" not in err


# --- the pure parts ------------------------------------------------------------------------------


def stats(*rows):
    return "# pxname,svname,qcur,scur,status\n" + "".join(f"web_10000,{row}\n" for row in rows)


@pytest.mark.parametrize("text, expected", [
    pytest.param(stats("a_1,0,-,MAINT"), ("a_1", "MAINT", None, 0), id="scur-dash"),
    pytest.param(stats("a_1,0,,MAINT"), ("a_1", "MAINT", None, 0), id="scur-empty"),
    pytest.param(stats("a_1,0,x1,MAINT"), ("a_1", "MAINT", None, 0), id="scur-garbage"),
    pytest.param(stats("a_1,-1,0,MAINT"), ("a_1", "MAINT", 0, None), id="qcur-negative"),
    pytest.param(stats("a_1,0,0,"), ("a_1", "", 0, 0), id="status-empty"),
    pytest.param("# pxname,svname,qcur,status\nweb_10000,a_1,0,MAINT\n", ("a_1", "MAINT", None, 0), id="no-scur"),
    pytest.param(stats("a_1,0,0,MAINT", "a_1,0,3,UP"), ("a_1", "listed twice: MAINT, UP", 3, 0), id="maint-and-up"),
    pytest.param(stats("a_1,0,0,MAINT", "a_1,0,-,MAINT"), ("a_1", "MAINT", None, 0), id="twice-one-unknown"),
    pytest.param(stats("a_1,0,0,MAINT", "a_1,1,0,MAINT"), ("a_1", "MAINT", 0, 1), id="twice-highest-queue"),
])
def test_parse_stats_unknown_and_duplicates(text, expected):
    (listener,) = zdd.parse_stats(text, "web_10000")
    assert (listener.svname, listener.status, listener.scur, listener.qcur) == expected
    assert not listener.drained


def test_parse_stats_a_known_drained_row_is_drained():
    (listener,) = zdd.parse_stats(stats("a_1,0,0,MAINT", "a_1,0,0,MAINT"), "web_10000")
    assert listener.drained and listener.doubt is None


def test_garbled_pages_of_the_fake_parse_as_unknown():
    services = [type("Service", (), {"name": "web_10000", "mode": "http", "checked": True,
                                     "servers": [type("Server", (), {"name": "a_1", "draining": True})()]})()]
    page = render_stats_csv(services)
    assert zdd.parse_stats(page, "web_10000")[0].drained
    for kind in ("scur-dash", "scur-empty", "no-scur", "no-status"):
        assert zdd.parse_stats(garble_stats(page, kind), "web_10000")[0].doubt is not None, kind
    assert not zdd.parse_stats(garble_stats(page, "maint-listed-up"), "web_10000")[0].maint


@pytest.mark.parametrize("text, expected", [
    ("4001 4002\n", (4001, 4002)), ("4001\n", (4001,)), (" 4001\t4002 4003 ", (4001, 4002, 4003)),
])
def test_parse_pids(text, expected):
    assert zdd.parse_pids(text) == expected


@pytest.mark.parametrize("text", ["", "\n", "<html><body><h1>503</h1></body></html>", "4001 x", "-1 4002", "0",
                                  "4001,4002", "١٢٣"])
def test_parse_pids_refuses(text):
    with pytest.raises(ValueError):
        zdd.parse_pids(text)


APP = {"id": "/web-green", "instances": 1, "labels": {}, "deployments": [],
       "tasks": [{"id": "t1", "host": "h", "ports": [1], "state": "TASK_RUNNING"}]}


@pytest.mark.parametrize("change, expected", [
    ({}, None),
    ({"id": "/web-blue"}, "it is the app /web-blue, not /web-green"),
    ({"id": 7}, "its id is not a string"),
    ({"instances": "1"}, "instances is '1', not a whole number"),
    ({"instances": True}, "instances is True, not a whole number"),
    ({"instances": None}, "instances is None, not a whole number"),
    ({"tasks": None}, "it has no tasks"),
    ({"labels": None}, "it has no labels"),
    ({"deployments": None}, "it has no deployments"),
    ({"labels": ["a"]}, "labels is not an object"),
    ({"tasks": [None]}, "tasks is not a list of objects"),
    ({"tasks": [{"host": "h"}]}, "a task has no id"),
    ({"tasks": [{"id": "t1", "ports": "31000"}]}, "task t1: ports is not a list"),
    ({"tasks": [{"id": "t1", "healthCheckResults": [True]}]}, "task t1: healthCheckResults is not a list of objects"),
    ({"container": {"docker": []}}, "container.docker is not an object"),
    ({"networks": ["host"]}, "networks is not a list of objects"),
    ({"container": None, "ipAddress": None}, None),  # Marathon 1.4 shows unset fields as null
    ({"labels": {"HAPROXY_DEPLOYMENT_TARGET_INSTANCES": "-2"}},
     "label HAPROXY_DEPLOYMENT_TARGET_INSTANCES is '-2', not a whole number"),
])
def test_app_problem(change, expected):
    assert zdd.app_problem(dict(APP, **change), "/web-green", embedded=True) == expected


def test_app_problem_listed_apps_have_no_tasks():
    listed = {key: value for key, value in APP.items() if key != "tasks"}
    assert zdd.app_problem(listed) is None
    assert zdd.app_problem(dict(APP, id="web-green/"), "/web-green", embedded=True) is None
    assert zdd.app_problem(42) == "not an object"
    assert zdd.deployment_group(42) is None and zdd.deployment_group({"labels": ["x"]}) is None


def mk_app(colour, numbers, instances=None):
    return {"id": f"/web-{colour}", "instances": len(numbers) if instances is None else instances, "labels": {},
            "deployments": [], "tasks": [{"id": f"{colour}.{n}", "host": f"10.0.0.{n}", "ports": [31000 + n]}
                                         for n in numbers]}


def row(colour, n, status, scur=0):
    return zdd.Listener(f"10_0_0_{n}_{31000 + n}", status, scur, 0)


def view(*rows):
    return (zdd.LbView(url="http://lb", pids=(4001, 4002), listeners=tuple(rows)),)


def observe(new, old, lbs):
    return zdd.named(zdd.Observation(new, old, lbs), lambda host: host)


PLAN = zdd.Plan(new_id="/web-green", old_id="/web-blue", target=1)


def test_decide_never_kills_on_an_unknown_row_even_after_max_wait():
    """A MAINT row whose sessions are unknown: wait as for a marathon-lb that does not answer, also past --max-wait."""
    observation = observe(mk_app("green", [1]), mk_app("blue", [2]), view(row("green", 1, "UP"),
                                                                          row("blue", 2, "MAINT", None)))
    for waited_s in (0, 10_000):
        step = zdd.decide_swap(observation, PLAN, waited_s, 300)
        assert step.kill == () and not step.delete_old and step.lb_failed, step
        assert "gave a doubtful stats row (server 10_0_0_2_31002: no scur)" in step.wait


def test_decide_waits_on_an_old_app_without_tasks():
    old = {key: value for key, value in mk_app("blue", [2]).items() if key != "tasks"}
    observation = observe(mk_app("green", [1]), old, view(row("green", 1, "UP"), row("blue", 2, "UP", 3)))
    step = zdd.decide_swap(observation, PLAN, 0, 300)
    assert step.wait == "Marathon's answer for /web-blue is doubtful: it has no tasks" and not step.delete_old


def test_decide_rollback_waits_on_a_failed_app_without_tasks():
    failed = {key: value for key, value in mk_app("green", [1]).items() if key != "tasks"}
    observation = observe(mk_app("blue", [2]), failed, view(row("green", 1, "UP", 3), row("blue", 2, "UP")))
    step = zdd.decide_rollback(observation, 1, 0, 300, handed_over=True)
    assert step.wait == "Marathon's answer for /web-green is doubtful: it has no tasks" and not step.delete_old
