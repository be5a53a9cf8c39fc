"""A load generator that counts every request a deployment loses.

Per URL (one marathon-lb group frontend each), some clients reuse one
keep-alive connection and some open a new connection per request. A request
that was sent and got no complete response is a failure, whatever the reason.
Reconnecting is free only when the server had already closed an idle
keep-alive connection before the next request was written, as any HTTP client
that checks a pooled connection before reuse does.

``retry_idle_close=True`` makes the keep-alive clients behave as RFC 9112
section 9.3.1 (RFC 7230 section 6.3.1) allows a client to: a GET on a reused
keep-alive connection that the server closed before any byte of a response
is sent once more on a new connection; it counts as ``retried``, and as
failed only when that second attempt fails too. That is the race of a client
writing on an idle connection just as the server closes it, as HAProxy's old
worker does at a reload without ``option idle-close-on-response``: the
request never reached a backend and a well-behaved client does not lose it.
Off by default: the strict count.

A keep-alive connection left idle for ``max_idle_s`` (0.8 s; HAProxy's
``timeout http-keep-alive`` is 1 s in marathon-lb's config) is not reused: the
client opens a new one, as HTTP clients with an idle timeout shorter than the
server's do. A client thread starved of CPU for a second (tests side by side on
a busy machine) otherwise writes its next request just as HAProxy closes the
connection for being idle, and counts a loss that no deployment caused.

The clients run in a process of their own (``LoadGenerator``'s docstring
says why); their results come back to the test's process as they are made.

    python -m tests.sandbox.load --url http://127.0.0.1:10000 --seconds 10
"""

import argparse
import collections
import dataclasses
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAX_DURATION_S = 600.0
FLUSH_S = 0.05  # how often the load's process sends its results
# The load's process runs at this niceness: closed-loop clients take every CPU cycle left, and at the same
# priority they took them from what they measure (zdd, the simulator, marathon-lb's syncs and reloads), most
# of all with end-to-end scenarios side by side on two cores
LOAD_NICENESS = 10
MAX_IDLE_S = 0.8

KIND_REFUSED = "refused"
KIND_RESET = "reset"
KIND_TIMEOUT = "timeout"
KIND_5XX = "5xx"
KIND_OTHER = "other"


@dataclasses.dataclass(frozen=True)
class Result:
    """One request: when it started (seconds since start), where, and how it ended."""

    t_s: float
    lb: str
    keepalive: bool
    colour: Optional[str]
    status: Optional[int]
    failure: Optional[str]  # one of the KIND_* or None
    detail: str = ""
    # Failed on a reused keep-alive connection before any response byte: the
    # case RFC 9112 section 9.3.1 lets a client retry. Still a failure here.
    retry_safe: bool = False
    retried: bool = False  # retry_idle_close: this is the second attempt of a retry_safe failure
    # On a reused keep-alive connection: how long it had been idle when this
    # request began, so a reset from the server's idle timeout (a starved
    # client) can be told apart from one a deployment caused. None: a new one.
    idle_s: Optional[float] = None


def classify(exc):
    """The failure kind of a transport exception."""
    if isinstance(exc, ConnectionRefusedError):
        return KIND_REFUSED
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return KIND_TIMEOUT
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
                        http.client.RemoteDisconnected, http.client.IncompleteRead)):
        return KIND_RESET
    return KIND_OTHER


