"""The Marathon simulator against docs/marathon-api.rst."""

import re
import threading
import time

import pytest
import requests

from tests.helpers import wait_for
from tests.sandbox.clock import FakeClock, RealClock
from tests.sandbox.marathon import LOCKED_MESSAGE, MarathonSim, RecordLauncher
from tests.sandbox.world import load_fixture

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(params=["1.4", "1.5"])
def any_sim(request, clock):
    with MarathonSim(clock=clock, marathon_version=request.param) as sim:
        yield sim


@pytest.fixture
def sim(clock):
    with MarathonSim(clock=clock) as sim:
        yield sim


@pytest.fixture
def sim14(clock):
    with MarathonSim(clock=clock, marathon_version="1.4") as sim:
        yield sim


def simple_app(app_id="/web", instances=1, labels=None, health=True, **extra):
    app = {"id": app_id, "cmd": "sleep 1000", "instances": instances, "labels": labels or {},
           "portDefinitions": [{"port": 0}]}
    if health:
        app["healthChecks"] = [{"protocol": "HTTP", "path": "/", "intervalSeconds": 2, "gracePeriodSeconds": 10}]
    app.update(extra)
    return app


def get_app(sim, app_id):
    response = requests.get(sim.url + "/v2/apps" + app_id)
    assert response.status_code == 200, response.text
    return response.json()["app"]


def settle(sim, clock, seconds=10.0, step_s=0.5):
    """Let simulated time pass, polling like a client does."""
    for _ in range(int(seconds / step_s)):
        clock.advance(step_s)
        requests.get(sim.url + "/v2/deployments")


def test_ping_and_info(any_sim):
    assert requests.get(any_sim.url + "/ping").text == "pong"
    info = requests.get(any_sim.url + "/v2/info").json()
    assert info["version"] == any_sim.marathon_version + ".0"
    assert info["name"] == "marathon"


def test_empty_app_list(any_sim):
    assert requests.get(any_sim.url + "/v2/apps").json() == {"apps": []}
    assert requests.get(any_sim.url + "/v2/deployments").json() == []


def test_post_201_body_header_and_later_get(sim):
    response = requests.post(sim.url + "/v2/apps", json=simple_app("web", instances=2, version="bogus"))
    assert response.status_code == 201
    body = response.json()
    deployment_id = response.headers["Marathon-Deployment-Id"]
    assert re.fullmatch(UUID_RE, deployment_id)
    assert body["deployments"] == [{"id": deployment_id}]
    assert body["tasks"] == []
    assert (body["tasksStaged"], body["tasksRunning"], body["tasksHealthy"], body["tasksUnhealthy"]) == (0, 0, 0, 0)
    assert "versionInfo" not in body
    assert TS_RE.match(body["version"]) and body["version"] != "bogus"
    assert body["id"] == "/web"
    assert body["portDefinitions"][0]["port"] == 0          # echoed unassigned
    assert response.headers["Location"].endswith("/v2/apps/web")
    app = get_app(sim, "/web")
    assert app["portDefinitions"][0]["port"] == 10000         # assigned, visible in GET
    assert app["versionInfo"] == {"lastScalingAt": body["version"], "lastConfigChangeAt": body["version"]}
    assert app["deployments"] == [{"id": deployment_id}]
    assert len(app["tasks"]) == 2
    second = requests.post(sim.url + "/v2/apps", json=simple_app("/other"))
    assert get_app(sim, "/other")["portDefinitions"][0]["port"] == 10001
    assert second.status_code == 201


@pytest.mark.parametrize("path", ["/v2/apps/web", "/v2/apps//web", "/v2/apps/web/", "/v2/apps//web//"])
def test_app_id_normalised_in_path(sim, path):
    sim.add_app(simple_app("web"))
    response = requests.get(sim.url + path)
    assert response.status_code == 200 and response.json()["app"]["id"] == "/web"


def test_nested_ids_and_group_listing(sim):
    assert requests.post(sim.url + "/v2/apps", json=simple_app("prod/web")).status_code == 201
    app = get_app(sim, "/prod/web")
    assert app["id"] == "/prod/web"
    assert app["tasks"][0]["id"].startswith("prod_web.")
    listing = requests.get(sim.url + "/v2/apps/prod/*").json()
    assert [entry["id"] for entry in listing["*"]] == ["/prod/web"]


