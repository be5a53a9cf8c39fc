"""marathon-lb's view of Marathon's apps (tests/sandbox/mlb.py), as tables."""

import copy

import pytest

from tests.sandbox import mlb
from tests.sandbox.world import load_fixture

HOSTS = {"10.0.6.25": "10.0.6.25", "10.0.1.147": "10.0.1.147", "10.0.2.148": "10.0.2.148",
         "agent-1.local": "10.0.0.9"}
resolve = HOSTS.get


def names(service):
    return sorted(server.name for server in service.servers)


def draining(service):
    return sorted(server.name for server in service.servers if server.draining)


def test_zdd_apps_fixture_merges_the_group_and_drains_one_old_task():
    services = mlb.services_from_apps(load_fixture("zdd_apps.json")["apps"], resolve)
    assert [service.name for service in services] == ["nginx_10000"]
    service = services[0]
    assert service.port == 10000
    assert names(service) == ["10_0_1_147_25724", "10_0_6_25_16916", "10_0_6_25_23336", "10_0_6_25_31184"]
    # old = green (earlier STARTED_AT); target 3, 1 healthy new, 3 old: drain min(3, 1, 1) = 1,
    # the first old task by id (nginx-green.0dbabba6..., port 31184).
    assert draining(service) == ["10_0_6_25_31184"]
    by_name = {server.name: server for server in service.servers}
    assert by_name["10_0_1_147_25724"].app_id == "/nginx-blue"
    assert by_name["10_0_6_25_31184"].task_id == "nginx-green.0dbabba6-c931-11e5-9836-026ee08d9f6f"


@pytest.mark.parametrize("fixture, ports", [
    ("zdd_app_blue.json", ["10_0_6_25_16916", "10_0_6_25_23336", "10_0_6_25_31184"]),
    ("zdd_app_blue_marathon1.5.json", ["10_0_6_25_16916", "10_0_6_25_23336", "10_0_6_25_31184"]),
    ("marathon15_apps.json", ["10_0_2_148_1565"]),
])
def test_single_app_fixtures(fixture, ports):
    services = mlb.services_from_apps(load_fixture(fixture)["apps"], resolve)
    assert len(services) == 1
    assert names(services[0]) == ports
    assert draining(services[0]) == []


def test_service_port_and_mode_of_an_app_without_group():
    service, = mlb.services_from_apps(load_fixture("marathon15_apps.json")["apps"], resolve)
    # pywebserver: container.portMappings servicePort 10101, no health checks, a VHOST label.
    assert (service.name, service.port, service.mode, service.checked) == ("pywebserver_10101", 10101, "http", False)


def _app(app_id, tasks, instances=None, labels=None, health=True, shape="portDefinitions", port=10000,
         scaled="2026-01-01T12:00:00.000Z"):
    app = {"id": app_id, "instances": len(tasks) if instances is None else instances, "labels": labels or {},
           "versionInfo": {"lastScalingAt": scaled, "lastConfigChangeAt": scaled}, "tasks": tasks}
    if health:
        app["healthChecks"] = [{"protocol": "HTTP", "path": "/"}]
    if shape == "portDefinitions":
        app["portDefinitions"] = [{"port": port}]
    elif shape == "ports":
        app["ports"] = [port]
    elif shape == "docker":
        mappings = [{"containerPort": 80, "servicePort": port}]
        app["container"] = {"docker": {"network": "BRIDGE", "portMappings": mappings}}
    elif shape == "mappings":
        app["container"] = {"portMappings": [{"containerPort": 80, "servicePort": port}]}
        app["networks"] = [{"mode": "container/bridge"}]
    elif shape == "ip14":
        mappings = [{"containerPort": 8080, "servicePort": port}]
        app["container"] = {"docker": {"network": "USER", "portMappings": mappings}}
        app["ipAddress"] = {"networkName": "dcos"}
    elif shape == "ip15":
        app["container"] = {"portMappings": [{"containerPort": 8080, "servicePort": port}]}
        app["networks"] = [{"mode": "container", "name": "dcos"}]
    return app


