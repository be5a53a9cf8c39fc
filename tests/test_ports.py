"""The sandbox's listener ports come from below the ephemeral range (no clash with outgoing source ports)."""

import socket

from tests.sandbox import ports


def test_free_ports_are_below_the_ephemeral_range_and_bindable():
    low = ports._ephemeral_low()
    for _ in range(50):
        port = ports.free_port(("127.0.0.1", "127.0.0.2"))
        assert ports.LOWEST_PORT <= port < low
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))


def test_a_taken_port_is_never_given():
    # the lower half of the range taken: every port given is from the upper half
    middle = (ports.LOWEST_PORT + ports._ephemeral_low()) // 2
    taken = set(range(ports.LOWEST_PORT, middle))
    assert all(ports.free_port("127.0.0.1", taken) >= middle for _ in range(50))
