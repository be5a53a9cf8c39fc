"""What zdd's polls cost a big marathon-lb, and zdd itself, with and without the stats scope.

Two real HAProxy 2.6 instances shaped like marathon-lb's (one thread per CPU,
as marathon-lb leaves ``nbthread``): a big one serving the group's backend
(10 servers) beside 1,000 other apps of 10 servers each (a frontend and a
backend each, as marathon-lb renders them; the servers point at a closed port
with no health check, so HAProxy is not busy checking), and a small one
serving the group alone. Two of the other apps route to real task processes:
their clients are the ones whose latency is measured.

For each zdd (this checkout's, and with ``--before PATH`` another ``zdd.py``,
e.g. main's), a poll is zdd's own ``MarathonLbClient.observe``: what it
requests (recorded by the session), the body bytes, zdd's CPU time per poll
(``time.process_time`` around ``observe``: HTTP and parsing) and
``parse_stats`` alone on the page it read (CPU time too); then HAProxy's side: the wall time
of a bare ``GET`` of that path (first byte to last, no parsing) and the
worker's CPU per read (``/proc/<worker>/stat``, over many reads). Target: on
the big marathon-lb a poll's bytes and parse time within 10 % of the small
one's. Medians throughout.

Under load: keep-alive clients on the two real apps, in phases of a few
seconds with no poller, then for each zdd a poller process sending zdd's
stats request (its path, a new connection each, the whole body read, no
parsing: HAProxy's side only) 10 times a second, or back to back when a read
takes longer (one zdd reads a marathon-lb at most 4 times a second: this is
a few zdds at once), rounds interleaved; the clients' latency p50 / p99 per
phase, the median over the rounds. (Back to back, the scoped reads would be
a thousand a second: the poller itself would then take a core from the
clients.)

    python -m bench big_lb
    python -m bench.big_lb --before /tmp/main/zdd.py --rounds 3
"""

import argparse
import http.client
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.getpids_fork import start_tasks
from tests.sandbox.haproxy import HAProxyInstance, Server, Service
from tests.sandbox.tasks import ProcessLauncher

REPO_ROOT = Path(__file__).resolve().parent.parent
OTHER_APPS = 1_000
SERVERS = 10
BIG_IP, SMALL_IP = "127.0.0.77", "127.0.0.78"  # addresses no other sandbox listens on: any port is ours
FIRST_PORT = 20000
GROUP_PORT = 10000
BACKEND = "web_%d" % GROUP_PORT
CLOSED = ("127.0.0.1", 9)  # nothing listens on the discard port here: never contacted, no checks
LOADED_APPS = 2
CLIENTS = 4
PHASE_S = 5.0
POLL_RATE_HZ = 10.0  # 2.5 times zdd's fastest (a look 0.25 s after its write): say, a few zdds at once
DEFAULT_ROUNDS = 3


