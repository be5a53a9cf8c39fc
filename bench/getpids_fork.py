"""What reading /_haproxy_getpids costs the traffic, with no zdd and no reload.

One real HAProxy 2.6 with marathon-lb's head (one thread per CPU, no
idle-close-on-response) in front of two task processes, 4 keep-alive and 4
new-connection clients on its frontend, and one client reading getpids
10 times a second for 20 s. Three ways to serve getpids: forking a command
through io.popen as marathon-lb's getpids.lua does; the same with
``nbthread 1``; the fork-free Lua that reads /proc (the README's). The
keep-alive clients retry a GET lost before any response byte on a reused
connection (tests/sandbox/load.py), so what counts is what a well-behaved
client loses.
"""

import tempfile
import time
from pathlib import Path

from tests.sandbox.haproxy import HAProxyInstance, Server, Service
from tests.sandbox.load import LoadGenerator
from tests.sandbox.tasks import ProcessLauncher, free_port

SECONDS = 20.0
RATE_HZ = 10.0
VARIANTS = (("fork (marathon-lb's getpids.lua)", dict(getpids="popen")),
            ("fork, nbthread 1", dict(getpids="popen", nbthread=1)),
            ("/proc Lua (no fork)", dict(getpids="proc")))


def start_tasks(launcher, count):
    """``count`` task processes, healthy; their Servers."""
    servers = []
    for index in range(count):
        task_id = "getpids-bench.%d" % index
        placement = launcher.launch({"id": "/getpids-bench", "labels": {}}, task_id, False, [80])
        servers.append(Server("127_0_0_1_%d" % placement.ports[0], "127.0.0.1", placement.ports[0]))
        deadline = time.monotonic() + 10
        while not launcher.check_health(task_id).healthy:
            if time.monotonic() > deadline:
                raise RuntimeError("task %s did not come up" % task_id)
            time.sleep(0.05)
    return servers


def getpids_under_load(haproxy, servers, seconds=SECONDS, rate_hz=RATE_HZ):
    """Start ``haproxy`` (not started) before ``servers``; read getpids at ``rate_hz`` under load.

    Returns (load counts, getpids calls, getpids answers that were not 2 PIDs).
    """
    port = free_port()
    haproxy.start(haproxy.render([Service("bench_%d" % port, port, servers)]))
    load = LoadGenerator(["http://127.0.0.1:%d/" % port], keepalive_clients=4, fresh_clients=4,
                         max_duration_s=seconds + 30, retry_idle_close=True)
    calls = odd = 0
    with load:
        time.sleep(0.5)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            calls += 1
            odd += len(haproxy.getpids()) != 2
            time.sleep(1.0 / rate_hz)
        time.sleep(0.5)
    return load.counts(), calls, odd


def measure():
    rows = []
    for name, options in VARIANTS:
        with tempfile.TemporaryDirectory(prefix="zdd-bench-") as workdir:
            launcher = ProcessLauncher(Path(workdir) / "tasks")
            haproxy = HAProxyInstance(Path(workdir) / "lb", head="marathon-lb", **options)
            try:
                counts, calls, odd = getpids_under_load(haproxy, start_tasks(launcher, 2))
            finally:
                haproxy.stop()
                launcher.close()
        rows.append((name, counts, calls, odd))
    return rows


def table():
    lines = ["getpids under load (HAProxy 2.6, marathon-lb's head, 4+4 clients, getpids %g/s for %g s, no reload)"
             % (RATE_HZ, SECONDS),
             "%-34s %9s %7s %8s %8s" % ("getpids served by", "requests", "failed", "retried", "getpids")]
    for name, counts, calls, _ in measure():
        lines.append("%-34s %9d %7d %8d %8d" % (name, counts["requests"], counts["failed"], counts["retried"], calls))
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
