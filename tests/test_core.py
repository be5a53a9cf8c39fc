"""zdd's pure core, as tables: scaling, app preparation, stats, names, LB URLs, decisions."""

import copy
import datetime
import math
import pathlib

import dateutil.parser
import pytest

import zdd
from tests.helpers import options
from tests.sandbox.world import load_fixture

FIXTURES_DIR = pathlib.Path(__file__).resolve().parent / "fixtures"
NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, 123456)


def plan(target, hybrid_goal=0, linear_increase=0):
    return zdd.Plan(new_id="/web-green", old_id="/web-blue", target=target, hybrid_goal=hybrid_goal,
                    linear_increase=linear_increase)


# ---------------------------------------------------------------------------
# The scale schedule
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("current, old, target, hybrid_goal, linear, expected", [
    pytest.param(1, 10, 10, 0, 0, 2, id="1-half-again"),
    pytest.param(2, 9, 10, 0, 0, 3, id="2-half-again"),
    pytest.param(3, 8, 10, 0, 0, 5, id="3-half-again"),
    pytest.param(5, 7, 10, 0, 0, 10, id="5-reaches-old-jumps-to-target"),
    pytest.param(4, 100, 100, 0, 0, 6, id="4-to-6"),
    pytest.param(8, 15, 20, 0, 0, 12, id="8-to-12"),
    pytest.param(12, 12, 20, 0, 0, 20, id="equal-to-old-jumps-to-target"),
    pytest.param(1, 2, 2, 0, 0, 2, id="target-2"),
    pytest.param(0, 3, 3, 0, 0, 1, id="from-zero-grows-by-one"),
    pytest.param(3, 8, 10, 4, 0, 4, id="hybrid-caps-at-goal"),
    pytest.param(5, 5, 10, 5, 0, 5, id="hybrid-at-goal-no-jump"),
    pytest.param(2, 3, 10, 8, 0, 3, id="hybrid-does-not-jump-to-target"),
    pytest.param(1, 10, 10, 0, 3, 4, id="linear-3"),
    pytest.param(9, 2, 10, 0, 3, 10, id="linear-capped-at-target"),
    pytest.param(1, 6, 6, 3, 2, 3, id="linear-capped-at-hybrid-goal"),
    pytest.param(5, 50, 50, 0, 1, 6, id="linear-1-ignores-old-count"),
])
def test_next_instances(current, old, target, hybrid_goal, linear, expected):
    assert zdd.next_instances(current, old, plan(target, hybrid_goal, linear)) == expected


@pytest.mark.parametrize("target, initial, hybrid_goal, linear, news, olds", [
    # docs/behaviour.rst, 'The scale schedule'
    pytest.param(3, 1, 0, 0, [1, 2, 3], [3, 2, 1, 0], id="spec-old-3"),
    pytest.param(10, 1, 0, 0, [1, 2, 3, 5, 10], [10, 9, 8, 7, 5, 0], id="spec-old-10"),
    pytest.param(4, 1, 2, 0, [1, 2], [4, 3, 2], id="spec-hybrid-4-keep-2"),
    # hand-computed
    pytest.param(1, 1, 0, 0, [1], [1, 0], id="target-1"),
    pytest.param(2, 1, 0, 0, [1, 2], [2, 1, 0], id="target-2"),
    pytest.param(5, 1, 0, 0, [1, 2, 3, 5], [5, 4, 3, 2, 0], id="target-5"),
    pytest.param(20, 1, 0, 0, [1, 2, 3, 5, 8, 12, 20], [20, 19, 18, 17, 15, 12, 8, 0], id="target-20"),
    pytest.param(10, 2, 0, 0, [2, 3, 5, 10], [10, 8, 7, 5, 0], id="target-10-initial-2"),
    pytest.param(10, 1, 0, 3, [1, 4, 7, 10], [10, 9, 6, 3, 0], id="target-10-linear-3"),
    pytest.param(5, 1, 0, 2, [1, 3, 5], [5, 4, 2, 0], id="target-5-linear-2"),
    pytest.param(10, 1, 5, 0, [1, 2, 3, 5], [10, 9, 8, 7, 5], id="hybrid-10-keep-5"),
    pytest.param(3, 1, 3, 0, [1, 2, 3], [3, 2, 1, 0], id="hybrid-goal-equals-target"),
    pytest.param(6, 1, 3, 2, [1, 3], [6, 5, 3], id="hybrid-6-keep-3-linear-2"),
])
def test_scale_schedule_rows(target, initial, hybrid_goal, linear, news, olds):
    assert zdd.scale_schedule(plan(target, hybrid_goal, linear), initial, target) == (news, olds)


def _draining_allowed(healthy_new, old_tasks, old_instances, target):
    """marathon-lb's rule, written out here independently of zdd."""
    return max(0, min(old_tasks, healthy_new, healthy_new + old_instances - target))


@pytest.mark.parametrize("healthy_new, old_tasks, old_instances, target, expected", [
    pytest.param(1, 3, 3, 3, 1, id="one-new-one-drains"),
    pytest.param(0, 3, 3, 3, 0, id="no-new-nothing-drains"),
    pytest.param(3, 1, 1, 3, 1, id="all-new-last-old-drains"),
    pytest.param(5, 7, 7, 10, 2, id="over-target-by-2"),
    pytest.param(2, 2, 2, 4, 0, id="exactly-target-none"),
    pytest.param(4, 1, 3, 5, 1, id="fewer-old-tasks-than-instances"),
])
def test_expected_draining(healthy_new, old_tasks, old_instances, target, expected):
    assert zdd.expected_draining(healthy_new, old_tasks, old_instances, target) == expected


