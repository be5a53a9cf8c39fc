"""The Marathon simulator's one fault list: answers, errors, delays, drops, down, in process and over /_sim/."""

import time

import pytest
import requests

from tests.sandbox.marathon import Dropped, MarathonSim

ZDD = {"User-Agent": "zdd/1.0.0"}


@pytest.fixture
def sim():
    with MarathonSim() as simulator:
        yield simulator


def statuses(sim, count, headers=None):
    return [requests.get(sim.url + "/v2/apps", headers=headers, timeout=5).status_code for _ in range(count)]


def test_error_rate_is_spread_evenly_and_matches_the_client(sim):
    sim.inject("error", rate=0.2, status=(500, 503), client_regex="^zdd/")
    assert statuses(sim, 10, ZDD) == [200, 200, 200, 200, 500, 200, 200, 200, 200, 503]
    assert statuses(sim, 5) == [200] * 5  # another client is not matched
    assert sim.faults_injected["error"] == 2
    assert sim.writes() == [] and all(record.status == 200 for record in sim.requests)


def test_error_rate_with_a_seed_is_random_but_repeatable(sim):
    sim.inject("error", rate=0.5, seed=7)
    first = statuses(sim, 20)
    sim.clear_faults()
    sim.inject("error", rate=0.5, seed=7)
    assert statuses(sim, 20) == first
    assert 0 < first.count(200) < 20


def test_a_burst_ends_after_count(sim):
    sim.inject("error", count=3, status=(500, 503, 502), method="GET")
    assert statuses(sim, 5) == [500, 503, 502, 200, 200]


def test_method_is_a_regex(sim):
    sim.inject("error", method="POST|PUT|DELETE", status=503)
    assert statuses(sim, 2) == [200, 200]
    assert requests.delete(sim.url + "/v2/apps/a", timeout=5).status_code == 503


def test_a_delayed_write_is_done_though_the_client_gave_up(sim):
    sim.inject("delay", delay_s=1.0, count=1, method="POST")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(sim.url + "/v2/apps", json={"id": "/a", "cmd": "sleep 1", "instances": 0}, timeout=0.3)
    assert sim.app("/a") is not None


def test_a_window_of_delays_ends(sim):
    sim.inject("delay", delay_s=0.5, for_s=0.3)
    started = time.monotonic()
    assert statuses(sim, 1) == [200]
    assert time.monotonic() - started >= 0.5
    time.sleep(0.3)
    started = time.monotonic()
    assert statuses(sim, 1) == [200]
    assert time.monotonic() - started < 0.5


def test_a_dropped_request_gets_no_answer_and_is_not_served(sim):
    sim.inject("drop", count=1, method="POST")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(sim.url + "/v2/apps", json={"id": "/a", "cmd": "sleep 1", "instances": 0}, timeout=5)
    assert sim.app("/a") is None
    assert sim.faults_injected["drop"] == 1


def test_down_refuses_connections_and_comes_up_on_the_same_port(sim):
    url = sim.url
    sim.go_down()
    with pytest.raises(requests.exceptions.ConnectionError, match="refused"):
        requests.get(url + "/v2/apps", timeout=5)
    sim.come_up()
    assert sim.url == url and statuses(sim, 1) == [200]


def test_the_http_control_api(sim):
    assert requests.post(sim.url + "/_sim/faults", json={"kind": "error", "count": 2, "status": 503}).ok
    assert statuses(sim, 3) == [503, 503, 200]
    assert requests.get(sim.url + "/_sim/faults").json()["error"] == 2
    requests.post(sim.url + "/_sim/faults", json={"kind": "drop", "rate": 1.0})
    assert requests.delete(sim.url + "/_sim/faults").ok
    assert statuses(sim, 1) == [200]
    assert requests.post(sim.url + "/_sim/down", json={"for_s": 0.5}).ok
    time.sleep(0.2)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(sim.url + "/v2/apps", timeout=5)
    time.sleep(0.6)
    assert statuses(sim, 1) == [200]


def test_fail_next_and_inject_are_one_list_the_first_added_decides(sim):
    sim.fail_next("GET", r"^/v2/apps$", 418)
    sim.inject("error", count=1, method="GET", status=503)
    assert statuses(sim, 3) == [418, 503, 200]
    assert [record.status for record in sim.requests] == [418, 200]  # an answer is logged, an error is not
    assert sim.faults_injected["answer"] == 1 and sim.faults_injected["error"] == 1


def test_one_clear_removes_fail_next_faults_too(sim):
    sim.fail_next("GET", r"^/v2/apps$", 500, count=5)
    assert statuses(sim, 1) == [500]
    sim.clear_faults()
    assert statuses(sim, 1) == [200]


def test_an_answer_fault_over_http_with_its_body(sim):
    lock = {"message": "App is locked", "deployments": [{"id": "d1"}]}
    assert requests.post(sim.url + "/_sim/faults",
                         json={"kind": "answer", "method": "PUT", "status": 409, "count": 1, "body": lock}).ok
    response = requests.put(sim.url + "/v2/apps/a", json={"instances": 1}, timeout=5)
    assert (response.status_code, response.json()) == (409, lock)
    assert [(record.method, record.status) for record in sim.writes()] == [("PUT", 409)]
    assert sim.app("/a") is None


def test_handle_called_directly_suffers_the_same_faults(sim):
    sim.inject("error", count=1, status=502, client_regex="^zdd/")
    sim.inject("drop", count=1, method="DELETE")
    assert sim.handle("GET", "/v2/apps", {}, {}, b"")[0] == 200  # not zdd's User-Agent
    assert sim.handle("GET", "/v2/apps", {}, ZDD, b"")[:2] == (502, {"message": "injected fault: HTTP 502"})
    with pytest.raises(Dropped):
        sim.handle("DELETE", "/v2/apps/a", {}, ZDD, b"")
    assert [(record.method, record.status) for record in sim.requests] == [("GET", 200)]


def test_garble_edits_a_real_answer_over_http(sim):
    """A "garble" fault, added over /_sim/faults: the answer is the real one, changed; the request is served."""
    sim.add_app({"id": "/a", "cmd": "sleep 1", "instances": 1})
    edits = [{"path": "apps.0.instances", "set": "1"}, {"path": "apps.*.labels", "drop": True},
             {"path": "apps.0.nothing.here", "set": 1}]
    requests.post(sim.url + "/_sim/faults", json={"kind": "garble", "count": 1, "garble": edits}, timeout=5)
    garbled = requests.get(sim.url + "/v2/apps", timeout=5).json()["apps"][0]
    assert garbled["instances"] == "1" and "labels" not in garbled and "nothing" not in garbled
    assert requests.get(sim.url + "/v2/apps", timeout=5).json()["apps"][0]["instances"] == 1
    assert requests.get(sim.url + "/_sim/faults", timeout=5).json()["garble"] == 1
    assert [record.status for record in sim.requests] == [200, 200]