def test_get_unknown_app_404(sim):
    response = requests.get(sim.url + "/v2/apps/nope")
    assert response.status_code == 404
    assert response.json() == {"message": "App '/nope' does not exist"}


@pytest.mark.parametrize("bad_id", ["Web", "web_1", "-web", "web-", "prod/Web"])
def test_bad_id_422(sim, bad_id):
    response = requests.post(sim.url + "/v2/apps", json=simple_app(bad_id))
    assert response.status_code == 422
    assert response.json()["message"] == "Object is not valid"
    assert response.json()["details"][0]["path"] == "/id"
    assert sim.api_apps() == []


def test_no_cmd_args_or_container_422(sim):
    response = requests.post(sim.url + "/v2/apps", json={"id": "/web", "instances": 1})
    assert response.status_code == 422
    assert response.json()["details"] == [
        {"path": "/", "errors": ["AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."]}]


def test_bad_json_and_types_400(sim):
    response = requests.post(sim.url + "/v2/apps", data="{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["message"] == "Invalid JSON"
    assert isinstance(response.json()["details"], str)
    response = requests.post(sim.url + "/v2/apps", json=simple_app(labels={"N": 3}))
    assert response.status_code == 400 and isinstance(response.json()["details"], list)
    response = requests.post(sim.url + "/v2/apps", json=simple_app(instances="3"))
    assert response.status_code == 400


def test_duplicate_id_409(sim):
    sim.add_app(simple_app("web"))
    response = requests.post(sim.url + "/v2/apps", json=simple_app("/web"))
    assert response.status_code == 409
    assert response.json() == {"message": "An app with id [/web] already exists."}


def test_put_instances_of_unknown_app_is_422_not_404(sim):
    response = requests.put(sim.url + "/v2/apps/ghost", json={"instances": 2})
    assert response.status_code == 422
    assert sim.api_apps() == []


def test_put_full_definition_of_unknown_app_creates_it_201(sim):
    response = requests.put(sim.url + "/v2/apps/fresh", json=simple_app("fresh"))
    assert response.status_code == 201
    assert set(response.json()) == {"version", "deploymentId"}
    assert get_app(sim, "/fresh")["instances"] == 1


def test_scale_put_changes_version_and_last_scaling_only(sim, clock):
    seeded = sim.add_app(simple_app("web", instances=1))
    clock.advance(5)
    response = requests.put(sim.url + "/v2/apps/web", json={"instances": 3})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"version", "deploymentId"}
    assert response.headers["Marathon-Deployment-Id"] == body["deploymentId"]
    app = get_app(sim, "/web")
    assert app["instances"] == 3
    assert app["version"] == app["versionInfo"]["lastScalingAt"] == body["version"]
    assert app["versionInfo"]["lastConfigChangeAt"] == seeded["versionInfo"]["lastConfigChangeAt"]
    assert body["version"] > seeded["version"]
    assert app["deployments"] == [{"id": body["deploymentId"]}]
    deployment, = requests.get(sim.url + "/v2/deployments").json()
    assert deployment["id"] == body["deploymentId"]
    assert deployment["affectedApps"] == ["/web"]
    assert deployment["steps"] == [{"actions": [{"action": "ScaleApplication", "app": "/web"}]}]
    assert (deployment["currentStep"], deployment["totalSteps"]) == (1, 1)


def test_locked_app_409_body_and_force(sim):
    sim.add_app(simple_app("web", instances=1))
    first = requests.put(sim.url + "/v2/apps/web", json={"instances": 3}).json()["deploymentId"]
    locked = requests.put(sim.url + "/v2/apps/web", json={"instances": 4})
    assert locked.status_code == 409
    assert locked.json() == {"message": LOCKED_MESSAGE, "deployments": [{"id": first}]}
    assert "<DEPLOYMENT_ID>" in locked.json()["message"]
    assert get_app(sim, "/web")["instances"] == 3
    forced = requests.put(sim.url + "/v2/apps/web?force=true", json={"instances": 4})
    assert forced.status_code == 200
    ids = [deployment["id"] for deployment in requests.get(sim.url + "/v2/deployments").json()]
    assert ids == [forced.json()["deploymentId"]]                 # the conflicting one was cancelled
    assert get_app(sim, "/web")["instances"] == 4


