"""The default reload check end to end: marathon-lb as shipped (its head, threads per CPU, a forking getpids).

For an HTTP backend zdd reads no ``/_haproxy_getpids`` and waits
--reload-grace after each marathon-lb change before a kill
(docs/behaviour.rst, 'Old HAProxy workers'). Under load, with every request
still in flight in the old HAProxy worker at each draining reload (the tasks
answer a second late), and with marathon-lb reloading again and again while
zdd waits, no request may fail.
"""

import threading
import time

import pytest

from tests.sandbox.haproxy import Service
from tests.sandbox.ports import free_port
from tests.sandbox.soak import run_soak, summary

pytestmark = pytest.mark.e2e

MARATHON_LB_AS_SHIPPED = dict(getpids="popen", head="marathon-lb")


def test_two_deployments_fork_nothing_and_lose_nothing(cluster_factory):
    cluster = cluster_factory(lbs=2, **MARATHON_LB_AS_SHIPPED)
    result = run_soak(cluster, 2, echo=print)
    print(summary(result))
    assert [row.exit_code for row in result.deployments] == [0, 0], result.deployments[-1].stderr
    assert [row.getpids for row in result.deployments] == [0, 0]
    assert result.failed == 0, summary(result)


def test_requests_in_flight_in_the_old_worker_are_waited_for(cluster_factory):
    """Every answer takes 1 s: at each draining reload the old worker has requests in flight to the tasks
    marathon-lb drains, which the new worker's stats cannot show. The grace (2 s) outlasts them."""
    cluster = cluster_factory(lbs=1, **MARATHON_LB_AS_SHIPPED)
    cluster.deploy_first(3, SIM_SLOW_MS=1000)
    path = cluster.write_app(cluster.app(3, SIM_SLOW_MS=1000))
    load = cluster.load(keepalive_clients=3, fresh_clients=3)
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
    cluster = cluster_factory(lbs=1, **MARATHON_LB_AS_SHIPPED)
    cluster.deploy_first(3)
    lb = cluster.lbs[0]
    path = cluster.write_app(cluster.app(3))
    stop = threading.Event()
    extra_reloads = []

    def busy():
        port, end = free_port(), time.monotonic() + 12
        while not stop.wait(0.7) and time.monotonic() < end:
            lb.extra_services = [Service("busy_%d" % port, port, [])] if not lb.extra_services else []
            extra_reloads.append(lb.sync_once())

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
