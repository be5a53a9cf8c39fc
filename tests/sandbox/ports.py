"""Free TCP ports for the sandbox's listeners, outside the kernel's ephemeral range.

A port taken from the ephemeral range (what binding port 0 gives) can become,
between the probe and HAProxy's bind, the source port of some outgoing
connection on the same host (a load client, zdd, a health check): HAProxy's
bind then fails with "Address already in use", and a reload that adds a
frontend on that port fails. This happened once in an e2e run. Ports below the
ephemeral range are never handed out as source ports.

Tests run side by side (pytest-xdist) each take their own slice of that range
(``share()``), so that two of them never probe the same port at the same time
and both bind it.

Within one process, a port given is not given again for ``RESERVED_S``: a
task process binds its port only once it has started (a second or more on a
busy machine), and in that window a second probe of the same port finds it
free. Two tasks were once given one port that way; the second one's bind
failed ("Address already in use") and it never became healthy.
"""

import os
import random
import socket
import threading
import time

EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
LOWEST_PORT = 10000  # above the well-known and most registered service ports
RESERVED_S = 120.0  # a port given is not given again for this long (in this process)

_given = {}  # port -> when free_port gave it (time.monotonic)
_given_lock = threading.Lock()


def _ephemeral_low():
    try:
        with open(EPHEMERAL_RANGE_FILE) as text:
            return int(text.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def share(environ=None):
    """(index, count): this process's slice of what the sandbox hands out, among the pytest-xdist workers.

    A worker's name is ``gw<index>`` (PYTEST_XDIST_WORKER) among PYTEST_XDIST_WORKER_COUNT; (0, 1)
    outside pytest-xdist. Processes a test starts inherit both variables, hence its slice.
    """
    environ = os.environ if environ is None else environ
    try:
        count = int(environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        index = int(environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
    except ValueError:
        return 0, 1
    return (index, count) if 0 <= index < count else (0, 1)


def port_range(environ=None):
    """[low, high): the ports free_port picks from in this process, its share() of those below the ephemeral range."""
    low, high = LOWEST_PORT, max(LOWEST_PORT + 1000, _ephemeral_low())
    index, count = share(environ)
    size = (high - low) // count
    return low + index * size, low + (index + 1) * size


def free_port(ips=("127.0.0.1",), taken=()):
    """A TCP port nobody listens on on any of ``ips`` right now, from port_range(), not in ``taken``, and not
    given by this process in the last ``RESERVED_S``."""
    if isinstance(ips, str):
        ips = (ips,)
    low, high = port_range()
    with _given_lock:
        now = time.monotonic()
        for port, given_at in list(_given.items()):
            if now - given_at >= RESERVED_S:
                del _given[port]
        for _ in range(500):
            port = random.randrange(low, high)
            if port in taken or port in _given:
                continue
            try:
                for ip in ips:
                    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                    with socket.socket(family, socket.SOCK_STREAM) as probe:
                        probe.bind((ip, port))
            except OSError:
                continue
            _given[port] = now
            return port
    raise RuntimeError("no free port on %s from %d to %d" % (", ".join(ips), low, high - 1))