def test_noop_scale_is_200_even_when_locked(sim):
    sim.add_app(simple_app("web", instances=1))
    requests.put(sim.url + "/v2/apps/web", json={"instances": 3})
    response = requests.put(sim.url + "/v2/apps/web", json={"instances": 3})
    assert response.status_code == 200
    assert response.headers["Marathon-Deployment-Id"] == response.json()["deploymentId"]
    assert len(requests.get(sim.url + "/v2/deployments").json()) == 1


def test_other_apps_are_not_locked(sim):
    sim.add_app(simple_app("web", instances=1))
    sim.add_app(simple_app("api", instances=1))
    requests.put(sim.url + "/v2/apps/web", json={"instances": 3})
    assert requests.put(sim.url + "/v2/apps/api", json={"instances": 2}).status_code == 200


def test_create_deployment_finishes_when_tasks_run_healthy(sim, clock):
    response = requests.post(sim.url + "/v2/apps", json=simple_app("web", instances=2))
    deployment_id = response.json()["deployments"][0]["id"]
    deployment, = requests.get(sim.url + "/v2/deployments").json()
    assert [step["actions"][0]["action"] for step in deployment["steps"]] == ["StartApplication", "ScaleApplication"]
    app = get_app(sim, "/web")
    assert app["tasksStaged"] == 2 and app["tasksRunning"] == 0
    for task in app["tasks"]:
        assert task["state"] == "TASK_STAGING"
        assert task["startedAt"] is None
        assert TS_RE.match(task["stagedAt"])
        assert len(task["ports"]) == 1 and task["ports"][0] >= 31000
        assert task["version"] == app["version"]
        assert "healthCheckResults" not in task and "ipAddresses" not in task
        assert re.fullmatch(r"web\.[0-9a-f-]{36}", task["id"])
        assert task["appId"] == "/web" and task["host"] == "127.0.0.1" and task["slaveId"]
    clock.advance(1.0)                                   # SIM_START_DELAY_S default 1
    app = get_app(sim, "/web")
    assert app["tasksRunning"] == 2 and app["tasksHealthy"] == 0
    assert all(TS_RE.match(task["startedAt"]) and "healthCheckResults" not in task for task in app["tasks"])
    assert app["deployments"] == [{"id": deployment_id}]
    clock.advance(2.0)                                   # intervalSeconds 2: first check
    app = get_app(sim, "/web")
    assert app["tasksHealthy"] == 2 and app["deployments"] == []
    assert requests.get(sim.url + "/v2/deployments").json() == []
    task = app["tasks"][0]
    result, = task["healthCheckResults"]
    assert result["alive"] is True and result["consecutiveFailures"] == 0
    assert result["firstSuccess"] == result["lastSuccess"] and result["lastFailure"] is None
    assert result["lastFailureCause"] is None
    assert result["instanceId"] == "web.marathon-" + task["id"].split(".", 1)[1]
    assert result["instanceId"] != task["id"]


def test_start_delay_label(sim, clock):
    requests.post(sim.url + "/v2/apps", json=simple_app("web", labels={"SIM_START_DELAY_S": "5"}, health=False))
    clock.advance(4.9)
    assert get_app(sim, "/web")["tasksRunning"] == 0
    clock.advance(0.1)
    app = get_app(sim, "/web")
    assert app["tasksRunning"] == 1
    assert app["tasksHealthy"] == 0                         # no health checks: never healthy
    assert app["deployments"] == []


def test_first_check_label(sim, clock):
    """SIM_FIRST_CHECK_S: the first check that long after TASK_RUNNING, again at that pace until one passes, then
    every intervalSeconds (2 s)."""
    requests.post(sim.url + "/v2/apps", json=simple_app("web", labels={"SIM_FIRST_CHECK_S": "0.25"}))
    clock.advance(1.0)                                   # SIM_START_DELAY_S default 1: running
    task_id = get_app(sim, "/web")["tasks"][0]["id"]
    sim.set_task_healthy(task_id, False)
    clock.advance(0.25)                                  # the first check fails (inside the grace: not recorded)
    assert get_app(sim, "/web")["tasksHealthy"] == 0
    sim.set_task_healthy(task_id, None)
    clock.advance(0.2)
    assert get_app(sim, "/web")["tasksHealthy"] == 0
    clock.advance(0.1)                                   # the second check, 0.25 s after the first: it passes
    app = get_app(sim, "/web")
    assert app["tasksHealthy"] == 1 and app["deployments"] == []
    sim.set_task_healthy(task_id, False)
    clock.advance(1.9)                                   # after a pass, the app's interval
    assert get_app(sim, "/web")["tasksHealthy"] == 1
    clock.advance(0.1)
    assert get_app(sim, "/web")["tasksUnhealthy"] == 1


