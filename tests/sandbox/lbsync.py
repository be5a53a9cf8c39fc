"""The marathon-lb stand-in: read Marathon, render HAProxy's config, reload a real HAProxy.

``MarathonLB`` polls ``GET /v2/apps?embed=apps.tasks`` of a Marathon (the
simulator, over HTTP, as marathon-lb polls the real one), turns the apps into
services with ``mlb.services_from_apps`` (group merge, draining, names), and
reloads its HAProxy only when the rendered config changed.

Fault knobs, for the sandbox's failure tests: ``paused`` (stop syncing, as a
marathon-lb that lost Marathon), ``hold_old_worker()`` (an open connection that
keeps an old HAProxy worker, so /_haproxy_getpids reports 3 PIDs).

``extra_services``
    services (``haproxy.Service``) rendered after the apps' own: changing it
    makes the next sync reload HAProxy, as another app changing on a busy
    marathon-lb does.
``go_down()`` / ``come_up()``
    stop this marathon-lb's HAProxy (master and workers: its stats port and
    frontends refuse connections) and its syncing; ``come_up()`` starts
    HAProxy again from Marathon's current state and syncs on.
``garble_stats(text=STATS_GARBAGE)`` / ``garble_stats(None)``
    the stats listener answers ``/haproxy?stats;csv`` with ``text`` (an HTML
    page by default) as 200 text/html, through an HAProxy ``http-request
    return`` rule (HAProxy reloads to apply it and to remove it);
    ``/_haproxy_getpids`` and the frontends are untouched.
``keep_old_worker()`` / ``keep_old_worker(False)``
    a long-lived TCP connection through an extra TCP listener to a sink,
    opened again on the new worker after every reload and trickling a byte
    every second: the previous worker never finishes, so from the next reload
    on ``/_haproxy_getpids`` lists 3 PIDs for as long as the knob is on (the
    ``timeout http-request`` that ends ``hold_old_worker`` does not apply).
"""

import json
import socket
import socketserver
import threading
import time
import urllib.request

from tests.sandbox import mlb
from tests.sandbox.haproxy import HAProxyInstance
from tests.sandbox.ports import free_port

SYNC_INTERVAL_S = 0.2
MARATHON_TIMEOUT_S = 5.0
TRICKLE_INTERVAL_S = 1.0
STATS_GARBAGE = "<html><head><title>Statistics Report</title></head><body><h1>moved</h1></body></html>"