def _schedule_cases():
    for target in range(1, 51):
        goals = sorted({0} | {goal for goal in (1, target // 2, target - 1, target) if goal >= 1})
        for linear in (0, 1, 3):
            for goal in goals:
                for initial in (1, 2):
                    yield pytest.param(target, goal, linear, initial,
                                       id=f"t{target}-goal{goal}-k{linear}-i{initial}")


@pytest.mark.parametrize("target, goal, linear, initial", list(_schedule_cases()))
def test_scale_schedule_properties(target, goal, linear, initial):
    initial = min(initial, goal or target)
    news, olds = zdd.scale_schedule(plan(target, goal, linear), initial, target)
    end_new = goal or target
    end_old = target - goal if goal else 0
    assert news[0] == initial and olds[0] == target
    assert news[-1] == end_new, "the new app ends exactly at its goal"
    assert olds[-1] == end_old, "the old app ends at 0 (hybrid: target - goal)"
    assert all(a < b for a, b in zip(news, news[1:])), "new counts strictly increase"
    assert all(a > b for a, b in zip(olds, olds[1:])), "old counts only go down, each kill kills at least one"
    for kill_step, (before, after) in enumerate(zip(olds, olds[1:])):
        new = news[min(kill_step, len(news) - 1)]
        if after == 0 and not goal and new == target:
            continue  # the old app is deleted once every old task drained
        assert before - after <= _draining_allowed(new, before, before, target), (
            f"step {kill_step}: kills {before - after} old with {new} new, more than marathon-lb drains")
    for step, (n, grown) in enumerate(zip(news, news[1:])):
        if linear:
            assert grown <= n + linear
        else:
            half_again = math.floor(n + (n + 1) / 2)
            old_then = olds[step]
            jumped = not goal and grown == target and half_again >= old_then
            assert grown <= half_again or jumped, f"{n} -> {grown} grows faster than half again"
    assert len(news) <= end_new and len(olds) <= target + 1


# ---------------------------------------------------------------------------
# Preparing the new app
# ---------------------------------------------------------------------------

LABELS = {"HAPROXY_DEPLOYMENT_GROUP": "web", "HAPROXY_DEPLOYMENT_ALT_PORT": "10001", "HAPROXY_GROUP": "external"}


def shape_docker14(port):
    return {"container": {"type": "DOCKER", "docker": {"image": "nginx", "network": "BRIDGE", "portMappings": [
        {"containerPort": 8080, "hostPort": 0, "servicePort": port, "protocol": "tcp"}]}}}


def shape_container15(port):
    return {"container": {"type": "DOCKER", "docker": {"image": "nginx"}, "portMappings": [
        {"containerPort": 8080, "hostPort": 0, "servicePort": port}]}, "networks": [{"mode": "container/bridge"}]}


def shape_port_definitions(port):
    return {"cmd": "python3 -m http.server $PORT0", "portDefinitions": [{"port": port, "protocol": "tcp"}]}


def shape_ports(port):
    return {"cmd": "python3 -m http.server $PORT0", "ports": [port]}


def shape_ip_per_task14(port):
    app = {"container": {"type": "DOCKER", "docker": {"image": "nginx", "network": "USER", "portMappings": [
        {"containerPort": 8080, "servicePort": port}]}}, "ipAddress": {"networkName": "dcos"}}
    return app


def shape_ip_per_task15(port):
    return {"container": {"type": "DOCKER", "docker": {"image": "nginx"}, "portMappings": [
        {"containerPort": 8080, "servicePort": port}]}, "networks": [{"mode": "container", "name": "dcos"}]}


SHAPES = {
    "docker14": (shape_docker14, lambda app: app["container"]["docker"]["portMappings"][0]["servicePort"]),
    "container15": (shape_container15, lambda app: app["container"]["portMappings"][0]["servicePort"]),
    "portDefinitions": (shape_port_definitions, lambda app: app["portDefinitions"][0]["port"]),
    "ports": (shape_ports, lambda app: app["ports"][0]),
    "ip-per-task14": (shape_ip_per_task14, lambda app: app["container"]["docker"]["portMappings"][0]["servicePort"]),
    "ip-per-task15": (shape_ip_per_task15, lambda app: app["container"]["portMappings"][0]["servicePort"]),
}


def user_app(shape, port=10000, instances=5):
    app = {"id": "web", "instances": instances, "cpus": 0.1, "mem": 64, "labels": dict(LABELS)}
    app.update(SHAPES[shape][0](port))
    return app


def running_app(shape, colour, port, instances=3):
    app = user_app(shape, port, instances)
    app["id"] = "/web-" + (colour or "x")
    if colour:
        app["labels"]["HAPROXY_DEPLOYMENT_COLOUR"] = colour
    return app


# previous: None, or (colour, port); expected colour and service port of the new app
PREVIOUS = {
    "none": (None, "blue", 10000),
    "blue": (("blue", 10000), "green", 10001),
    "green": (("green", 10000), "blue", 10001),
    "no-colour": ((None, 10000), "blue", 10001),
    "blue-on-alt-port": (("blue", 10001), "green", 10000),
    "green-on-alt-port": (("green", 10001), "blue", 10000),
}


def _prepare_cases():
    for shape in SHAPES:
        for previous_case in PREVIOUS:
            # the previous app in the same shape, and in a different one (its port read from ITS shape)
            previous_shapes = [shape] if previous_case == "none" else [shape, "ports" if shape != "ports" else
                                                                      "portDefinitions"]
            for previous_shape in previous_shapes:
                yield pytest.param(shape, previous_case, previous_shape,
                                   id=f"{shape}-after-{previous_case}-{previous_shape}")


@pytest.mark.parametrize("shape, previous_case, previous_shape", list(_prepare_cases()))
def test_prepare_app_shapes_and_colours(shape, previous_case, previous_shape):
    previous_spec, colour, port = PREVIOUS[previous_case]
    app = user_app(shape)
    original = copy.deepcopy(app)
    previous = None if previous_spec is None else running_app(previous_shape, previous_spec[0], previous_spec[1])
    new_app = zdd.prepare_app(app, previous, options(), NOW)
    assert app == original, "the input app is not changed"
    assert new_app["id"] == f"/web-{colour}"
    assert SHAPES[shape][1](new_app) == port, "the port is written back into the app's own shape"
    labels = new_app["labels"]
    assert labels["HAPROXY_DEPLOYMENT_COLOUR"] == colour
    assert labels["HAPROXY_0_PORT"] == "10000"
    assert labels["HAPROXY_APP_ID"] == "web"
    assert labels["HAPROXY_DEPLOYMENT_NEW_INSTANCES"] == "0"
    if previous is None:
        assert (new_app["instances"], labels["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"]) == (5, "5")
    else:
        assert (new_app["instances"], labels["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"]) == (1, "3")
    for key, value in LABELS.items():
        assert labels[key] == value
    assert all(isinstance(value, str) for value in labels.values())
    expected_other = {k: v for k, v in original.items() if k not in ("id", "instances", "labels")}
    got_other = {k: v for k, v in new_app.items() if k not in ("id", "instances", "labels")}
    if shape == "ports":
        expected_other["ports"] = [port]
    elif shape == "portDefinitions":
        expected_other["portDefinitions"] = [{"port": port, "protocol": "tcp"}]
    else:
        container = expected_other["container"]
        mappings = (container["docker"].get("portMappings") or container["portMappings"])
        mappings[0]["servicePort"] = port
    assert got_other == expected_other


def test_prepare_app_spec_worked_example():
    """docs/behaviour.rst, 'Preparing the new app': 1-nginx.json against a green app on 10000 with 3."""
    app = load_fixture("1-nginx.json")
    green = load_fixture("1-nginx.json")
    green.update(id="/nginx-green", instances=3, ports=[10000])
    green["labels"].update(HAPROXY_DEPLOYMENT_COLOUR="green", HAPROXY_0_PORT="10000", HAPROXY_APP_ID="nginx")
    new_app = zdd.prepare_app(app, green, options(), NOW)

    assert new_app["id"] == "/nginx-blue"
    assert new_app["instances"] == 1
    assert new_app["container"]["docker"]["portMappings"] == [
        {"hostPort": 0, "containerPort": 8080, "servicePort": 10001}]
    assert new_app["labels"] == {
        "HAPROXY_0_PORT": "10000",
        "HAPROXY_APP_ID": "nginx",
        "HAPROXY_DEPLOYMENT_COLOUR": "blue",
        "HAPROXY_DEPLOYMENT_NEW_INSTANCES": "0",
        "HAPROXY_DEPLOYMENT_STARTED_AT": NOW.isoformat(),
        "HAPROXY_DEPLOYMENT_TARGET_INSTANCES": "3",
        "HAPROXY_DEPLOYMENT_GROUP": "nginx",
        "HAPROXY_DEPLOYMENT_ALT_PORT": "10001",
        "HAPROXY_GROUP": "external",
    }
    untouched = load_fixture("1-nginx.json")
    for field in ("cpus", "mem", "healthChecks", "acceptedResourceRoles"):
        assert new_app[field] == untouched[field]
    assert new_app["container"]["type"] == "DOCKER"
    assert {k: v for k, v in new_app["container"]["docker"].items() if k != "portMappings"} == {
        "image": "brndnmtthws/nginx-echo-sleep", "network": "BRIDGE", "forcePullImage": True}
    assert set(new_app) == set(untouched)


def test_prepare_app_marathon15_fixture_after_blue():
    app = load_fixture("1-nginx-marathon1.5.json")
    blue = load_fixture("1-nginx-marathon1.5.json")
    blue.update(id="/nginx-blue", instances=4)
    blue["labels"]["HAPROXY_DEPLOYMENT_COLOUR"] = "blue"
    new_app = zdd.prepare_app(app, blue, options(), NOW)
    assert new_app["id"] == "/nginx-green"
    assert new_app["container"]["portMappings"] == [{"hostPort": 0, "containerPort": 8080, "servicePort": 10001}]
    assert new_app["networks"] == [{"mode": "container/bridge"}]
    assert (new_app["instances"], new_app["labels"]["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"]) == (1, "4")


@pytest.mark.parametrize("previous_instances, initial, new_instances, expected_instances, expected_n", [
    pytest.param(3, 1, 0, 1, "0", id="default-initial-1"),
    pytest.param(3, 2, 0, 2, "0", id="initial-2"),
    pytest.param(3, 5, 0, 3, "0", id="initial-capped-at-target"),
    pytest.param(4, 5, 2, 2, "2", id="hybrid-initial-capped-at-N"),
    pytest.param(4, 1, 2, 1, "2", id="hybrid-initial-below-N"),
    pytest.param(4, 1, 10, 1, "4", id="hybrid-N-capped-at-target"),
    pytest.param(4, 9, 10, 4, "4", id="hybrid-N-and-initial-capped-at-target"),
    pytest.param(0, 1, 0, 0, "0", id="previous-scaled-to-zero"),
])
def test_prepare_app_initial_and_hybrid_counts(previous_instances, initial, new_instances, expected_instances,
                                               expected_n):
    previous = running_app("portDefinitions", "blue", 10000, instances=previous_instances)
    new_app = zdd.prepare_app(user_app("portDefinitions", instances=7), previous,
                              options(initial_instances=initial, new_instances=new_instances), NOW)
    assert new_app["instances"] == expected_instances
    assert new_app["labels"]["HAPROXY_DEPLOYMENT_NEW_INSTANCES"] == expected_n
    assert new_app["labels"]["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"] == str(previous_instances)


@pytest.mark.parametrize("initial, new_instances", [
    pytest.param(3, 0, id="initial-ignored"), pytest.param(1, 2, id="hybrid-ignored")])
def test_prepare_app_first_deploy_starts_all_instances(initial, new_instances):
    new_app = zdd.prepare_app(user_app("ports", instances=4), None,
                              options(initial_instances=initial, new_instances=new_instances), NOW)
    assert (new_app["id"], new_app["instances"]) == ("/web-blue", 4)
    assert new_app["labels"]["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"] == "4"
    assert new_app["labels"]["HAPROXY_DEPLOYMENT_NEW_INSTANCES"] == "0"


@pytest.mark.parametrize("now", [
    pytest.param(datetime.datetime(2026, 1, 1, 12, 0, 0), id="whole-second"),
    pytest.param(datetime.datetime(2026, 7, 4, 3, 5, 9, 250000), id="microseconds"),
])
def test_prepare_app_started_at_is_naive_iso(now):
    new_app = zdd.prepare_app(user_app("ports"), None, options(), now)
    value = new_app["labels"]["HAPROXY_DEPLOYMENT_STARTED_AT"]
    assert value == now.isoformat()
    parsed = dateutil.parser.parse(value)
    assert parsed.tzinfo is None and parsed == now


@pytest.mark.parametrize("text, expected", [
    pytest.param('{"id": "a", "cmd": null}', {"id": "a"}, id="top-level"),
    pytest.param('{"id": "a", "container": {"docker": {"image": "x", "parameters": null}, "volumes": null}}',
                 {"id": "a", "container": {"docker": {"image": "x"}}}, id="nested"),
    pytest.param('{"id": "a", "portDefinitions": [{"port": 10000, "name": null}]}',
                 {"id": "a", "portDefinitions": [{"port": 10000}]}, id="inside-list"),
    pytest.param('{"id": "a", "instances": 0, "env": {}, "args": []}',
                 {"id": "a", "instances": 0, "env": {}, "args": []}, id="falsy-values-kept"),
])
def test_parse_app_drops_null_fields(text, expected):
    assert zdd.parse_app(text) == expected


def test_parse_app_fixture_with_nulls():
    app = zdd.parse_app((FIXTURES_DIR / "zdd_app_blue.json").read_text())
    first = app["apps"][0]
    assert "cmd" not in first and "args" not in first and "user" not in first
    assert first["instances"] == 3


# ---------------------------------------------------------------------------
# HAProxy stats
# ---------------------------------------------------------------------------


def rows(listeners):
    return [(listener.svname, listener.status, listener.scur, listener.qcur) for listener in listeners]


def test_parse_stats_two_lbs_concatenated():
    """Two pages one after the other: each server once, as its most cautious row; an empty qcur is unknown."""
    text = (FIXTURES_DIR / "haproxy_stats.csv").read_text()
    assert rows(zdd.parse_stats(text, "http-in")) == [
        ("IPv4-direct", "OPEN", 1, None),
        ("10_0_6_25_16916", "MAINT", 0, None),
        ("10_0_6_25_31184", "listed twice: UP, MAINT", 0, None),
        ("10_0_6_25_23336", "MAINT", 0, None),
        ("local-https", "OPEN", 0, None),
        ("IPv4-cached", "OPEN", 0, None),
        ("IPv6-direct", "OPEN", 0, None),
        ("local", "OPEN", 0, None),
    ]
    assert rows(zdd.parse_stats(text, "www")) == [("www", "UP", 0, 0), ("bck", "UP", 0, 0)]
    assert zdd.parse_stats(text, "demo") == ()
    assert zdd.parse_stats(text, "nginx_10000") == ()


def test_parse_stats_haproxy26_header_with_dash_column():
    text = (FIXTURES_DIR / "haproxy26_stats.csv").read_text()
    listeners = zdd.parse_stats(text, "nginx_10000")
    assert rows(listeners) == [("127_0_0_1_31001", "no check", 0, 0), ("127_0_0_1_31002", "MAINT", 0, 0)]
    assert [(listener.up, listener.maint, listener.drained) for listener in listeners] == [
        (True, False, False), (False, True, True)]


HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,"


@pytest.mark.parametrize("text, expected", [
    pytest.param(HEADER + "\n\nweb_10000,a_1,0,0,2,0,,0,UP,\n\n\nweb_10000,b_2,3,0,0,0,,0,MAINT,\n\n",
                 [("a_1", "UP", 2, 0), ("b_2", "MAINT", 0, 3)], id="blank-lines"),
    pytest.param(HEADER + "\r\nweb_10000,a_1,0,0,2,0,,0,UP,\r\nweb_10000,b_2,0,0,0,0,,0,MAINT,\r\n",
                 [("a_1", "UP", 2, 0), ("b_2", "MAINT", 0, 0)], id="crlf"),
    pytest.param("# status,scur,svname,qcur,pxname,\nMAINT,0,b_2,0,web_10000,\nUP 1/2,4,a_1,0,web_10000,\n"
                 "UP,9,x_1,0,other_1,\n",
                 [("b_2", "MAINT", 0, 0), ("a_1", "UP 1/2", 4, 0)], id="reordered-columns"),
    pytest.param("# pxname,svname,status\nweb_10000,a_1,UP\nweb_10000,FRONTEND,OPEN\nweb_10000,BACKEND,UP\n",
                 [("a_1", "UP", None, None)], id="fewer-columns-unknown-sessions"),
    pytest.param(HEADER + "\nweb_10000,FRONTEND,,,0,0,,0,OPEN,\nweb_10000,a_1,0,0,1,0,,0,DOWN,\n"
                 "web_10000,BACKEND,0,0,0,0,,0,UP,\n",
                 [("a_1", "DOWN", 1, 0)], id="frontend-backend-skipped"),
    pytest.param(HEADER + "\nweb_10000,a_1,0,0,1,0,,0,UP\n" + HEADER + "\nweb_10000,a_1,0,0,0,0,,0,MAINT,\n",
                 [("a_1", "listed twice: UP, MAINT", 1, 0)], id="second-header-resets"),
    pytest.param(HEADER + "\n", [], id="header-only"),
])
def test_parse_stats_tolerates(text, expected):
    assert rows(zdd.parse_stats(text, "web_10000")) == expected


@pytest.mark.parametrize("text", [
    pytest.param("web_10000,a_1,0,0,1,0,,0,UP,\n", id="no-header"),
    pytest.param("", id="empty"),
    pytest.param("\n\n", id="blank"),
    pytest.param("<html><body><h1>502 Bad Gateway</h1></body></html>\n", id="html"),
    pytest.param("# foo,bar,\n1,2,\n", id="header-without-pxname"),
    pytest.param("Lorem ipsum dolor sit amet", id="garbage"),
])
def test_parse_stats_refuses(text):
    with pytest.raises(ValueError):
        zdd.parse_stats(text, "web_10000")


# ---------------------------------------------------------------------------
# Server names and routable tasks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("host, ip, port, expected", [
    pytest.param("10.0.6.25", "10.0.6.25", 31184, "10_0_6_25_31184", id="host-is-ip"),
    pytest.param("agent-1.local", "10.0.0.9", 31000, "agent-1_local_10_0_0_9_31000", id="host-name"),
    pytest.param("10.0.1.2", "9.0.0.3", 8080, "10_0_1_2_9_0_0_3_8080", id="ip-per-task"),
    pytest.param("fd00::5", "fd00::5", 31000, "fd00__5_31000", id="ipv6"),
    pytest.param("agent-1", "fd00::9", 8080, "agent-1_fd00__9_8080", id="name-to-ipv6"),
])
def test_server_name(host, ip, port, expected):
    assert zdd.server_name(host, ip, port) == expected


RESOLVE = {"10.0.6.25": "10.0.6.25", "agent-1.local": "10.0.0.9", "fd00::5": "fd00::5",
           "10.0.1.2": "10.0.1.2"}.get

APP_PLAIN = {"id": "/web-blue", "portDefinitions": [{"port": 10000}]}
APP_IPPT14 = shape_ip_per_task14(10000)
APP_IPPT14_DISCOVERY = {"ipAddress": {"networkName": "dcos", "discovery": {"ports": [
    {"number": 8081, "name": "http", "protocol": "tcp"}]}}}
APP_IPPT15 = shape_ip_per_task15(10000)


def task(host, ports=(31000,), ip=None, **fields):
    value = {"id": "web-blue.1", "host": host, "ports": list(ports)}
    if ip:
        value["ipAddresses"] = [{"ipAddress": ip, "protocol": "IPv4"}]
    value.update(fields)
    return value


@pytest.mark.parametrize("app, task_json, expected", [
    pytest.param(APP_PLAIN, task("10.0.6.25", [31184]), "10_0_6_25_31184", id="host-is-ip"),
    pytest.param(APP_PLAIN, task("agent-1.local", [31000]), "agent-1_local_10_0_0_9_31000", id="host-resolves"),
    pytest.param(APP_PLAIN, task("fd00::5", [31000]), "fd00__5_31000", id="ipv6"),
    pytest.param(APP_PLAIN, task("10.0.6.25", [31184, 31185]), "10_0_6_25_31184", id="first-port"),
    pytest.param(APP_IPPT14, task("10.0.1.2", [31005], ip="9.0.0.3"), "10_0_1_2_9_0_0_3_8080",
                 id="ip-per-task-1.4-container-port"),
    pytest.param(APP_IPPT14_DISCOVERY, task("10.0.1.2", [], ip="9.0.0.3"), "10_0_1_2_9_0_0_3_8081",
                 id="ip-per-task-1.4-discovery-port"),
    pytest.param(APP_IPPT15, task("10.0.1.2", [31002], ip="9.0.0.4"), "10_0_1_2_9_0_0_4_8080",
                 id="ip-per-task-1.5-container-port"),
    pytest.param(APP_PLAIN, task("unknown.invalid", [31000]), None, id="unresolvable"),
    pytest.param(APP_PLAIN, task("10.0.6.25", []), None, id="no-port-yet"),
    pytest.param(APP_IPPT15, task("10.0.1.2", [31002]), None, id="ip-per-task-no-ip-yet"),
])
def test_task_server_name(app, task_json, expected):
    assert zdd.task_server_name(app, task_json, RESOLVE) == expected


HEALTH = {"healthChecks": [{"protocol": "HTTP", "path": "/"}]}


@pytest.mark.parametrize("app, task_json, expected", [
    pytest.param(APP_PLAIN, task("h", state="TASK_RUNNING"), True, id="running"),
    pytest.param(APP_PLAIN, task("h"), True, id="no-state"),
    pytest.param(APP_PLAIN, task("h", state="TASK_STAGING"), False, id="staging"),
    pytest.param(APP_PLAIN, task("h", state="TASK_STARTING"), False, id="starting"),
    pytest.param(APP_PLAIN, task("h", state="TASK_KILLING"), False, id="killing"),
    pytest.param(HEALTH, task("h", state="TASK_RUNNING"), False, id="health-results-absent"),
    pytest.param(HEALTH, task("h", state="TASK_RUNNING", healthCheckResults=[]), False, id="health-results-empty"),
    pytest.param(HEALTH, task("h", state="TASK_RUNNING", healthCheckResults=[{"alive": False}]), False,
                 id="not-alive"),
    pytest.param(HEALTH, task("h", state="TASK_RUNNING", healthCheckResults=[{"alive": True}]), True, id="alive"),
    pytest.param(HEALTH, task("h", state="TASK_KILLING", healthCheckResults=[{"alive": True}]), False,
                 id="alive-but-killing"),
    pytest.param(APP_PLAIN, task("h", state="TASK_RUNNING", healthCheckResults=[{"alive": False}]), True,
                 id="no-health-checks-results-ignored"),
])
def test_is_routable(app, task_json, expected):
    assert zdd.is_routable(app, task_json) is expected


# ---------------------------------------------------------------------------
# marathon-lb URLs
# ---------------------------------------------------------------------------

ADDRESSES = {"lb.example": ["10.0.0.1", "10.0.0.2", "fd00::1"], "one.example": ["10.0.0.7"]}


def resolve_all(host):
    return ADDRESSES.get(host, [])


def must_not_resolve(host):
    raise AssertionError(f"{host} must not be resolved")


@pytest.mark.parametrize("given, resolver, expected", [
    pytest.param(["http://lb.example:9090"], resolve_all,
                 ["http://10.0.0.1:9090", "http://10.0.0.2:9090", "http://[fd00::1]:9090"], id="ipv4-and-ipv6"),
    pytest.param(["http://lb.example:9090/base"], resolve_all,
                 ["http://10.0.0.1:9090/base", "http://10.0.0.2:9090/base", "http://[fd00::1]:9090/base"],
                 id="path-kept"),
    pytest.param(["http://one.example"], resolve_all, ["http://10.0.0.7"], id="no-port-no-None"),
    pytest.param(["http://10.0.0.5:9090"], must_not_resolve, ["http://10.0.0.5:9090"], id="ipv4-literal"),
    pytest.param(["http://[fd00::3]:9090"], must_not_resolve, ["http://[fd00::3]:9090"], id="ipv6-literal"),
    pytest.param(["http://lb.example:9090", "http://one.example:9090"], must_not_resolve,
                 ["http://lb.example:9090", "http://one.example:9090"], id="several-as-given"),
    pytest.param(["https://lb.example:9090"], must_not_resolve, ["https://lb.example:9090"], id="https-as-given"),
])
def test_lb_urls(given, resolver, expected):
    assert zdd.lb_urls(given, resolver) == expected


def test_lb_urls_unresolvable():
    with pytest.raises(zdd.LbFailed):
        zdd.lb_urls(["http://marathon-lb.invalid:9090"], resolve_all)


# ---------------------------------------------------------------------------
# --format-json
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, variables, expected", [
    pytest.param('{"id": "{name}"}', {"name": "web"}, '{"id": "web"}', id="string"),
    pytest.param('{"instances": {count}}', {"count": 3}, '{"instances": 3}', id="integer"),
    pytest.param('{"cpus": {cpus}}', {"cpus": 0.25}, '{"cpus": 0.25}', id="float"),
    pytest.param('{"a": "{x}-{y}"}', {"x": "p", "y": 2}, '{"a": "p-2"}', id="two-in-one-string"),
    pytest.param('{"env": {}, "args": []}', {}, '{"env": {}, "args": []}', id="empty-object-untouched"),
    pytest.param('{"labels": {"a": 1}}', {"a": 5}, '{"labels": {"a": 1}}', id="object-untouched"),
    pytest.param('{\n  "a": {\n    "b": "{v}"\n  }\n}', {"v": "w"}, '{\n  "a": {\n    "b": "w"\n  }\n}',
                 id="multiline"),
    pytest.param('{"id": "web"}', {"unused": 1}, '{"id": "web"}', id="unused-variable"),
])
def test_format_app_text(text, variables, expected):
    assert zdd.format_app_text(text, variables) == expected