def _closed_by_peer(sock):
    """True when an idle connection has been closed (or spoken on) by the server."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


@dataclasses.dataclass(frozen=True)
class LoadSettings:
    """What one load does: its URLs, its clients per URL, and how they behave (see LoadGenerator)."""

    urls: list
    keepalive_clients: int = 4
    fresh_clients: int = 4
    timeout_s: float = 5.0
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    pause_s: float = 0.0
    retry_idle_close: bool = False
    max_idle_s: float = MAX_IDLE_S


class _Clients:
    """The client threads of one load, and what they record (run in the load's own process, see LoadGenerator)."""

    def __init__(self, settings, started_at):
        self.settings = settings
        self.results: List[Result] = []
        self.idle_reconnects = 0
        self.stale_reconnects = 0  # of those, connections idle max_idle_s or longer
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._started_at = started_at

    def start(self):
        for url in self.settings.urls:
            for index in range(self.settings.keepalive_clients):
                self._spawn(self._keepalive_client, url, "keepalive-%d" % index)
            for index in range(self.settings.fresh_clients):
                self._spawn(self._fresh_client, url, "fresh-%d" % index)
        return self

    def _spawn(self, target, url, name):
        thread = threading.Thread(target=target, args=(url,), name="load-%s-%s" % (name, url), daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def take(self):
        """The results recorded since the last take(), and the reconnect counters so far."""
        with self._lock:
            taken, self.results = self.results, []
            return taken, self.idle_reconnects, self.stale_reconnects

    def _running(self):
        if time.monotonic() - self._started_at > self.settings.max_duration_s:
            return False
        return not self._stop.is_set()

    def _record(self, result):
        with self._lock:
            self.results.append(result)

    def _elapsed_s(self):
        return time.monotonic() - self._started_at

    @staticmethod
    def _target(url):
        parts = urllib.parse.urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return parts.hostname, parts.port or 80, path

    def _one_request(self, connection, url, path, keepalive, headers, answered=None):
        t_s = self._elapsed_s()
        reused = connection.sock is not None
        idle_s = time.monotonic() - answered if reused and answered is not None else None
        response = None
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            no_response_byte = response is None and isinstance(
                exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
            return Result(t_s, url, keepalive, None, None, classify(exc), repr(exc),
                          retry_safe=reused and no_response_byte, idle_s=idle_s)
        colour = response.getheader("X-Colour")
        failure = None
        if response.status >= 500:
            failure = KIND_5XX
        elif response.status != 200:
            failure = KIND_OTHER
        if response.will_close:
            connection.close()
        return Result(t_s, url, keepalive, colour, response.status, failure,
                      "" if failure is None else "HTTP %d" % response.status, idle_s=idle_s)

    def _keepalive_client(self, url):
        host, port, path = self._target(url)
        connection = http.client.HTTPConnection(host, port, timeout=self.settings.timeout_s)
        answered = time.monotonic()
        try:
            while self._running():
                stale = time.monotonic() - answered >= self.settings.max_idle_s
                if connection.sock is not None and (stale or _closed_by_peer(connection.sock)):
                    # The server closed the idle connection before we wrote
                    # anything on it (or soon will): nothing was lost, open a new one.
                    connection.close()
                    with self._lock:
                        self.idle_reconnects += 1
                        self.stale_reconnects += stale
                result = self._one_request(connection, url, path, True, {}, answered)
                answered = time.monotonic()
                if result.retry_safe and self.settings.retry_idle_close:
                    second = self._one_request(connection, url, path, True, {})  # on a new connection
                    result = dataclasses.replace(second, t_s=result.t_s, retried=True,
                                                 detail=second.detail or "retried after " + result.detail)
                self._record(result)
                if self.settings.pause_s:
                    self._stop.wait(self.settings.pause_s)
        finally:
            connection.close()

    def _fresh_client(self, url):
        host, port, path = self._target(url)
        while self._running():
            connection = http.client.HTTPConnection(host, port, timeout=self.settings.timeout_s)
            try:
                self._record(self._one_request(connection, url, path, False, {"Connection": "close"}))
            finally:
                connection.close()
            if self.settings.pause_s:
                self._stop.wait(self.settings.pause_s)


class LoadGenerator:
    """Clients that request every URL continuously, in a process of their own; it records each result here.

    The clients run in a child process (``python -m tests.sandbox.load --child``) so that they never hold
    this process's GIL: the Marathon simulator and the marathon-lb stand-ins of a test run in the test's
    process, and a dozen busy client threads beside them made every answer to zdd wait its turn. The child
    sends its results every ``FLUSH_S``; ``snapshot()`` and what reads it see them that late at most. The
    child stops when told to, or when this process goes away (its stdin closes).
    """

    def __init__(self, urls, **options):
        """``options``: those of LoadSettings (clients per URL, timeouts, pause, retry, idle limit)."""
        self.settings = LoadSettings(list(urls), **options)
        self.results: List[Result] = []
        self.idle_reconnects = 0
        self.stale_reconnects = 0  # of those, connections idle max_idle_s or longer
        self._lock = threading.Lock()
        self._process = None
        self._reader = None
        self._started_at = None
        self._stopped_at = None

    # -- running

    def start(self):
        """Start the clients (returns once they run); they stop on stop() or after max_duration_s."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self._process = subprocess.Popen([sys.executable, "-m", "tests.sandbox.load", "--child"], cwd=str(REPO_ROOT),
                                         env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._process.stdin.write(json.dumps(dataclasses.asdict(self.settings)) + "\n")
        self._process.stdin.flush()
        started = self._process.stdout.readline().split()
        if started[:1] != ["started"]:
            self._process.kill()
            self._process.wait()
            raise RuntimeError("the load generator's process did not start")
        # when the clients started, on the monotonic clock both processes share: the results' t_s count from it
        self._started_at = float(started[1])
        self._reader = threading.Thread(target=self._read_results, name="load-results", daemon=True)
        self._reader.start()
        return self

    def _read_results(self):
        for line in self._process.stdout:
            batch = json.loads(line)
            with self._lock:
                self.results.extend(Result(*fields) for fields in batch["results"])
                self.idle_reconnects, self.stale_reconnects = batch["idle_reconnects"], batch["stale_reconnects"]

    def stop(self):
        """Stop every client after its current request, and take the last results."""
        if self._process is None:
            return
        if self._process.poll() is None:
            try:
                self._process.stdin.write("stop\n")
                self._process.stdin.close()
            except OSError:
                pass
        self._reader.join()
        self._process.wait()
        self._process.stdout.close()
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- reporting

    def snapshot(self):
        """A copy of the results so far."""
        with self._lock:
            return list(self.results)

    def failures(self):
        """The failed results."""
        return [result for result in self.snapshot() if result.failure]

    def counts(self):
        """{"requests", "failed", "retry_safe", "retried", "by_kind": {kind: n}, "by_colour": {colour: n}}."""
        results = self.snapshot()
        by_kind = collections.Counter(result.failure for result in results if result.failure)
        by_colour = collections.Counter(result.colour for result in results if not result.failure)
        return {"requests": len(results), "failed": sum(by_kind.values()),
                "retry_safe": sum(1 for result in results if result.retry_safe),
                "retried": sum(1 for result in results if result.retried),
                "by_kind": dict(by_kind), "by_colour": dict(by_colour)}

    def colour_spans(self):
        """{colour: (first_s, last_s)}: when each colour first and last answered."""
        spans = {}
        for result in self.snapshot():
            if result.failure or result.colour is None:
                continue
            first, last = spans.get(result.colour, (result.t_s, result.t_s))
            spans[result.colour] = (min(first, result.t_s), max(last, result.t_s))
        return spans

    def summary(self):
        """A readable report; the last line is exactly ``requests: N failed: F``."""
        results = self.snapshot()
        counts = self.counts()
        settings = self.settings
        lines = ["load: %d URL(s), %d keep-alive + %d fresh clients each, %d idle reconnects (%d after %.1f s idle), "
                 "%d retried" % (len(settings.urls), settings.keepalive_clients, settings.fresh_clients,
                                 self.idle_reconnects, self.stale_reconnects, settings.max_idle_s, counts["retried"])]
        if counts["by_kind"]:
            lines.append("failures by kind: " + ", ".join(
                "%s=%d" % (kind, n) for kind, n in sorted(counts["by_kind"].items()))
                + " (%d on a reused keep-alive connection before any response byte)" % counts["retry_safe"])
            for result in [r for r in results if r.failure][:10]:
                idle = "" if result.idle_s is None else ", idle %.3fs before it" % result.idle_s
                lines.append("  failed at %.3fs on %s (%s%s): %s %s" % (
                    result.t_s, result.lb,
                    "reused keep-alive" if result.retry_safe else "keep-alive" if result.keepalive else "fresh",
                    idle, result.failure, result.detail))
        lines.append("colours:")
        for colour, (first, last) in sorted(self.colour_spans().items(), key=lambda item: item[1]):
            lines.append("  %-10s first %.3fs last %.3fs (%d requests)"
                         % (colour, first, last, counts["by_colour"].get(colour, 0)))
        lines.append("per second:")
        per_second = collections.defaultdict(collections.Counter)
        for result in results:
            per_second[int(result.t_s)][result.failure and "FAILED" or (result.colour or "?")] += 1
        for second in sorted(per_second):
            lines.append("  %4ds %s" % (second, " ".join(
                "%s=%d" % (key, n) for key, n in sorted(per_second[second].items()))))
        lines.append("requests: %d failed: %d" % (counts["requests"], counts["failed"]))
        return "\n".join(lines)


def run_child(stdin=sys.stdin, stdout=sys.stdout):
    """The load's own process: the configuration on the first line of stdin; ``started <monotonic time>`` on
    stdout, then results every FLUSH_S (one JSON line each), until ``stop`` or the end of stdin; then the last
    results, and exit."""
    config = json.loads(stdin.readline())
    os.nice(LOAD_NICENESS)
    started_at = time.monotonic()
    clients = _Clients(LoadSettings(**config), started_at).start()
    stop = threading.Event()

    def wait_for_stop():
        stdin.readline()  # "stop", or "" when the parent is gone
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    stdout.write("started %r\n" % started_at)
    stdout.flush()
    while not stop.wait(FLUSH_S):
        _send(clients, stdout)
    clients.stop()
    _send(clients, stdout)
    return 0


def _send(clients, stdout):
    results, idle, stale = clients.take()
    stdout.write(json.dumps({"results": [dataclasses.astuple(result) for result in results],
                             "idle_reconnects": idle, "stale_reconnects": stale}) + "\n")
    stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", help="a URL to load (repeatable)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keepalive-clients", type=int, default=4)
    parser.add_argument("--fresh-clients", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        return run_child()
    if not options.url:
        parser.error("--url is required")
    load = LoadGenerator(options.url, keepalive_clients=options.keepalive_clients,
                         fresh_clients=options.fresh_clients, timeout_s=options.timeout,
                         max_duration_s=options.seconds)
    load.start()
    try:
        time.sleep(options.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        load.stop()
    print(load.summary())
    return 1 if load.counts()["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