def test_unhealthy_app_keeps_its_deployment_forever(sim, clock):
    requests.post(sim.url + "/v2/apps", json=simple_app("web", labels={"SIM_HEALTHY": "false"}))
    settle(sim, clock, seconds=8)
    app = get_app(sim, "/web")
    # failures inside the 10 s grace period are not recorded before a first success
    assert app["tasksRunning"] == 1 and "healthCheckResults" not in app["tasks"][0]
    settle(sim, clock, seconds=600, step_s=5)
    app = get_app(sim, "/web")
    assert app["tasksUnhealthy"] == 1 and app["tasksHealthy"] == 0
    result, = app["tasks"][0]["healthCheckResults"]
    assert result["alive"] is False and result["consecutiveFailures"] > 1 and result["firstSuccess"] is None
    assert result["lastFailureCause"] == "SIM_HEALTHY is false"
    assert len(app["deployments"]) == 1
    assert requests.put(sim.url + "/v2/apps/web", json={"instances": 2}).status_code == 409


def test_health_report_says_why_each_task_is_not_healthy(sim, clock):
    """Before Marathon records a failure (inside the grace period), the report already says why."""
    requests.post(sim.url + "/v2/apps", json=simple_app("bad", labels={"SIM_HEALTHY": "false"}))
    requests.post(sim.url + "/v2/apps", json=simple_app("good", instances=2))
    assert sorted(line.split(": ", 1)[1] for line in sim.health_report()) == ["not checked (TASK_STAGING)"] * 3
    clock.advance(1.0)                                   # running, not yet checked (intervalSeconds 2)
    assert sorted(line.split(": ", 1)[1] for line in sim.health_report()) == ["not checked yet"] * 3
    clock.advance(2.0)
    bad_task = get_app(sim, "/bad")["tasks"][0]
    assert "healthCheckResults" not in bad_task          # inside the grace period: not recorded
    assert sim.health_report() == ["%s TASK_RUNNING: SIM_HEALTHY is false" % bad_task["id"]]
    good_task = get_app(sim, "/good")["tasks"][0]["id"]
    sim.set_task_healthy(good_task, False)
    clock.advance(2.0)
    assert sorted(sim.health_report()) == sorted(["%s TASK_RUNNING: SIM_HEALTHY is false" % bad_task["id"],
                                                  "%s TASK_RUNNING: set unhealthy by the test" % good_task])
    result, = next(task for task in get_app(sim, "/good")["tasks"] if task["id"] == good_task)["healthCheckResults"]
    assert result["alive"] is False and result["lastFailureCause"] == "set unhealthy by the test"


class _SlowChecks(RecordLauncher):
    """Checks that take as long as the test says: each waits for ``answer`` (a threading.Event)."""
    slow_checks = True

    def __init__(self, clock):
        super().__init__(clock)
        self.answer = threading.Event()
        self.started = []

    def check_health(self, task_id):
        self.started.append(task_id)
        self.answer.wait(10)
        return super().check_health(task_id)


def test_a_slow_check_blocks_no_request_and_counts_once_it_ends(clock):
    """Marathon does not wait for a health check: a check that takes long holds up no API request, the next one
    does not start before it ends, and its result is recorded at the first tick after it ends."""
    launcher = _SlowChecks(clock)
    with MarathonSim(clock=clock, launcher=launcher) as sim:
        requests.post(sim.url + "/v2/apps", json=simple_app("web"))
        clock.advance(3.0)                                   # running at 1 s, first check due at 3 s
        app = get_app(sim, "/web")                           # answered while the check waits
        assert launcher.started == [app["tasks"][0]["id"]] and app["tasksHealthy"] == 0
        clock.advance(4.0)                                   # two more checks due: none starts, one is running
        assert get_app(sim, "/web")["tasksHealthy"] == 0 and len(launcher.started) == 1
        launcher.answer.set()
        wait_for(lambda: get_app(sim, "/web")["tasksHealthy"] == 1, what="the slow check's result")
        assert get_app(sim, "/web")["deployments"] == []