def load_zdd(path):
    """A zdd module from ``path`` (None: this checkout's), under a name of its own."""
    path = Path(path or REPO_ROOT / "zdd.py").resolve()
    spec = importlib.util.spec_from_file_location("zdd_bench_%d" % abs(hash(str(path))), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingSession(requests.Session):
    """A requests session that remembers the path and body size of each answer."""

    def __init__(self):
        super().__init__()
        self.seen = []  # (path and query, body bytes)

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        self.seen.append((url.split("/", 3)[3], len(response.content)))
        return response


def lb_client(module, url):
    """zdd's own marathon-lb client, built as zdd's execute() builds it."""
    clock = module.SystemClock()
    session = RecordingSession()
    http_client = module.HttpClient(session, 10, module.Deadline(clock, 0), clock, module.Interrupts(clock))
    return module.MarathonLbClient([url], http_client), session


def group_service():
    return Service(BACKEND, GROUP_PORT, [Server("10_1_0_%d_31%03d" % (i, i), *CLOSED) for i in range(SERVERS)])


def other_services(loaded_servers):
    """1,000 apps named as marathon-lb names them (``team-N_app-M_<port>``); the first ones routed to real tasks."""
    services = []
    for index in range(OTHER_APPS):
        port = FIRST_PORT + index
        name = "team-%d_app-%d_%d" % (index % 37, index, port)
        if index < LOADED_APPS:
            servers = [Server("%s_%d" % (server.name, index), server.ip, server.port) for server in loaded_servers]
        else:
            servers = [Server("10_0_%d_%d_%d" % (index // 250, index % 250, 31000 + s), *CLOSED)
                       for s in range(SERVERS)]
        services.append(Service(name, port, servers))
    return services


def worker_cpu_s(instance):
    """CPU seconds (user + system, every thread) of the instance's current worker."""
    worker = instance.pids()[-1]
    with open("/proc/%d/stat" % worker) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_get_s(host, port, path):
    """Seconds from sending a GET to its last body byte, on a new connection; the body's size."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        started = time.perf_counter()
        connection.request("GET", path)
        body = connection.getresponse().read()
        return time.perf_counter() - started, len(body)
    finally:
        connection.close()


def measure_polls(module, instance, big_polls=20, small_polls=200):
    """One zdd's polls of one marathon-lb: {path, bytes, cpu_ms, parse_ms, haproxy_ms, worker_ms} (medians).

    ``big_polls`` samples of each figure for a page of more than 100 kB, ``small_polls`` for a smaller one.
    """
    client, session = lb_client(module, instance.stats_url)
    client.observe(BACKEND)
    polls = big_polls if session.seen[-1][1] > 100_000 else small_polls
    cpu, parse = [], []
    for _ in range(polls):
        started = time.process_time()
        (view,) = client.observe(BACKEND)
        cpu.append(time.process_time() - started)
        assert view.listeners is not None and len(view.listeners) == SERVERS, view
    path, size = session.seen[-1]
    text = requests.get(instance.stats_url + "/" + path, timeout=30).text
    for _ in range(polls):
        started = time.process_time()
        module.parse_stats(text, BACKEND)
        parse.append(time.process_time() - started)
    walls = [bare_get_s(instance.bind_ip, instance.stats_port, "/" + path)[0] for _ in range(polls)]
    reads = max(polls, int(1.0 / max(statistics.median(walls), 1e-4)))  # about a second of reads, for the ticks
    before = worker_cpu_s(instance)
    for _ in range(reads):
        bare_get_s(instance.bind_ip, instance.stats_port, "/" + path)
    worker = (worker_cpu_s(instance) - before) / reads
    return {"path": "/" + path, "bytes": size, "cpu_ms": statistics.median(cpu) * 1e3,
            "parse_ms": statistics.median(parse) * 1e3, "haproxy_ms": statistics.median(walls) * 1e3,
            "worker_ms": worker * 1e3}


# ---------------------------------------------------------------- under load


class LatencyClients:
    """``CLIENTS`` keep-alive clients per URL; every request's (start time, latency, ok)."""

    def __init__(self, host, ports):
        self.targets = [(host, port) for port in ports for _ in range(CLIENTS)]
        self.results = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=target, daemon=True) for target in self.targets]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _client(self, host, port):
        connection = None
        while not self._stop.is_set():
            if connection is None:
                connection = http.client.HTTPConnection(host, port, timeout=10)
            started = time.perf_counter()
            try:
                connection.request("GET", "/")
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = None
            self.results.append((started, time.perf_counter() - started, ok))

    def between(self, start, end):
        return [(latency, ok) for at, latency, ok in self.results if start <= at < end]


# The poller: zdd's stats request (its path, a new connection each, the whole body read, no parsing: what the
# clients feel is HAProxy's side, not a busy CPU here) every 1/rate s, or back to back when a read takes longer;
# it prints how many it sent
POLLER = """
import http.client, sys, time
host, port, path, seconds, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
start = time.monotonic()
polls = 0
while time.monotonic() < start + seconds:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", path)
    connection.getresponse().read()
    connection.close()
    polls += 1
    time.sleep(max(0.0, start + polls / rate - time.monotonic()))
print(polls)
"""


def poller(instance, path, seconds, rate_hz):
    return subprocess.Popen([sys.executable, "-c", POLLER, instance.bind_ip, str(instance.stats_port), path,
                             str(seconds), str(rate_hz)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            text=True)


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def under_load(big, loaded_ports, paths, rounds, phase_s=PHASE_S, rate_hz=POLL_RATE_HZ):
    """{phase name: (p50 ms, p99 ms, requests per s, failed, polls per s)}, each the median over ``rounds``.

    ``paths``: (label, the stats path a zdd requests) for each zdd.
    """
    phases = [("no poller", None)] + [("polls by %s" % label, path) for label, path in paths]
    seen = {name: [] for name, _ in phases}
    with LatencyClients(big.bind_ip, loaded_ports) as clients:
        time.sleep(1.0)
        for _ in range(rounds):
            for name, path in phases:
                process = None if path is None else poller(big, path, phase_s + 1.0, rate_hz)
                time.sleep(0.5)  # the poller's start (imports) is not measured
                start = time.perf_counter()
                time.sleep(phase_s)
                end = time.perf_counter()
                polls = 0 if process is None else int(process.communicate(timeout=60)[0] or 0)
                results = clients.between(start, end)
                latencies = [latency * 1e3 for latency, ok in results if ok]
                seen[name].append((percentile(latencies, 0.5), percentile(latencies, 0.99), len(results) / phase_s,
                                   sum(1 for _, ok in results if not ok), polls / (phase_s + 1.0)))
    return {name: tuple(statistics.median(run[i] for run in runs) for i in range(5)) for name, runs in seen.items()}


# ---------------------------------------------------------------- the table


def measure(before=None, rounds=DEFAULT_ROUNDS):
    zdds = [("this zdd", None)] + ([("before", before)] if before else [])
    with tempfile.TemporaryDirectory(prefix="zdd-bench-big-lb-") as workdir:
        launcher = ProcessLauncher(Path(workdir) / "tasks")
        big = HAProxyInstance(Path(workdir) / "big", bind_ip=BIG_IP)
        small = HAProxyInstance(Path(workdir) / "small", bind_ip=SMALL_IP)
        try:
            servers = start_tasks(launcher, 2)
            others = other_services(servers)
            big.start(big.render([group_service()] + others))
            small.start(small.render([group_service()]))
            rows = []
            for label, path in zdds:
                module = load_zdd(path)
                for name, instance in (("1,000 apps", big), ("group only", small)):
                    rows.append((label, name, measure_polls(module, instance)))
            paths = [(label, row["path"]) for label, name, row in rows if name == "1,000 apps"]
            loaded = under_load(big, [service.port for service in others[:LOADED_APPS]], paths, rounds)
            return rows, loaded
        finally:
            big.stop()
            small.stop()
            launcher.close()


def table(before=None, rounds=DEFAULT_ROUNDS):
    rows, loaded = measure(before, rounds)
    lines = ["A big marathon-lb: the group's backend (%d servers) beside %d other apps of %d servers, real HAProxy"
             " (medians)" % (SERVERS, OTHER_APPS, SERVERS),
             "%-9s %-11s %-40s %10s %8s %9s %11s %10s" % ("zdd", "marathon-lb", "stats read", "bytes", "cpu ms",
                                                          "parse ms", "haproxy ms", "worker ms")]
    for label, name, row in rows:
        lines.append("%-9s %-11s %-40s %10d %8.2f %9.3f %11.2f %10.3f" % (
            label, name, row["path"], row["bytes"], row["cpu_ms"], row["parse_ms"], row["haproxy_ms"],
            row["worker_ms"]))
    for index in range(0, len(rows), 2):
        (label, _, big), (_, _, small) = rows[index], rows[index + 1]
        lines.append("%s: 1,000 apps / group only: bytes %.2fx, parse %.2fx (target: at most 1.10x)"
                     % (label, big["bytes"] / small["bytes"], big["parse_ms"] / small["parse_ms"]))
    lines += ["", "Latency of other apps' clients (%d keep-alive clients on each of %d apps) while a poller sends"
              " zdd's stats request to the big marathon-lb %g times a second (back to back when a read takes"
              " longer); %d rounds of %.0f s, median of the rounds" % (CLIENTS, LOADED_APPS, POLL_RATE_HZ, rounds,
                                                                     PHASE_S),
              "%-22s %8s %8s %10s %7s %8s" % ("phase", "p50 ms", "p99 ms", "req/s", "failed", "polls/s")]
    for name, (p50, p99, rate, failed, polls) in loaded.items():
        lines.append("%-22s %8.2f %8.2f %10.0f %7d %8.1f" % (name, p50, p99, rate, failed, polls))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="ZDD_PY", help="another zdd.py to measure beside this checkout's")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="rounds of the load phases")
    args = parser.parse_args(argv)
    print(table(args.before, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