@pytest.mark.parametrize("text", [
    pytest.param('{"id": "{x.__class__}"}', id="attribute"),
    pytest.param('{"id": "{x[0]}"}', id="index"),
    pytest.param('{"id": "{missing}"}', id="missing-variable"),
    pytest.param('{"id": "{0}"}', id="positional"),
])
def test_format_app_text_refuses(text):
    with pytest.raises(zdd.InvalidArgs):
        zdd.format_app_text(text, {"x": "value"})


# ---------------------------------------------------------------------------
# decide_swap(): the next step from one observation
# ---------------------------------------------------------------------------


def mk_task(app, n, state="TASK_RUNNING"):
    colour_index = {"green": 1, "blue": 2}[app]
    return {"id": f"web-{app}.{n}", "host": f"10.0.{colour_index}.{n}", "ports": [31000 + n], "state": state}


def name_of(app, n):
    return f"10_0_{ {'green': 1, 'blue': 2}[app] }_{n}_{31000 + n}"


def mk_app(colour, numbers, instances=None, deployments=()):
    return {"id": f"/web-{colour}", "instances": len(numbers) if instances is None else instances,
            "tasks": [mk_task(colour, n) for n in numbers], "deployments": list(deployments),
            "portDefinitions": [{"port": 10000}]}