def test_writes_while_a_slow_check_runs(clock):
    """A kill and a deployment copy the app with its tasks: a check running then is no part of that copy."""
    launcher = _SlowChecks(clock)
    with MarathonSim(clock=clock, launcher=launcher) as sim:
        requests.post(sim.url + "/v2/apps", json=simple_app("web", instances=2))
        clock.advance(3.0)
        tasks = get_app(sim, "/web")["tasks"]
        assert len(launcher.started) == 2                   # both checks wait
        killed = requests.post(sim.url + "/v2/tasks/delete?scale=true&force=true", json={"ids": [tasks[0]["id"]]})
        assert killed.status_code == 200, killed.text
        scaled = requests.put(sim.url + "/v2/apps/web?force=true", json={"instances": 3})
        assert scaled.status_code == 200, scaled.text
        launcher.answer.set()
        clock.advance(1.0)
        wait_for(lambda: get_app(sim, "/web")["tasksHealthy"] >= 1, what="the slow check's result")


def test_set_task_healthy_override(sim, clock):
    app = sim.add_app(simple_app("web", instances=2))
    task_id = app["tasks"][0]["id"]
    sim.set_task_healthy(task_id, False)
    clock.advance(2)
    app = get_app(sim, "/web")
    assert (app["tasksHealthy"], app["tasksUnhealthy"]) == (1, 1)


def test_seeded_app_is_ready(sim):
    app = sim.add_app(load_fixture("1-nginx-marathon1.5.json"))
    assert app["instances"] == 5 and app["tasksRunning"] == 5 and app["tasksHealthy"] == 5
    assert app["deployments"] == []
    assert sim.requests == []                               # seeding is not an API request
    assert all(task["ipAddresses"][0]["ipAddress"].startswith("172.17.0.") for task in app["tasks"])
    assert all(len(task["ports"]) == 1 for task in app["tasks"])


def test_writes_are_strictly_increasing_at_one_instant(sim):
    sim.add_app(simple_app("web", instances=5))
    versions = [requests.put(sim.url + "/v2/apps/web?force=true", json={"instances": n}).json()["version"]
                for n in (4, 3, 2)]
    assert versions == sorted(set(versions))
    assert [version[-5:] for version in versions] == [".001Z", ".002Z", ".003Z"]   # seeding took .000


def test_kill_and_scale(sim, clock):
    app = sim.add_app(simple_app("web", instances=3, labels={"SIM_KILL_DELAY_S": "4"}))
    victims = sorted(task["id"] for task in app["tasks"])[:2]
    clock.advance(1)
    response = requests.post(sim.url + "/v2/tasks/delete?scale=true",
                             json={"ids": victims + ["web.00000000-0000-0000-0000-000000000000"]})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"version", "deploymentId"}
    assert response.headers["Marathon-Deployment-Id"] == body["deploymentId"]
    after = get_app(sim, "/web")
    assert after["instances"] == 1
    assert after["versionInfo"]["lastScalingAt"] == body["version"] > app["versionInfo"]["lastScalingAt"]
    assert after["versionInfo"]["lastConfigChangeAt"] == app["versionInfo"]["lastConfigChangeAt"]
    states = {task["id"]: task["state"] for task in after["tasks"]}
    assert [states[victim] for victim in victims] == ["TASK_KILLING", "TASK_KILLING"]
    assert after["tasksRunning"] == 1
    assert after["deployments"] == [{"id": body["deploymentId"]}]
    again = requests.post(sim.url + "/v2/tasks/delete?scale=true", json={"ids": victims})
    assert again.status_code == 409                        # locked until the kills finish
    clock.advance(4)
    after = get_app(sim, "/web")
    assert [task["id"] for task in after["tasks"]] == [t for t in states if t not in victims]
    assert after["deployments"] == [] and after["instances"] == 1


def test_kill_and_scale_unknown_ids_only(sim):
    sim.add_app(simple_app("web", instances=1))
    response = requests.post(sim.url + "/v2/tasks/delete?scale=true",
                             json={"ids": ["web.11111111-1111-1111-1111-111111111111", "gone_app.abc"]})
    assert response.status_code == 200 and "deploymentId" in response.json()
    assert get_app(sim, "/web")["instances"] == 1
    assert requests.get(sim.url + "/v2/deployments").json() == []


