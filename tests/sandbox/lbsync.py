"""The marathon-lb stand-in: read Marathon, render HAProxy's config, reload a real HAProxy.

``MarathonLB`` polls ``GET /v2/apps?embed=apps.tasks`` of a Marathon (the
simulator, over HTTP, as marathon-lb polls the real one), turns the apps into
services with ``mlb.services_from_apps`` (group merge, draining, names), and
reloads its HAProxy only when the rendered config changed.

Fault knobs, for the sandbox's failure tests: ``paused`` (stop syncing, as a
marathon-lb that lost Marathon), ``hold_old_worker()`` (an open connection that
keeps an old HAProxy worker, so /_haproxy_getpids reports 3 PIDs).
"""

import json
import socket
import threading
import time
import urllib.request

from tests.sandbox import mlb
from tests.sandbox.haproxy import HAProxyInstance

SYNC_INTERVAL_S = 0.2
MARATHON_TIMEOUT_S = 5.0


class MarathonLB:
    """One marathon-lb instance: a real HAProxy on ``bind_ip`` kept in sync with Marathon."""

    def __init__(self, marathon_url, workdir, bind_ip="127.0.0.1", stats_port=None, resolve=mlb.resolve_host):
        self.marathon_url = marathon_url.rstrip("/")
        self.haproxy = HAProxyInstance(workdir, bind_ip=bind_ip, stats_port=stats_port)
        self.resolve = resolve
        self.paused = False
        self.reloads = 0
        self.sync_errors = 0
        self._last_alive = {}
        self._stop = threading.Event()
        self._thread = None
        self._held = []

    @property
    def url(self):
        """The stats URL zdd's -l takes."""
        return self.haproxy.stats_url

    def services(self):
        request = urllib.request.Request(self.marathon_url + "/v2/apps?embed=apps.tasks",
                                         headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=MARATHON_TIMEOUT_S) as response:
            apps = json.load(response)["apps"]
        return mlb.services_from_apps(apps, self.resolve, self._last_alive)

    def sync_once(self):
        """Render from Marathon's current state; reload when the config changed. True when it reloaded."""
        config = self.haproxy.render(self.services())
        if self.haproxy.process is None:
            self.haproxy.start(config)
            return True
        if self.haproxy.reload(config):
            self.reloads += 1
            return True
        return False

    def start(self):
        self.sync_once()
        self._thread = threading.Thread(target=self._run, name="marathon-lb-%s" % self.haproxy.bind_ip, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(SYNC_INTERVAL_S):
            if self.paused:
                continue
            try:
                self.sync_once()
            except Exception:  # a Marathon hiccup or a refused config: try again next round
                self.sync_errors += 1

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