def _task(task_id, port, host="10.0.6.25", state="TASK_RUNNING", alive=True, ip=None, app_id=None):
    task = {"id": task_id, "host": host, "ports": [port] if port else [], "appId": app_id or "/x"}
    if state is not None:
        task["state"] = state
    if alive is not None:
        task["healthCheckResults"] = [{"alive": alive}]
    if ip:
        task["ipAddresses"] = [{"ipAddress": ip, "protocol": "IPv4"}]
    return task


@pytest.mark.parametrize("shape", ["portDefinitions", "ports", "docker", "mappings"])
def test_service_port_from_every_shape(shape):
    service, = mlb.services_from_apps([_app("/web", [_task("web.1", 31000)], shape=shape, port=10555)], resolve)
    assert (service.name, service.port) == ("web_10555", 10555)
    assert names(service) == ["10_0_6_25_31000"]


@pytest.mark.parametrize("task, routed", [
    (_task("a.1", 31000), True),
    (_task("a.1", 31000, state=None), True),             # no state: counted as running
    (_task("a.1", 31000, state="TASK_STAGING"), False),
    (_task("a.1", 31000, state="TASK_STARTING"), False),
    (_task("a.1", 31000, state="TASK_KILLING"), False),
    (_task("a.1", 31000, state="TASK_UNREACHABLE"), False),
    (_task("a.1", 31000, alive=None), False),            # health checks but no result yet
    (_task("a.1", 31000, alive=False), False),
    (_task("a.1", 31000, host="unknown-host.invalid"), False),   # unresolvable: left out
    (_task("a.1", None), False),                         # no host port
])
def test_which_tasks_are_routed(task, routed):
    service, = mlb.services_from_apps([_app("/a", [task])], resolve)
    assert len(service.servers) == (1 if routed else 0)


def test_without_health_checks_running_tasks_are_routed_without_results():
    service, = mlb.services_from_apps([_app("/a", [_task("a.1", 31000, alive=None)], health=False)], resolve)
    assert names(service) == ["10_0_6_25_31000"]
    assert service.checked is False


def test_any_alive_result_routes_a_task_and_the_last_result_is_remembered():
    task = _task("a.1", 31000)
    task["healthCheckResults"] = [{"alive": False}, {"alive": True}]
    memory = {}
    service, = mlb.services_from_apps([_app("/a", [task])], resolve, last_alive=memory)
    assert len(service.servers) == 1 and memory == {"a.1": True}
    del task["healthCheckResults"]
    service, = mlb.services_from_apps([_app("/a", [task])], resolve, last_alive=memory)
    assert len(service.servers) == 1
    service, = mlb.services_from_apps([_app("/a", [task])], resolve)
    assert len(service.servers) == 0


@pytest.mark.parametrize("host, ip, port, name", [
    ("10.0.6.25", "10.0.6.25", 31000, "10_0_6_25_31000"),
    ("agent-1.local", "10.0.0.9", 31000, "agent-1_local_10_0_0_9_31000"),
    ("10.0.6.25", "10.1.0.7", 8080, "10_0_6_25_10_1_0_7_8080"),
    ("::1", "::1", 80, "__1_80"),
])
def test_server_names(host, ip, port, name):
    assert mlb.server_name(host, ip, port) == name


def test_host_name_that_resolves_gets_the_long_name():
    service, = mlb.services_from_apps([_app("/a", [_task("a.1", 31000, host="agent-1.local")])], resolve)
    assert names(service) == ["agent-1_local_10_0_0_9_31000"]
    assert service.servers[0].ip == "10.0.0.9"