@pytest.mark.parametrize("query, headers, body, status", [
    ("scale=true", {"Content-Type": "text/plain"}, '{"ids": []}', 415),
    ("scale=true", {}, '{"ids": []}', 415),
    ("scale=true&wipe=true", {"Content-Type": "application/json"}, '{"ids": []}', 400),
    ("scale=true", {"Content-Type": "application/json"}, '{"ids": ["x"]}', 400),
    ("scale=true", {"Content-Type": "application/json"}, '{"ids": "web.1"}', 400),
    ("scale=true", {"Content-Type": "application/json"}, 'not json', 400),
])
def test_tasks_delete_errors(sim, query, headers, body, status):
    app = sim.add_app(simple_app("web", instances=2))
    response = requests.post(sim.url + "/v2/tasks/delete?" + query, data=body, headers=headers)
    assert response.status_code == status
    assert get_app(sim, "/web")["instances"] == 2
    assert len(get_app(sim, "/web")["tasks"]) == len(app["tasks"])


def test_malformed_task_id_message(sim):
    response = requests.post(sim.url + "/v2/tasks/delete?scale=true", json={"ids": ["x"]})
    assert response.json()["message"].startswith("Invalid task id 'x'.")


def test_kill_without_scale_relaunches(sim, clock):
    app = sim.add_app(simple_app("web", instances=2, health=False))
    victim = app["tasks"][0]["id"]
    response = requests.post(sim.url + "/v2/tasks/delete", json={"ids": [victim]})
    assert response.status_code == 200
    assert [task["id"] for task in response.json()["tasks"]] == [victim]
    after = get_app(sim, "/web")
    assert after["instances"] == 2
    assert victim not in [task["id"] for task in after["tasks"]]
    assert after["tasksStaged"] == 1 and after["tasksRunning"] == 1


def test_delete_app_vanishes_and_id_is_locked_until_stopped(sim, clock):
    app = sim.add_app(simple_app("web", instances=2, labels={"SIM_KILL_DELAY_S": "3"}))
    requests.put(sim.url + "/v2/apps/web", json={"instances": 3})    # a running deployment: DELETE ignores it
    response = requests.delete(sim.url + "/v2/apps/web")
    assert response.status_code == 200
    assert response.headers["Marathon-Deployment-Id"] == response.json()["deploymentId"]
    assert requests.get(sim.url + "/v2/apps/web").status_code == 404
    assert requests.get(sim.url + "/v2/apps").json() == {"apps": []}
    deployment, = requests.get(sim.url + "/v2/deployments").json()
    assert deployment["steps"] == [{"actions": [{"action": "StopApplication", "app": "/web"}]}]
    recreate = requests.post(sim.url + "/v2/apps", json=simple_app("web"))
    assert recreate.status_code == 409 and recreate.json()["deployments"] == [{"id": deployment["id"]}]
    clock.advance(3)
    assert requests.get(sim.url + "/v2/deployments").json() == []
    assert requests.post(sim.url + "/v2/apps", json=simple_app("web")).status_code == 201
    assert requests.delete(sim.url + "/v2/apps/nothing").status_code == 404
    assert app["id"] == "/web"


def test_delete_deployment(sim):
    sim.add_app(simple_app("web", instances=1))
    deployment_id = requests.put(sim.url + "/v2/apps/web", json={"instances": 3}).json()["deploymentId"]
    assert requests.delete(sim.url + "/v2/deployments/nope").json() == {"message": "DeploymentPlan nope does not exist"}
    response = requests.delete(sim.url + "/v2/deployments/" + deployment_id)
    assert response.status_code == 200 and response.json()["deploymentId"] != deployment_id
    assert get_app(sim, "/web")["instances"] == 1                 # rolled back
    rollback = requests.delete(sim.url + "/v2/deployments/" + response.json()["deploymentId"] + "?force=true")
    assert rollback.status_code in (202, 404)


def test_delete_deployment_force_202(sim):
    sim.add_app(simple_app("web", instances=1))
    deployment_id = requests.put(sim.url + "/v2/apps/web", json={"instances": 3}).json()["deploymentId"]
    response = requests.delete(sim.url + "/v2/deployments/%s?force=true" % deployment_id)
    assert response.status_code == 202 and response.content == b""
    assert get_app(sim, "/web")["instances"] == 3 and get_app(sim, "/web")["deployments"] == []


