"""The plan's diff from the running colour (``definition_changes``) and --skip-unchanged.

The running colour is what Marathon answers for it: captured answers of Marathon 1.4 and 1.5
(tests/fixtures/zdd_app_blue*.json) and the simulator's, in both versions' shapes. The app JSON
that produced them must show no change: what zdd sets and what Marathon fills in are left out.
"""

import copy
import datetime
import io
import json

import pytest
import requests

import zdd
from tests.helpers import QUIET, SEQUENCE_3, run, run_json, seed_blue, seed_half_done, writes
from tests.sandbox.world import load_fixture

NOW = datetime.datetime(2026, 12, 6, 12, 0, 0)
OPTIONS = zdd.Options(marathon="http://marathon", marathon_lb=("http://lb",), json="app.json")


def captured(name):
    """The one app of a captured GET /v2/apps answer."""
    return load_fixture(name)["apps"][0]


def changes_against(running, app_json):
    """The diff the plan shows for ``app_json`` deployed next to ``running``, as (path, old, new) tuples."""
    new = zdd.prepare_app(zdd.parse_app(json.dumps(app_json)), running, OPTIONS, NOW)
    return [(c.path, c.old, c.new) for c in zdd.definition_changes(running, new)]


# --- captured answers of real Marathons ----------------------------------------------------------


@pytest.mark.parametrize("app_json, answer", [
    ("1-nginx.json", "zdd_app_blue.json"),  # Marathon 1.4 shapes (docker.network, ports, nulls, empties)
    ("1-nginx-marathon1.5.json", "zdd_app_blue_marathon1.5.json"),  # 1.5 (networks, delaySeconds, killSelection)
])
def test_the_json_a_captured_answer_came_from_shows_no_change(app_json, answer):
    assert changes_against(captured(answer), load_fixture(app_json)) == []


def test_a_1_4_json_against_a_1_5_answer_shows_only_what_really_differs():
    # the same app in 1.4's shape: networking and port mappings compare equal; the health check protocol does not
    assert changes_against(captured("zdd_app_blue_marathon1.5.json"), load_fixture("1-nginx.json")) == [
        ("healthChecks[0].protocol", "MESOS_HTTP", "HTTP")]


def edited(edit):
    app = load_fixture("1-nginx-marathon1.5.json")
    edit(app)
    return app


@pytest.mark.parametrize("edit, expected", [
    (lambda a: a["container"]["docker"].update(image="nginx:2"),
     [("container.docker.image", "brndnmtthws/nginx-echo-sleep", "nginx:2")]),
    (lambda a: a.update(cpus=0.5, env={"MODE": "fast"}),
     [("cpus", 0.1, 0.5), ("env.MODE", None, "fast")]),
    (lambda a: a["labels"].update(HAPROXY_GROUP="internal"), [("labels.HAPROXY_GROUP", "external", "internal")]),
    (lambda a: a["labels"].update(HAPROXY_DEPLOYMENT_ALT_PORT="10002"),
     [("labels.HAPROXY_DEPLOYMENT_ALT_PORT", "10001", "10002")]),
    # the JSON's own service port is the group's HAProxy port: it shows in the label zdd copies it to
    (lambda a: a["container"]["portMappings"][0].update(servicePort=10005),
     [("labels.HAPROXY_0_PORT", "10000", "10005")]),
    (lambda a: a["container"]["portMappings"][0].update(containerPort=9090),
     [("container.portMappings[0].containerPort", 8080, 9090)]),
    (lambda a: a["healthChecks"][0].update(intervalSeconds=5), [("healthChecks[0].intervalSeconds", 3, 5)]),
    # a field left out is Marathon's default: shown as that default
    (lambda a: a.pop("mem"), [("mem", 65, 128)]),
    (lambda a: a.pop("acceptedResourceRoles"), [("acceptedResourceRoles", ["*", "slave_public"], None)]),
    (lambda a: a.update(backoffSeconds=10), [("backoffSeconds", 1, 10)]),
    (lambda a: a.update(upgradeStrategy={"minimumHealthCapacity": 0.5}),
     [("upgradeStrategy.minimumHealthCapacity", 1, 0.5)]),
    # a list whose length changed is one change, without Marathon's defaults in its entries
    (lambda a: a["healthChecks"].append({"protocol": "TCP", "portIndex": 0}),
     [("healthChecks", [{"gracePeriodSeconds": 15, "intervalSeconds": 3, "maxConsecutiveFailures": 10,
                         "path": "/", "protocol": "MESOS_HTTP", "timeoutSeconds": 15}],
       [{"gracePeriodSeconds": 15, "intervalSeconds": 3, "maxConsecutiveFailures": 10, "path": "/",
         "protocol": "MESOS_HTTP", "timeoutSeconds": 15}, {"protocol": "TCP"}])]),
    (lambda a: a.update(id="nginx2"), [("labels.HAPROXY_APP_ID", "nginx", "nginx2")]),
])
def test_what_the_json_changes_is_shown_by_path(edit, expected):
    assert changes_against(captured("zdd_app_blue_marathon1.5.json"), edited(edit)) == expected