def lb(listeners, pids=(4001, 4002), url="http://10.9.9.1:9090"):
    return zdd.LbView(url=url, pids=pids, listeners=tuple(zdd.Listener(*row) for row in listeners))


def identity(host):
    return host


def up(colour, n):
    return (name_of(colour, n), "UP", 0, 0)


def drained(colour, n):
    return (name_of(colour, n), "MAINT", 0, 0)


def busy(colour, n, scur=2):
    return (name_of(colour, n), "MAINT", scur, 0)


NEW1 = mk_app("green", [1])
OLD3 = mk_app("blue", [1, 2, 3])
DRAINED_B1 = [up("green", 1), drained("blue", 1), up("blue", 2), up("blue", 3)]
PLAN3 = plan(3)


@pytest.mark.parametrize("observation, the_plan, waited_s, expected", [
    pytest.param(zdd.Observation(mk_app("green", [1], deployments=[{"id": "d1"}]), OLD3, ()), PLAN3, 0,
                 zdd.Step(wait="the new app's Marathon deployment is in progress"), id="deployment-in-progress"),
    pytest.param(zdd.Observation(NEW1, OLD3, (lb(DRAINED_B1), lb(DRAINED_B1, pids=(4001, 4002, 4003), url="http://10.9.9.2:9090"))),
                 PLAN3, 0, "wait", id="reloading-3-pids"),
    pytest.param(zdd.Observation(NEW1, OLD3, (zdd.LbView(url="http://10.9.9.1:9090", pids=(4001, 4002, 4003, 4004)),)),
                 PLAN3, 0, "wait", id="reloading-no-stats"),
    pytest.param(zdd.Observation(NEW1, OLD3, (zdd.LbView(url="http://10.9.9.1:9090", error="refused"),)),
                 PLAN3, 0, "wait", id="lb-did-not-answer"),
    pytest.param(zdd.Observation(mk_app("green", [1, 2]), mk_app("blue", [2, 3]), (
        lb([up("green", 1), drained("blue", 1), up("blue", 2), up("blue", 3)]),)),
        PLAN3, 0, "wait", id="same-count-stale-names-fault-14"),
    pytest.param(zdd.Observation(NEW1, OLD3, (lb([up("green", 1), up("blue", 2), up("blue", 3)]),)),
                 PLAN3, 0, "wait", id="new-task-not-in-lb-yet"),
    pytest.param(zdd.Observation(mk_app("green", [1], instances=2), OLD3, (lb(DRAINED_B1),)),
                 PLAN3, 0, "wait", id="new-task-not-running-yet"),
    pytest.param(zdd.Observation(NEW1, OLD3, (lb([(name_of("green", 1), "DOWN", 0, 0), drained("blue", 1),
                                                  up("blue", 2), up("blue", 3)]),)),
                 PLAN3, 0, "wait", id="up-below-target"),
    pytest.param(zdd.Observation(NEW1, OLD3, (lb([up("green", 1), busy("blue", 1), up("blue", 2),
                                                  up("blue", 3)]),)),
                 PLAN3, 0, "wait", id="maint-with-sessions"),
    pytest.param(zdd.Observation(NEW1, OLD3, (lb(DRAINED_B1),)), PLAN3, 0,
                 zdd.Step(kill=("web-blue.1",), scale_to=2), id="drained-one-lb"),
    pytest.param(zdd.Observation(NEW1, OLD3, (lb(DRAINED_B1), lb(DRAINED_B1, url="http://10.9.9.2:9090"))),
                 PLAN3, 0, zdd.Step(kill=("web-blue.1",), scale_to=2), id="drained-on-both-lbs"),
    pytest.param(zdd.Observation(mk_app("green", [1, 2, 3, 4, 5]), mk_app("blue", [1, 2, 3, 4, 5, 6, 7]), (
        lb([up("green", n) for n in range(1, 6)] + [drained("blue", 1), busy("blue", 2)]
           + [up("blue", n) for n in range(3, 8)]),)),
        plan(10), 0, zdd.Step(kill=("web-blue.1",), scale_to=10), id="only-drained-ones-killed"),
    pytest.param(zdd.Observation(NEW1, OLD3, (
        lb(DRAINED_B1), lb([up("green", 1), busy("blue", 1), up("blue", 2), up("blue", 3)],
                           url="http://10.9.9.2:9090"))),
        PLAN3, 0, "wait", id="drained-on-one-lb-only"),
    pytest.param(zdd.Observation(NEW1, OLD3, (
        lb(DRAINED_B1), lb([up("green", 1), busy("blue", 1), up("blue", 2), up("blue", 3)],
                           url="http://10.9.9.2:9090"))),
        PLAN3, 300, zdd.Step(kill=("web-blue.1",), scale_to=2, forced=True), id="max-wait-kills-maint"),
    pytest.param(zdd.Observation(NEW1, OLD3, (lb([up("green", 1), busy("blue", 1), up("blue", 2),
                                                  up("blue", 3)]),)),
                 PLAN3, 299.9, "wait", id="just-before-max-wait"),
    pytest.param(zdd.Observation(mk_app("green", [1, 2, 3]), mk_app("blue", [3]), (
        lb([up("green", 1), up("green", 2), up("green", 3), drained("blue", 3)]),)),
        PLAN3, 0, zdd.Step(delete_old=True), id="ready-to-delete"),
    pytest.param(zdd.Observation(mk_app("green", [1, 2]), mk_app("blue", [3, 4]), (
        lb([up("green", 1), up("green", 2), up("blue", 3), up("blue", 4)]),)),
        plan(4, hybrid_goal=2), 0, zdd.Step(done=True), id="hybrid-done"),
    pytest.param(zdd.Observation(mk_app("green", [1, 2]), mk_app("blue", [2, 3, 4]), (
        lb([up("green", 1), up("green", 2), drained("blue", 2), up("blue", 3), up("blue", 4)]),)),
        plan(4, hybrid_goal=2), 0, zdd.Step(kill=("web-blue.2",)), id="hybrid-kill-without-scaling"),
])
def test_decide(observation, the_plan, waited_s, expected):
    step = zdd.decide_swap(zdd.named(observation, identity), the_plan, waited_s, 300)
    if expected == "wait":
        assert step.wait, step
        assert (step.kill, step.scale_to, step.delete_old, step.done) == ((), None, False, False)
    else:
        if expected.wait is None:
            assert step.wait is None, step.wait
        assert (step.kill, step.scale_to, step.delete_old, step.done, step.forced) == (
            expected.kill, expected.scale_to, expected.delete_old, expected.done, expected.forced)
        if expected.wait:
            assert step.wait == expected.wait