def test_embed_tasks_only_on_request(sim):
    sim.add_app(simple_app("web"))
    plain = requests.get(sim.url + "/v2/apps").json()["apps"][0]
    assert "tasks" not in plain
    assert {"tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments"} <= set(plain)
    embedded = requests.get(sim.url + "/v2/apps?embed=apps.tasks").json()["apps"]
    assert embedded == sim.api_apps() and len(embedded[0]["tasks"]) == 1
    assert sim.api_apps(embed_tasks=False) == [plain]


def test_list_filters(sim):
    sim.add_app(simple_app("web", labels={"tier": "fe"}))
    sim.add_app(simple_app("api", labels={"tier": "be"}, cmd="python server.py"))
    ids = lambda query: [app["id"] for app in requests.get(sim.url + "/v2/apps?" + query).json()["apps"]]
    assert ids("id=WE") == ["/web"]
    assert ids("cmd=SERVER") == ["/api"]
    assert ids("label=tier==be") == ["/api"]
    assert ids("label=tier!=be") == ["/web"]
    assert ids("label=tier in (fe,xx)") == ["/web"]


# ---- 1.4 and 1.5 shapes

def test_15_shape_of_a_bridge_app(sim):
    for fixture in ("1-nginx.json", "1-nginx-marathon1.5.json"):
        app = sim.add_app(dict(load_fixture(fixture), id="/" + fixture.replace(".", "-").lower()[:-5]))
        assert app["networks"] == [{"mode": "container/bridge"}]
        assert app["container"]["portMappings"][0]["containerPort"] == 8080
        assert "network" not in app["container"]["docker"] and "portMappings" not in app["container"]["docker"]
        for absent in ("ports", "portDefinitions", "ipAddress", "uris", "cmd", "args", "env", "constraints",
                       "user", "residency", "storeUrls"):
            assert absent not in app, absent
        assert app["labels"]["HAPROXY_DEPLOYMENT_GROUP"] == "nginx"
        assert app["killSelection"] == "YOUNGEST_FIRST" and "unreachableStrategy" in app
        assert app["healthChecks"][0]["delaySeconds"] == 15


def test_15_host_app_has_port_definitions_only(sim):
    app = sim.add_app(simple_app("web", ports=[0], portDefinitions=None))
    assert app["networks"] == [{"mode": "host"}]
    assert app["portDefinitions"] == [{"port": 10000, "protocol": "tcp", "labels": {}}]
    assert "ports" not in app and "container" not in app
    assert app["labels"] == {}


def test_14_shape_of_a_bridge_app(sim14):
    for fixture in ("1-nginx.json", "1-nginx-marathon1.5.json"):
        app = sim14.add_app(dict(load_fixture(fixture), id="/" + fixture.replace(".", "-").lower()[:-5]))
        assert app["container"]["docker"]["network"] == "BRIDGE"
        assert app["container"]["docker"]["portMappings"][0]["servicePort"] in (10000, 10001)
        assert "portMappings" not in app["container"] and "networks" not in app
        assert app["ports"] == [app["container"]["docker"]["portMappings"][0]["servicePort"]]
        assert app["portDefinitions"] == [{"port": app["ports"][0], "protocol": "tcp", "labels": {}}]
        for null in ("cmd", "args", "user", "ipAddress", "residency", "taskKillGracePeriodSeconds"):
            assert app[null] is None
        for empty in ("env", "constraints", "uris", "storeUrls", "dependencies", "secrets"):
            assert empty in app and not app[empty]


def test_14_host_app(sim14):
    app = sim14.add_app(simple_app("web", health=False))
    assert app["container"] is None and app["ports"] == [10000] and app["healthChecks"] == []
    assert app["portDefinitions"][0]["port"] == 10000


def test_14_ip_per_task_app(sim14):
    app = sim14.add_app({"id": "/ipt", "cmd": "x", "instances": 2,
                         "container": {"type": "DOCKER", "docker": {"image": "i", "network": "USER", "portMappings": [
                             {"containerPort": 8080, "servicePort": 0}]}},
                         "ipAddress": {"networkName": "dcos"}})
    assert app["ipAddress"] == {"groups": [], "labels": {}, "discovery": {"ports": []}, "networkName": "dcos"}
    for absent in ("ports", "portDefinitions", "requirePorts"):
        assert absent not in app
    for task in app["tasks"]:
        assert task["ports"] == []
        assert task["ipAddresses"][0]["ipAddress"].startswith("10.1.0.")
        assert task["ipAddresses"][0]["protocol"] == "IPv4"


