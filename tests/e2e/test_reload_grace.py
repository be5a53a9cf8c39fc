"""The default reload check end to end: marathon-lb as shipped (its head, threads per CPU, a forking getpids).

For an HTTP backend zdd reads no ``/_haproxy_getpids`` and waits
--reload-grace after each marathon-lb change before a kill
(docs/behaviour.rst, 'Old HAProxy workers'). Under load, with every request
still in flight in the old HAProxy worker at each draining reload (the tasks
answer a second late and stop 0.1 s after SIGTERM), and with marathon-lb reloading again and again while
zdd waits, no request may fail.
"""

import socket
import threading
import time

import pytest

import zdd
from tests.sandbox.haproxy import Service
from tests.sandbox.ports import free_port
from tests.sandbox.soak import run_soak, summary
from tests.sandbox_tests.test_haproxy import launch

pytestmark = pytest.mark.e2e

MARATHON_LB_AS_SHIPPED = dict(getpids="popen", head="marathon-lb")


# --------------------------------------------------------------------------- the facts the grace rests on


def test_the_stats_page_shows_the_age_of_its_worker_and_the_mode(sandbox):
    """The BACKEND rows' lastchg is the serving worker's age: it restarts at a reload, the server-state file
    notwithstanding (a server's own lastchg is carried over, so it does not say when it went MAINT)."""
    lb = sandbox.haproxy(head="marathon-lb")
    port = free_port()
    blue = launch(sandbox, "blue", 2)
    lb.start(lb.render([Service("web_%d" % port, port, blue)]))
    time.sleep(2.2)
    assert zdd.parse_worker_age(lb.stats_csv()) >= 2
    blue[1].draining = True
    assert lb.reload(lb.render([Service("web_%d" % port, port, blue)]))
    text = lb.stats_csv()
    assert zdd.parse_worker_age(text) <= 1
    listeners = {listener.svname: listener for listener in zdd.parse_stats(text, "web_%d" % port)}
    assert listeners[blue[1].name].maint and {listener.mode for listener in listeners.values()} == {"http"}


def test_an_old_worker_routes_a_request_begun_before_the_reload(sandbox):
    """A request whose headers were still arriving at the reload goes, a second later, to the server the new
    configuration disabled: the old worker routes it with its own configuration (what the grace waits for)."""
    lb = sandbox.haproxy(head="marathon-lb")
    port = free_port()
    blue, green = launch(sandbox, "blue", 1), launch(sandbox, "green", 1)
    lb.start(lb.render([Service("web_%d" % port, port, blue)]))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: sandbox\r\n")
        time.sleep(0.3)
        blue[0].draining = True
        assert lb.reload(lb.render([Service("web_%d" % port, port, blue + green)]))
        time.sleep(1.0)
        client.sendall(b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = client.recv(4096)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b"x-colour: blue" in answer.lower(), answer


def test_two_deployments_fork_nothing_and_lose_nothing(cluster_factory):
    """Twice back and forth (3 instances: what a deployment reads from marathon-lb, its reloads and its drains
    are the same as with the soak's 10, in fewer steps)."""
    cluster = cluster_factory(lbs=2, reload_grace_s=None, **MARATHON_LB_AS_SHIPPED)
    result = run_soak(cluster, 2, echo=print, instances=3)
    print(summary(result))
    assert [row.exit_code for row in result.deployments] == [0, 0], result.deployments[-1].stderr
    assert [row.getpids for row in result.deployments] == [0, 0]
    assert result.failed == 0, summary(result)


def test_requests_in_flight_in_the_old_worker_are_waited_for(cluster_factory):
    """Every answer takes 1 s and a killed task stops 0.1 s after SIGTERM: at each draining reload the old
    worker has requests in flight to the tasks marathon-lb drains, which the new worker's stats cannot show.
    The grace (2 s) outlasts them. (With --reload-grace 0 the same deployment lost 1 to 6 requests, 502.)"""
    cluster = cluster_factory(lbs=1, reload_grace_s=None, **MARATHON_LB_AS_SHIPPED)
    slow = dict(SIM_SLOW_MS=1000, SIM_KILL_GRACE_S=0.1)  # Marathon's own field is whole seconds
    cluster.seed_first(3, **slow)
    path = cluster.write_app(cluster.app(3, **slow))
    load = cluster.load(keepalive_clients=6, fresh_clients=6)
    with load:
        time.sleep(2.0)
        result = cluster.zdd(path)
        time.sleep(2.0)
    assert result.returncode == 0, result.stderr
    counts = load.counts()
    assert counts["requests"] > 50, load.summary()
    assert counts["failed"] == 0, load.summary()
    assert cluster.apps() == {"/web-green": (3, 3)}


def test_reloads_while_zdd_waits_hold_the_kill_back_and_lose_nothing(cluster_factory):
    """A busy marathon-lb: another service changes every 0.7 s for the first 12 s of the deployment, so
    every stats read may come from a new worker. zdd waits; once the reloads stop it finishes."""
    cluster = cluster_factory(lbs=1, reload_grace_s=None, **MARATHON_LB_AS_SHIPPED)
    cluster.seed_first(3)
    lb = cluster.lbs[0]
    path = cluster.write_app(cluster.app(3))
    stop = threading.Event()
    extra_reloads = []

    def busy():
        port, end = free_port(), time.monotonic() + 12
        while not stop.wait(0.7) and time.monotonic() < end:
            before = lb.reloads
            lb.extra_services = [Service("busy_%d" % port, port, [])] if not lb.extra_services else []
            lb.sync_once()
            # reloaded by this sync or by the stand-in's own, which may have seen the change first
            extra_reloads.append(lb.reloads > before)

    reloader = threading.Thread(target=busy, daemon=True)
    load = cluster.load()
    with load:
        time.sleep(1.0)
        reloader.start()
        try:
            result = cluster.zdd(path)
        finally:
            stop.set()
            reloader.join(timeout=10)
            lb.extra_services = []
        time.sleep(1.0)
    assert result.returncode == 0, result.stderr
    assert sum(1 for reloaded in extra_reloads if reloaded) >= 5
    assert "changed less than --reload-grace" in result.stderr
    assert load.counts()["failed"] == 0, load.summary()
    assert cluster.apps() == {"/web-green": (3, 3)}
