"""The load generator counts honestly: refused connections, resets and colours."""

import socket
import time

import pytest

from tests.helpers import wait_for
from tests.sandbox.load import LoadGenerator
from tests.sandbox.tasks import free_port

pytestmark = pytest.mark.e2e


def blue_task_url(sandbox):
    """The URL of one real blue task process, once it is healthy."""
    placement = sandbox.launcher.launch({"id": "/nginx-blue", "labels": {"HAPROXY_DEPLOYMENT_COLOUR": "blue"}},
                                        "blue.1", False, [80])
    deadline = time.monotonic() + 10
    while not sandbox.launcher.check_health("blue.1").healthy:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return "http://127.0.0.1:%d/" % placement.ports[0]


def test_counts_requests_and_colours_against_a_task(sandbox):
    load = LoadGenerator([blue_task_url(sandbox)], keepalive_clients=2, fresh_clients=2)
    with load:
        time.sleep(1)
    counts = load.counts()
    assert counts["requests"] > 100 and counts["failed"] == 0
    assert set(counts["by_colour"]) == {"blue"}
    assert load.summary().splitlines()[-1] == "requests: %d failed: 0" % counts["requests"]


def test_refused_connections_are_failures():
    load = LoadGenerator(["http://127.0.0.1:%d/" % free_port()], keepalive_clients=1, fresh_clients=1)
    with load:  # its process runs niced: on a busy machine its first requests may take a while
        wait_for(lambda: load.counts()["requests"] >= 2, what="requests")
    counts = load.counts()
    assert counts["requests"] > 0 and counts["failed"] == counts["requests"]
    assert set(counts["by_kind"]) == {"refused"}


def test_a_request_without_response_is_a_reset_failure():
    # A server that accepts, reads the request and closes without answering.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    load = LoadGenerator(["http://127.0.0.1:%d/" % port], keepalive_clients=0, fresh_clients=1, timeout_s=2)
    load.start()
    try:
        for _ in range(3):
            connection, _ = listener.accept()
            connection.recv(4096)
            connection.close()
    finally:
        listener.close()  # a connection still queued is reset, not left to time out
        load.stop()
    counts = load.counts()
    assert counts["by_kind"].get("reset", 0) >= 3
    assert counts["by_kind"].get("reset") + counts["by_kind"].get("refused", 0) == counts["failed"]
    assert load.summary().splitlines()[-1] == "requests: %d failed: %d" % (counts["requests"], counts["failed"])


def test_a_connection_idle_for_max_idle_s_is_not_reused(sandbox):
    """A keep-alive client that waited max_idle_s or more opens a new connection (as a starved thread must,
    before the server's idle timeout closes the old one under its request); a busy one keeps its connection."""
    url = blue_task_url(sandbox)
    idle = LoadGenerator([url], keepalive_clients=1, fresh_clients=0, pause_s=0.3, max_idle_s=0.2)
    busy = LoadGenerator([url], keepalive_clients=1, fresh_clients=0, pause_s=0.05, max_idle_s=5)
    with idle, busy:  # niced processes: on a busy machine, wait for their requests rather than a fixed time
        wait_for(lambda: busy.counts()["requests"] > 10 and idle.counts()["requests"] >= 3, what="requests")
    assert idle.counts()["failed"] == busy.counts()["failed"] == 0
    assert idle.stale_reconnects >= idle.counts()["requests"] - 2 > 0
    assert busy.stale_reconnects == 0 and busy.counts()["requests"] > 10
    # each request on a reused connection says how long it had been idle (what a reset's cause is read by)
    reused = [result.idle_s for result in busy.snapshot() if result.idle_s is not None]
    assert len(reused) >= busy.counts()["requests"] - 1 and all(0.04 <= idle_s < 5 for idle_s in reused)
    assert all(result.idle_s is None for result in idle.snapshot())  # never reused: a new connection each time