def test_15_ip_per_task_app_from_14_input(sim):
    app = sim.add_app({"id": "/ipt", "cmd": "x",
                       "container": {"type": "DOCKER", "docker": {"image": "i", "network": "USER", "portMappings": [
                           {"containerPort": 8080}]}},
                       "ipAddress": {"networkName": "dcos"}})
    assert app["networks"] == [{"mode": "container", "name": "dcos"}]
    assert app["container"]["portMappings"][0]["containerPort"] == 8080
    assert "portDefinitions" not in app and "ipAddress" not in app
    assert app["tasks"][0]["ports"] == [] and app["tasks"][0]["ipAddresses"][0]["ipAddress"].startswith("10.1.0.")


@pytest.mark.parametrize("app, message", [
    ({"networks": [{"mode": "host"}], "ipAddress": {"networkName": "dcos"}}, "both networks and ipAddress"),
    ({"networks": [{"mode": "container/bridge"}],
      "container": {"type": "DOCKER", "docker": {"image": "i", "network": "BRIDGE"}}}, "container.docker.network"),
    ({"ports": [10000], "portDefinitions": [{"port": 10001}]}, "both ports and port definitions"),
])
def test_15_validation_422(sim, app, message):
    response = requests.post(sim.url + "/v2/apps", json=dict({"id": "/x", "cmd": "c"}, **app))
    assert response.status_code == 422
    assert message in response.json()["details"][0]["errors"][0]


def test_task_host_knob(clock):
    with MarathonSim(clock=clock, task_host="10.0.1.5") as sim:
        app = sim.add_app(simple_app("web"))
        assert app["tasks"][0]["host"] == "10.0.1.5"


# ---- control API and log

def test_request_log_and_writes(sim):
    sim.add_app(simple_app("web", instances=2))
    requests.get(sim.url + "/v2/apps?embed=apps.tasks")
    requests.put(sim.url + "/v2/apps/web?force=true", json={"instances": 1})
    requests.get(sim.url + "/v2/apps/ghost")
    assert [(r.method, r.path, r.status) for r in sim.requests] == [
        ("GET", "/v2/apps", 200), ("PUT", "/v2/apps/web", 200), ("GET", "/v2/apps/ghost", 404)]
    assert sim.requests[0].query == {"embed": "apps.tasks"}
    write, = sim.writes()
    assert (write.query, write.body) == ({"force": "true"}, {"instances": 1})
    sim.clear_log()
    assert sim.requests == []


def test_fail_next(sim):
    sim.add_app(simple_app("web"))
    sim.fail_next("PUT", r"^/v2/apps/web$", 503, count=2)
    for _ in range(2):
        response = requests.put(sim.url + "/v2/apps/web", json={"instances": 2})
        assert response.status_code == 503 and response.json() == {"message": "injected failure"}
    assert get_app(sim, "/web")["instances"] == 1          # a failed request changes nothing
    assert requests.put(sim.url + "/v2/apps/web", json={"instances": 2}).status_code == 200
    assert [r.status for r in sim.writes()] == [503, 503, 200]


def test_control_endpoints_over_http(sim):
    sim.add_app(simple_app("web"))
    control = requests.post(sim.url + "/_sim/fail_next",
                            json={"method": "GET", "path_regex": "^/v2/apps", "status": 500, "count": 1})
    assert control.status_code == 200
    assert requests.get(sim.url + "/v2/apps").status_code == 500
    assert requests.get(sim.url + "/v2/apps").status_code == 200
    logged = requests.get(sim.url + "/_sim/requests").json()
    assert [(entry["method"], entry["path"], entry["status"]) for entry in logged] == [
        ("GET", "/v2/apps", 500), ("GET", "/v2/apps", 200)]
    assert requests.post(sim.url + "/_sim/clear_log").status_code == 200
    assert sim.requests == []


def test_real_clock_background_ticks():
    clock = RealClock()
    with MarathonSim(clock=clock, launcher=RecordLauncher(clock)) as sim:
        app = simple_app("web", instances=2, labels={"SIM_START_DELAY_S": "0.2"})
        app["healthChecks"][0]["intervalSeconds"] = 0.2
        requests.post(sim.url + "/v2/apps", json=app)
        deadline = time.monotonic() + 5
        while sim.deployments() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.deployments() == []
        assert sim.app("/web")["tasksHealthy"] == 2
