"""The sandbox's listener ports come from below the ephemeral range (no clash with outgoing source ports)."""

import socket

from tests.sandbox import ports


def test_free_ports_are_below_the_ephemeral_range_and_bindable():
    low = ports._ephemeral_low()
    for _ in range(50):
        port = ports.free_port(("127.0.0.1", "127.0.0.2"))
        assert ports.LOWEST_PORT <= port < low
        assert ports.port_range()[0] <= port < ports.port_range()[1]
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))


def test_a_taken_port_is_never_given():
    # the lower half of the range taken: every port given is from the upper half
    low, high = ports.port_range()
    middle = (low + high) // 2
    taken = set(range(low, middle))
    assert all(ports.free_port("127.0.0.1", taken) >= middle for _ in range(50))


def test_a_port_given_is_not_given_again_before_it_is_bound(monkeypatch):
    """The same random pick twice in a row: the second call skips it (a task binds its port only once started)."""
    low, _ = ports.port_range()
    picks = iter([low + 7, low + 7, low + 8])
    monkeypatch.setattr(ports.random, "randrange", lambda start, stop: next(picks))
    monkeypatch.setattr(ports, "_given", {})
    assert [ports.free_port(), ports.free_port()] == [low + 7, low + 8]


def test_pytest_xdist_workers_get_slices_of_the_range_that_do_not_overlap():
    environ = {"PYTEST_XDIST_WORKER_COUNT": "3"}
    slices = [ports.port_range(dict(environ, PYTEST_XDIST_WORKER="gw%d" % index)) for index in range(3)]
    assert slices[0][0] == ports.LOWEST_PORT and slices[-1][1] <= max(ports.LOWEST_PORT + 1000, ports._ephemeral_low())
    assert all(low < high <= next_low for (low, high), (next_low, _) in zip(slices, slices[1:]))
    assert ports.share({}) == (0, 1) and ports.share({"PYTEST_XDIST_WORKER": "master"}) == (0, 1)
