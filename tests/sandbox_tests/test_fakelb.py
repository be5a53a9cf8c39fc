"""The fake marathon-lb stats endpoint, and a manual blue->green swap seen through it."""

import csv

import pytest
import requests

from tests.helpers import seed_blue
from tests.sandbox.fakelb import HAPROXY26_HEADER, FakeMarathonLB
from tests.sandbox.marathon import READ_ONLY_FIELDS
from tests.sandbox.world import FIXTURES_DIR

GROUP_LABELS = {"HAPROXY_DEPLOYMENT_GROUP": "nginx", "HAPROXY_0_PORT": "10000", "HAPROXY_APP_ID": "nginx",
                "HAPROXY_DEPLOYMENT_TARGET_INSTANCES": "3"}


def stats(lb):
    response = requests.get(lb.url + "/haproxy?stats;csv")
    assert response.status_code == 200
    return response.text


def rows(text):
    lines = text.splitlines()
    header = lines[0][2:].split(",")
    return [dict(zip(header, row)) for row in csv.reader(lines[1:]) if row]


def listeners(lb, backend="nginx_10000"):
    """svname -> (status, scur, qcur) of a backend's server rows."""
    return {row["svname"]: (row["status"], int(row["scur"]), int(row["qcur"])) for row in rows(stats(lb))
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")}


def test_header_is_haproxy_26_verbatim():
    captured = (FIXTURES_DIR / "haproxy26_stats.csv").read_text().splitlines()[0]
    assert HAPROXY26_HEADER == captured
    columns = captured[2:].split(",")
    assert columns[-1] == "" and len(columns) - 1 == 128 and "-" in columns


def test_stats_page_shape(world):
    blue = seed_blue(world, 3, labels=GROUP_LABELS)
    text = stats(world.lb)
    lines = text.splitlines()
    assert lines[0] == HAPROXY26_HEADER
    assert all(line.endswith(",") for line in lines)
    assert all(len(line.split(",")) == 129 for line in lines)
    table = [(row["pxname"], row["svname"], row["status"]) for row in rows(text)]
    servers = sorted("127_0_0_1_%d" % task["ports"][0] for task in blue["tasks"])
    assert table == ([("stats", "FRONTEND", "OPEN"), ("stats", "BACKEND", "UP"), ("nginx_10000", "FRONTEND", "OPEN")]
                     + [("nginx_10000", name, "UP") for name in servers] + [("nginx_10000", "BACKEND", "UP")])
    for row in rows(text):
        if row["pxname"] == "nginx_10000" and row["svname"] not in ("FRONTEND", "BACKEND"):
            assert (row["scur"], row["qcur"], row["type"], row["-"]) == ("0", "0", "2", "-")


def test_getpids_and_reloading(world):
    assert requests.get(world.lb.url + "/_haproxy_getpids").text.split() == ["4001", "4002"]
    world.lb.extra_pids = [4003]
    assert len(requests.get(world.lb.url + "/_haproxy_getpids").text.split()) == 3


def test_unknown_path_404(world):
    assert requests.get(world.lb.url + "/haproxy?stats").status_code == 404
    assert requests.get(world.lb.url + "/nothing").status_code == 404


def test_staging_and_unhealthy_tasks_are_not_listed(world):
    seed_blue(world, 3, labels=GROUP_LABELS)
    requests.post(world.sim.url + "/v2/apps", json={"id": "/solo", "cmd": "x", "instances": 1,
                                                    "healthChecks": [{"protocol": "HTTP", "intervalSeconds": 1}]})
    assert listeners(world.lb, "solo_10001") == {}
    world.clock.advance(1)
    assert listeners(world.lb, "solo_10001") == {}          # running, no result yet
    world.clock.advance(1)
    assert list(listeners(world.lb, "solo_10001").values()) == [("UP", 0, 0)]


def test_app_without_health_checks_shows_no_check(world):
    world.seed_app({"id": "/plain", "cmd": "x", "instances": 2})
    assert [status for status, _, _ in listeners(world.lb, "plain_10000").values()] == ["no check", "no check"]


def test_manual_blue_green_swap_draining_counts(world):
    """Drive the swap zdd does by hand and watch marathon-lb's view after each write."""
    sim, lb, clock = world.sim, world.lb, world.clock
    blue = seed_blue(world, 3, labels=GROUP_LABELS)
    blue_ids = sorted(task["id"] for task in blue["tasks"])
    name_of = {task["id"]: "127_0_0_1_%d" % task["ports"][0] for task in blue["tasks"]}
    green = dict(sim.app("/nginx-blue"), id="/nginx-green", instances=1)
    for field in READ_ONLY_FIELDS:  # a GET answer's: Marathon refuses them in a POST
        green.pop(field, None)
    green["container"]["portMappings"][0]["servicePort"] = 10001
    green["labels"] = dict(GROUP_LABELS, HAPROXY_DEPLOYMENT_COLOUR="green",
                           HAPROXY_DEPLOYMENT_STARTED_AT="2026-01-01T12:00:00", HAPROXY_DEPLOYMENT_NEW_INSTANCES="0")
    assert requests.post(sim.url + "/v2/apps", json=green).status_code == 201

    def view():
        status = listeners(lb)
        maint = sorted(name for name, (state, _, _) in status.items() if state == "MAINT")
        return len(status), maint

    assert view() == (3, [])                        # green staging: not listed, nothing drains
    clock.advance(1)
    assert view() == (3, [])                        # green running, no health result yet
    clock.advance(3)                                # fixture intervalSeconds 3: first check, healthy
    assert view() == (4, [name_of[blue_ids[0]]])    # 1 healthy new + 3 old - 3 = 1 drains, first by id

    def kill_and_scale(task_ids, green_instances):
        response = requests.post(sim.url + "/v2/tasks/delete?scale=true", json={"ids": task_ids})
        assert response.status_code == 200
        assert requests.put(sim.url + "/v2/apps/nginx-green", json={"instances": green_instances}).status_code == 200

    kill_and_scale([blue_ids[0]], 2)
    assert view() == (3, [])                        # killed one gone; new green staging
    clock.advance(4)
    assert view() == (4, [name_of[blue_ids[1]]])    # 2 healthy + 2 old - 3 = 1
    kill_and_scale([blue_ids[1]], 3)
    clock.advance(4)
    assert view() == (4, [name_of[blue_ids[2]]])    # 3 healthy + 1 old - 3 = 1
    assert requests.delete(sim.url + "/v2/apps/nginx-blue").status_code == 200
    count, maint = view()
    assert (count, maint) == (3, [])
    assert all(state == "UP" for state, _, _ in listeners(lb).values())
    assert [(w.method, w.path) for w in sim.writes()] == [
        ("POST", "/v2/apps"), ("POST", "/v2/tasks/delete"), ("PUT", "/v2/apps/nginx-green"),
        ("POST", "/v2/tasks/delete"), ("PUT", "/v2/apps/nginx-green"), ("DELETE", "/v2/apps/nginx-blue")]


def test_held_sessions_keep_a_maint_server_undrained(world):
    blue = seed_blue(world, 3, labels=GROUP_LABELS)
    name = "127_0_0_1_%d" % blue["tasks"][0]["ports"][0]
    world.lb.hold_sessions(name, scur=2, qcur=1)
    assert listeners(world.lb)[name] == ("UP", 2, 1)
    world.lb.release_sessions()
    assert listeners(world.lb)[name] == ("UP", 0, 0)


def test_lag_serves_an_old_view(world):
    world.lb.lag = 2
    assert listeners(world.lb) == {}
    seed_blue(world, 3, labels=GROUP_LABELS)
    assert listeners(world.lb) == {}                 # polls 2 and 3 still show poll 1's empty view
    assert listeners(world.lb) == {}
    assert len(listeners(world.lb)) == 3
    world.lb.lag = 0
    assert len(listeners(world.lb)) == 3


@pytest.mark.parametrize("failure, status", [("500", 500), ("garbage", 200)])
def test_failures(world, failure, status):
    world.lb.stats_failure = failure
    world.lb.pids_failure = failure
    response = requests.get(world.lb.url + "/haproxy?stats;csv")
    assert response.status_code == status and not response.text.startswith("# pxname")
    response = requests.get(world.lb.url + "/_haproxy_getpids")
    assert response.status_code == status and not response.text.strip().isdigit()


def test_down_refuses_connections_and_up_comes_back(world):
    url = world.lb.url
    world.lb.down()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_haproxy_getpids", timeout=2)
    world.lb.up()
    assert world.lb.url == url
    assert requests.get(url + "/_haproxy_getpids", timeout=2).status_code == 200


def test_ipv6_listener(world):
    with FakeMarathonLB(world.sim, host="::1") as lb:
        assert lb.url.startswith("http://[::1]:")
        assert requests.get(lb.url + "/_haproxy_getpids", timeout=2).text.split() == ["4001", "4002"]


def test_world_argv(world):
    assert world.argv("-j", "app.json", "-f") == ["-m", world.sim.url, "-l", world.lb.url, "-j", "app.json", "-f"]


def test_reload_on_stats(world):
    pids = world.lb.url + "/_haproxy_getpids"
    world.lb.reload_on_stats(1.0, times=1)
    assert len(requests.get(pids).text.split()) == 2
    requests.get(world.lb.url + "/haproxy?stats;csv")
    assert len(requests.get(pids).text.split()) == 3
    world.clock.advance(1.0)
    assert len(requests.get(pids).text.split()) == 2
    requests.get(world.lb.url + "/haproxy?stats;csv")  # times=1: no second reload
    assert len(requests.get(pids).text.split()) == 2 and world.lb.reloads_started == 1