class MarathonLB:
    """One marathon-lb instance: a real HAProxy on ``bind_ip`` kept in sync with Marathon."""

    def __init__(self, marathon_url, workdir, bind_ip="127.0.0.1", stats_port=None, resolve=mlb.resolve_host,
                 **haproxy_options):
        self.marathon_url = marathon_url.rstrip("/")
        # haproxy_options: getpids ("proc" or "popen"), head ("sandbox" or "marathon-lb"), nbthread
        self.haproxy = HAProxyInstance(workdir, bind_ip=bind_ip, stats_port=stats_port, **haproxy_options)
        self.resolve = resolve
        self.paused = False
        self.reloads = 0
        self.sync_errors = 0
        self._last_alive = {}
        self._stop = threading.Event()
        self._thread = None
        self._held = []
        self._sync_lock = threading.Lock()  # one sync at a time, and none while going down or up
        self.down = False
        self._sink = None  # keep_old_worker's TCP sink server
        self._kept = []  # its connections through HAProxy, oldest first
        self._last_trickle = 0.0
        self.extra_services = []

    @property
    def url(self):
        """The stats URL zdd's -l takes."""
        return self.haproxy.stats_url

    def services(self):
        request = urllib.request.Request(self.marathon_url + "/v2/apps?embed=apps.tasks",
                                         headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=MARATHON_TIMEOUT_S) as response:
            apps = json.load(response)["apps"]
        return mlb.services_from_apps(apps, self.resolve, self._last_alive) + list(self.extra_services)

    def sync_once(self):
        """Render from Marathon's current state; reload when the config changed. True when it reloaded."""
        with self._sync_lock:
            if self.down:
                return False
            config = self.haproxy.render(self.services())
            if self.haproxy.process is None:
                self.haproxy.start(config)
                self._after_reload()
                return True
            if self.haproxy.reload(config):
                self.reloads += 1
                self._after_reload()
                return True
            return False

    def start(self):
        self.sync_once()
        self._thread = threading.Thread(target=self._run, name="marathon-lb-%s" % self.haproxy.bind_ip, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(SYNC_INTERVAL_S):
            self._trickle()
            if self.paused:
                continue
            try:
                self.sync_once()
            except Exception:  # a Marathon hiccup or a refused config: try again next round
                self.sync_errors += 1

    # -- fault knobs

    def go_down(self):
        """Stop HAProxy (connections refused) and syncing, until come_up()."""
        with self._sync_lock:
            self.down = True
            self._drop_kept(keep=0)
            self.haproxy.stop_for_restart()

    def come_up(self):
        """Start HAProxy again from Marathon's current state; syncing resumes."""
        with self._sync_lock:
            self.haproxy.start(self.haproxy.render(self.services()))
            self.down = False
            self._after_reload()

    def garble_stats(self, text=STATS_GARBAGE):
        """Serve ``text`` instead of the stats CSV (None: the real CSV again); applied by a reload now."""
        self.haproxy.stats_garbage = text
        self.sync_once()

    def keep_old_worker(self, on=True):
        """Keep the previous HAProxy worker alive after every reload (see the module docstring)."""
        with self._sync_lock:
            if on and self._sink is None:
                self._sink = _Sink((self.haproxy.bind_ip, 0))
                threading.Thread(target=self._sink.serve_forever, kwargs={"poll_interval": 0.1},
                                 name="marathon-lb-sink", daemon=True).start()
                hold_port = free_port(self.haproxy.bind_ip)
                self.haproxy.hold = (hold_port, self._sink.server_address[1])
            elif not on and self._sink is not None:
                self._drop_kept(keep=0)
                self.haproxy.hold = None
                self._sink.shutdown()
                self._sink.server_close()
                self._sink = None
        self.sync_once()

    def _after_reload(self):
        """With keep_old_worker: a held connection on the new worker; only the previous worker's stays."""
        if self.haproxy.hold is None:
            return
        time.sleep(0.1)  # the old worker has stopped accepting
        connection = socket.create_connection((self.haproxy.bind_ip, self.haproxy.hold[0]), timeout=5)
        connection.sendall(b".")
        self._kept.append(connection)
        self._drop_kept(keep=2)

    def _drop_kept(self, keep):
        while len(self._kept) > keep:
            self._kept.pop(0).close()

    def _trickle(self):
        now = time.monotonic()
        if not self._kept or now - self._last_trickle < TRICKLE_INTERVAL_S:
            return
        self._last_trickle = now
        for connection in list(self._kept):
            try:
                connection.sendall(b".")
            except OSError:
                pass

    def hold_old_worker(self, port):
        """Open a client connection to a frontend and keep it, so a reload leaves an old worker behind."""
        connection = socket.create_connection((self.haproxy.bind_ip, port), timeout=5)
        # a request that never completes keeps the old worker busy after a reload
        connection.sendall(b"GET / HTTP/1.1\r\nHost: sandbox\r\n")
        self._held.append(connection)
        return connection

    def release_old_worker(self):
        for connection in self._held:
            connection.close()
        self._held = []

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.release_old_worker()
        self._drop_kept(keep=0)
        if self._sink is not None:
            self._sink.shutdown()
            self._sink.server_close()
            self._sink = None
        self.haproxy.stop()

    def wait_synced(self, timeout_s=30):
        """Wait until one sync round changes nothing (HAProxy shows Marathon's state)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            config = self.haproxy.render(self.services())
            if config == self.haproxy.config_text:
                return
            time.sleep(SYNC_INTERVAL_S)
        raise TimeoutError("marathon-lb at %s did not catch up with Marathon" % self.haproxy.bind_ip)


class _SinkHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(None)
        try:
            while self.request.recv(4096):
                pass
        except OSError:
            pass


class _Sink(socketserver.ThreadingTCPServer):
    """Accepts connections and reads until they close: the far end of keep_old_worker's connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address):
        super().__init__(address, _SinkHandler)