def test_decide_drained_one_lb_not_other_is_a_drain_wait():
    observation = zdd.Observation(NEW1, OLD3, (
        lb(DRAINED_B1), lb([up("green", 1), busy("blue", 1), up("blue", 2), up("blue", 3)],
                           url="http://10.9.9.2:9090")))
    step = zdd.decide_swap(zdd.named(observation, identity), PLAN3, 10, 300)
    assert step.wait and step.draining and not step.kill


# ---------------------------------------------------------------------------
# The resume command
# ---------------------------------------------------------------------------

BASE = ["-m", "http://m:8080", "-l", "http://lb:9090", "-j", "app.json"]


@pytest.mark.parametrize("argv, expected, secrets", [
    pytest.param(BASE, "zdd -m http://m:8080 -l http://lb:9090 -j app.json --resume", [], id="plain"),
    pytest.param(BASE + ["--dry-run"], "zdd -m http://m:8080 -l http://lb:9090 -j app.json --resume", [],
                 id="dry-run-dropped"),
    pytest.param(BASE + ["-d", "-f"], "zdd -m http://m:8080 -l http://lb:9090 -j app.json -f --resume", [],
                 id="short-dry-run-dropped"),
    pytest.param(BASE + ["--resume"], "zdd -m http://m:8080 -l http://lb:9090 -j app.json --resume", [],
                 id="resume-once"),
    pytest.param(["-r"] + BASE + ["--resume"], "zdd -m http://m:8080 -l http://lb:9090 -j app.json --resume", [],
                 id="resume-short-and-long-once"),
    pytest.param(BASE + ["--auth-credentials", "alice:s3cret:x"],
                 "zdd -m http://m:8080 -l http://lb:9090 -j app.json --auth-credentials '***' --resume",
                 ["s3cret", "alice"], id="auth-credentials"),
    pytest.param(BASE + ["--auth-credentials=alice:s3cret"],
                 "zdd -m http://m:8080 -l http://lb:9090 -j app.json --auth-credentials='***' --resume",
                 ["s3cret"], id="auth-credentials-equals"),
    pytest.param(BASE + ["--dcos-auth-credentials", '{"uid": "u", "private_key": "KEY"}'],
                 "zdd -m http://m:8080 -l http://lb:9090 -j app.json --dcos-auth-credentials '***' --resume",
                 ["KEY"], id="dcos-credentials"),
    pytest.param(BASE + ["--pre-kill-hook", "/opt/my hook.sh"],
                 "zdd -m http://m:8080 -l http://lb:9090 -j app.json --pre-kill-hook '/opt/my hook.sh' --resume",
                 [], id="quoted"),
    pytest.param(["-m", "http://alice:s3cret@m:8080", "-l", "http://lb:9090", "-j", "app.json"],
                 None, ["s3cret"], id="credentials-in-marathon-url"),
    pytest.param(BASE + ["--auth-cred", "alice:s3cret"], None, ["s3cret"], id="abbreviated-secret-flag"),
    pytest.param(BASE + ["--dcos=" + '{"private_key": "KEY"}'], None, ["KEY"], id="abbreviated-secret-flag-equals"),
])
def test_resume_command(argv, expected, secrets):
    command = zdd.resume_command(argv)
    if expected is not None:
        assert command == expected
    for secret in secrets:
        assert secret not in command
    assert command.split().count("--resume") == 1 and command.endswith("--resume")
    assert "--dry-run" not in command.split() and "-d" not in command.split()