@pytest.mark.parametrize("shape", ["ip14", "ip15"])
def test_ip_per_task_uses_the_task_ip_and_the_container_port(shape):
    tasks = [_task("a.1", None, ip="10.1.0.7"), _task("a.2", None, ip=None)]
    service, = mlb.services_from_apps([_app("/a", tasks, shape=shape)], resolve)
    assert names(service) == ["10_0_6_25_10_1_0_7_8080"]     # a.2 has no IP: left out
    assert (service.servers[0].ip, service.servers[0].port) == ("10.1.0.7", 8080)


def test_bridge_tasks_with_ip_addresses_are_not_ip_per_task():
    tasks = [_task("a.1", 31000, ip="172.17.0.2")]
    service, = mlb.services_from_apps([_app("/a", tasks, shape="mappings")], resolve)
    assert names(service) == ["10_0_6_25_31000"]


def test_nested_group_name_is_sanitised():
    app = _app("/prod/web-blue", [_task("prod_web-blue.1", 31000)],
               labels={"HAPROXY_DEPLOYMENT_GROUP": "prod/web", "HAPROXY_0_PORT": "10080"})
    service, = mlb.services_from_apps([app], resolve)
    assert service.name == "prod_web_10080"


def _pair(old_tasks, new_tasks, old_instances, new_instances, target, new_instances_label=None,
          old_scaled="2026-01-01T12:00:01.000Z", new_scaled="2026-01-01T12:00:02.000Z",
          old_started="2026-01-01T11:00:00", new_started="2026-01-01T12:00:00", health=True):
    labels = {"HAPROXY_DEPLOYMENT_GROUP": "nginx", "HAPROXY_0_PORT": "10000"}
    old = _app("/nginx-blue", old_tasks, instances=old_instances, health=health, port=10000, scaled=old_scaled,
               labels=dict(labels, HAPROXY_DEPLOYMENT_STARTED_AT=old_started,
                           HAPROXY_DEPLOYMENT_TARGET_INSTANCES=str(target)))
    new_labels = dict(labels, HAPROXY_DEPLOYMENT_TARGET_INSTANCES=str(target))
    if new_started is not None:
        new_labels["HAPROXY_DEPLOYMENT_STARTED_AT"] = new_started
    if new_instances_label is not None:
        new_labels["HAPROXY_DEPLOYMENT_NEW_INSTANCES"] = str(new_instances_label)
    new = _app("/nginx-green", new_tasks, instances=new_instances, health=health, port=10001, scaled=new_scaled,
               labels=new_labels)
    return old, new


def _olds(count):
    return [_task("nginx-blue.%d" % index, 31000 + index, app_id="/nginx-blue") for index in range(count)]


def _news(count, alive=True):
    return [_task("nginx-green.%d" % index, 32000 + index, app_id="/nginx-green", alive=alive)
            for index in range(count)]


@pytest.mark.parametrize("old_n, old_instances, new_n, new_instances, target, new_alive, drained", [
    (3, 3, 1, 1, 3, True, 1),      # 1 healthy new: drain 1
    (3, 3, 2, 2, 3, True, 2),
    (3, 3, 3, 3, 3, True, 3),
    (2, 2, 2, 2, 3, True, 1),      # after one kill: old 2 + new 2 - target 3 = 1
    (3, 3, 1, 1, 3, False, 0),     # new not healthy: nothing drains
    (3, 3, 0, 1, 3, True, 0),      # new task not there yet
    (10, 10, 5, 5, 10, True, 5),
    (1, 1, 3, 3, 3, True, 1),
    (3, 3, 2, 2, 5, True, 0),      # 2 + 3 - 5 = 0
])
def test_draining_counts(old_n, old_instances, new_n, new_instances, target, new_alive, drained):
    old, new = _pair(_olds(old_n), _news(new_n, new_alive), old_instances, new_instances, target)
    for apps in ([old, new], [new, old]):                 # the list order does not matter
        service, = mlb.services_from_apps(copy.deepcopy(apps), resolve)
        assert service.name == "nginx_10000" and service.port == 10000
        assert draining(service) == sorted("10_0_6_25_%d" % (31000 + i) for i in range(drained))