@pytest.mark.parametrize("edit", [
    lambda a: a.update(instances=9),  # zdd sets the instances (the running colour's count is the target)
    lambda a: a.update(backoffSeconds=1, backoffFactor=1.15, maxLaunchDelaySeconds=3600, requirePorts=False,
                       killSelection="YOUNGEST_FIRST", disk=0, gpus=0, executor="", args=[], constraints=[],
                       upgradeStrategy={"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
                       unreachableStrategy={"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}),
    lambda a: a["healthChecks"][0].update(delaySeconds=15, portIndex=0),
    lambda a: a["container"]["portMappings"][0].update(protocol="tcp", labels={}),
    lambda a: a["container"]["docker"].update(privileged=False, parameters=[]),
    lambda a: a["labels"].update(HAPROXY_DEPLOYMENT_COLOUR="green", HAPROXY_DEPLOYMENT_TARGET_INSTANCES="50"),
])
def test_marathon_defaults_and_what_zdd_sets_are_no_change(edit):
    assert changes_against(captured("zdd_app_blue_marathon1.5.json"), edited(edit)) == []


def test_a_field_marathon_completes_compares_with_what_the_json_gave():
    running = captured("zdd_app_blue_marathon1.5.json")
    running["upgradeStrategy"] = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 1}
    assert changes_against(running, edited(lambda a: a.update(upgradeStrategy={"minimumHealthCapacity": 0.5}))) == []


def test_an_answer_on_the_alternate_port_compares_the_same():
    running = captured("zdd_app_blue_marathon1.5.json")
    running["container"]["portMappings"][0]["servicePort"] = 10001
    assert changes_against(running, load_fixture("1-nginx-marathon1.5.json")) == []


def test_the_running_colour_is_not_changed_by_the_comparison():
    running = captured("zdd_app_blue.json")
    before = copy.deepcopy(running)
    changes_against(running, load_fixture("1-nginx.json"))
    assert running == before


# --- the simulator: Marathon 1.4 and 1.5 answers of apps of every port shape ---------------------


HOST_APP = {"id": "web", "cmd": "python3 -m http.server $PORT0", "instances": 3, "cpus": 0.2, "mem": 64,
            "uris": ["https://example.com/site.tgz", "https://example.com/run.sh"],
            "portDefinitions": [{"port": 10000}],
            "healthChecks": [{"path": "/", "portIndex": 0}],
            "labels": {"HAPROXY_DEPLOYMENT_GROUP": "web", "HAPROXY_DEPLOYMENT_ALT_PORT": "10001"}}
LEGACY_PORTS_APP = dict(HOST_APP, portDefinitions=None, ports=[10000], uris=None,
                        fetch=[{"uri": "https://example.com/site.tgz", "extract": True}])


@pytest.mark.parametrize("marathon", ["world14", "world"], ids=["marathon-1.4", "marathon-1.5"])
@pytest.mark.parametrize("app_json", ["1-nginx.json", "1-nginx-marathon1.5.json", HOST_APP, LEGACY_PORTS_APP],
                         ids=["docker-1.4-shape", "docker-1.5-shape", "host-portDefinitions", "host-ports"])
def test_the_simulators_answer_for_the_same_json_shows_no_change(request, marathon, app_json):
    world = request.getfixturevalue(marathon)
    app_json = load_fixture(app_json) if isinstance(app_json, str) else copy.deepcopy(app_json)
    first = zdd.prepare_app(zdd.parse_app(json.dumps(app_json)), None, OPTIONS, NOW)  # blue, as zdd created it
    running = world.sim.add_app(first)
    assert changes_against(running, app_json) == []
    listed = world.sim.api_apps(embed_tasks=False)[0]  # what zdd reads: GET /v2/apps
    assert changes_against(listed, app_json) == []


# --- the plan on every run, and --skip-unchanged ------------------------------------------------


def test_the_plan_event_and_text_carry_the_changes(world, app_file):
    seed_blue(world, 3)
    app = load_fixture("1-nginx-marathon1.5.json")
    app["container"]["docker"]["image"] = "nginx:2"
    code, events, err = run_json(world, app_file(app), "--dry-run")
    assert code == 0, err
    plan = next(e for e in events if e["event"] == "plan")
    assert plan["changes"] == [{"path": "container.docker.image", "old": "brndnmtthws/nginx-echo-sleep",
                                "new": "nginx:2"}]
    code, _, err = run(world, app_file(app), "--dry-run")
    assert 'plan: 1 field(s) differ from /nginx-blue:\n  container.docker.image: ' \
           '"brndnmtthws/nginx-echo-sleep" -> "nginx:2"' in err


def test_the_plan_says_when_nothing_differs_and_a_first_deployment_has_no_diff(world, app_path):
    code, events, _ = run_json(world, app_path, "--dry-run")
    assert code == 0 and next(e for e in events if e["event"] == "plan")["changes"] is None
    seed_blue(world, 3)
    code, events, err = run_json(world, app_path, "--dry-run")
    assert next(e for e in events if e["event"] == "plan")["changes"] == []
    assert "plan: nothing differs from /nginx-blue" in err


def test_resuming_shows_the_diff_between_the_two_colours(world, app_path):
    seed_half_done(world)
    code, events, err = run_json(world, app_path, "--dry-run", "--resume")
    assert code == 0, err
    assert next(e for e in events if e["event"] == "plan")["changes"] == []


def test_skip_unchanged_writes_nothing_when_nothing_differs(world, app_path):
    seed_blue(world, 3)
    code, events, err = run_json(world, app_path, "--skip-unchanged")
    assert code == 0, err
    assert writes(world) == []
    assert "/nginx-blue runs this definition already: nothing to deploy (--skip-unchanged)" in err
    assert events[-1]["result"] == "unchanged" and events[-1]["exit_code"] == 0
    assert [e["event"] for e in events] == ["start", "app_prepared", "plan", "finished"]


def test_skip_unchanged_reads_no_marathon_lb(world, app_path):
    # a marathon-lb that does not answer would fail the preflight (exit 5): an unchanged release never reads it
    seed_blue(world, 3)
    code, _, err = run(world, app_path, "--skip-unchanged", lbs="http://127.0.0.1:9")
    assert code == 0, err
    assert writes(world) == []


def test_skip_unchanged_deploys_a_changed_definition(world, app_file):
    seed_blue(world, 3)
    code, _, err = run(world, app_file(cpus=0.2), "--skip-unchanged")
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


def test_without_the_flag_an_unchanged_definition_is_deployed_as_before(world, app_path):
    seed_blue(world, 3)
    code, _, err = run(world, app_path)
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


def test_a_marathon_deployment_in_progress_is_not_unchanged(world, app_path):
    seed_blue(world, 3)
    # a scale through the API: a deployment runs on blue until its new task is up (the fake clock stands still)
    assert requests.put(world.sim.url + "/v2/apps/nginx-blue", json={"instances": 4}).status_code == 200
    world.sim.clear_log()
    assert world.sim.app("/nginx-blue")["deployments"]
    code, events, err = run_json(world, app_path, "--skip-unchanged", "--dry-run")
    assert code == 0, err
    assert next(e for e in events if e["event"] == "plan")["changes"] == []
    assert events[-1]["result"] == "dry_run"
    assert "a Marathon deployment of it is in progress: deploying all the same (--skip-unchanged)" in err


def test_a_group_with_two_apps_is_not_unchanged(world, app_path):
    seed_half_done(world)
    code, _, err = run(world, app_path, "--skip-unchanged")
    assert code == 3 and "--resume" in err
    code, events, err = run_json(world, app_path, "--skip-unchanged", "--resume")
    assert code == 0, err
    assert events[-1]["result"] == "deployed" and writes(world)


def test_the_environment_variable_sets_it(world, app_path):
    seed_blue(world, 3)
    argv = ["-m", world.sim.url, "-l", world.lb.url, "-j", app_path, *QUIET, "--force"]
    code = zdd.main(argv, clock=world.clock, ask=lambda question: True, environ={"ZDD_SKIP_UNCHANGED": "1"},
                    stdout=io.StringIO(), stderr=io.StringIO())
    assert code == 0 and writes(world) == []


def test_a_first_deployment_is_never_unchanged(world, app_path):
    code, events, err = run_json(world, app_path, "--skip-unchanged")
    assert code == 0, err
    assert writes(world) == [("create", "/nginx-blue", 5)]
    assert events[-1]["result"] == "deployed"


@pytest.mark.parametrize("odd", [
    {"ports": 10000}, {"portDefinitions": {"port": 1}}, {"networks": "host"}, {"networks": [5]},
    {"container": {"portMappings": "x", "docker": "y"}}, {"healthChecks": [None, 3]}, {"labels": None},
])
def test_an_odd_answer_is_compared_without_a_crash(odd):
    running = captured("zdd_app_blue_marathon1.5.json")
    new = zdd.prepare_app(load_fixture("1-nginx-marathon1.5.json"), running, OPTIONS, NOW)
    assert isinstance(zdd.definition_changes(dict(running, **odd), new), tuple)
