"""Free TCP ports for the sandbox's listeners, outside the kernel's ephemeral range.

A port taken from the ephemeral range (what binding port 0 gives) can become,
between the probe and HAProxy's bind, the source port of some outgoing
connection on the same host (a load client, zdd, a health check): HAProxy's
bind then fails with "Address already in use", and a reload that adds a
frontend on that port fails. This happened once in an e2e run. Ports below the
ephemeral range are never handed out as source ports.
"""

import random
import socket

EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
LOWEST_PORT = 10000  # above the well-known and most registered service ports


def _ephemeral_low():
    try:
        with open(EPHEMERAL_RANGE_FILE) as text:
            return int(text.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(ips=("127.0.0.1",), taken=()):
    """A TCP port nobody listens on on any of ``ips`` right now, below the ephemeral range, not in ``taken``."""
    if isinstance(ips, str):
        ips = (ips,)
    high = max(LOWEST_PORT + 1000, _ephemeral_low())
    for _ in range(500):
        port = random.randrange(LOWEST_PORT, high)
        if port in taken:
            continue
        try:
            for ip in ips:
                family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.bind((ip, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port on %s below %d" % (", ".join(ips), high))