def test_draining_without_health_checks_counts_new_instances():
    old, new = _pair(_olds(3), _news(1, alive=None), 3, 2, 3, health=False)
    service, = mlb.services_from_apps([old, new], resolve)
    assert len(draining(service)) == 2        # healthy_new = new.instances = 2


def test_old_tasks_drain_in_task_id_order():
    olds = [_task("nginx-blue.%s" % suffix, port, app_id="/nginx-blue")
            for suffix, port in (("c", 31003), ("a", 31001), ("b", 31002))]
    old, new = _pair(olds, _news(2), 3, 2, 3)
    service, = mlb.services_from_apps([old, new], resolve)
    assert draining(service) == ["10_0_6_25_31001", "10_0_6_25_31002"]


def test_missing_started_at_is_the_oldest():
    old, new = _pair(_olds(3), _news(1), 3, 1, 3, new_started=None)
    # green now lacks STARTED_AT, so green is "old": blue's tasks are new and green's drain.
    service, = mlb.services_from_apps([old, new], resolve)
    assert service.port == 10000
    assert draining(service) == ["10_0_6_25_32000"]


def test_started_at_is_compared_as_a_date_not_a_string():
    old, new = _pair(_olds(3), _news(1), 3, 1, 3, old_started="2026-01-01T09:00:00",
                     new_started="2026-01-01T10:00:00.5")
    service, = mlb.services_from_apps([new, old], resolve)
    assert draining(service) == ["10_0_6_25_31000"]


@pytest.mark.parametrize("old_scaled, new_scaled, swapped", [
    ("2026-01-01T12:00:01.000Z", "2026-01-01T12:00:02.000Z", False),
    ("2026-01-01T12:00:03.000Z", "2026-01-01T12:00:02.000Z", True),
])
def test_last_scaling_swap_with_new_instances_label(old_scaled, new_scaled, swapped):
    old, new = _pair(_olds(2), _news(2), 2, 2, 3, new_instances_label=0, old_scaled=old_scaled,
                     new_scaled=new_scaled)
    service, = mlb.services_from_apps([old, new], resolve)
    if swapped:
        # blue counts as new: green's tasks drain, and the merged service is green's definition.
        assert draining(service) == ["10_0_6_25_32000"]
    else:
        assert draining(service) == ["10_0_6_25_31000"]
    assert service.port == 10000      # HAPROXY_0_PORT is the same on both colours


def test_no_swap_without_new_instances_label():
    old, new = _pair(_olds(2), _news(2), 2, 2, 3, old_scaled="2026-01-01T12:00:09.000Z")
    service, = mlb.services_from_apps([old, new], resolve)
    assert draining(service) == ["10_0_6_25_31000"]


def test_merged_service_takes_the_old_apps_definition():
    old, new = _pair(_olds(1), _news(1), 1, 1, 1)
    del old["labels"]["HAPROXY_0_PORT"]
    del new["labels"]["HAPROXY_0_PORT"]
    service, = mlb.services_from_apps([new, old], resolve)
    assert service.port == 10000 and service.name == "nginx_10000"
    assert sorted(server.app_id for server in service.servers) == ["/nginx-blue", "/nginx-green"]


def test_draining_old_task_that_is_not_running_is_not_shown():
    olds = _olds(3)
    olds[0]["state"] = "TASK_KILLING"
    old, new = _pair(olds, _news(2), 3, 2, 3)
    service, = mlb.services_from_apps([old, new], resolve)
    # drain count 2 goes to the first two by id; the first is killing, so only one MAINT row shows.
    assert draining(service) == ["10_0_6_25_31001"]
    assert len(service.servers) == 4


def test_resolve_host_keeps_ip_literals():
    assert mlb.resolve_host("127.0.0.1") == "127.0.0.1"
    assert mlb.resolve_host("10.0.6.25") == "10.0.6.25"
