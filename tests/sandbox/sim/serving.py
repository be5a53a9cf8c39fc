"""The simulator over HTTP: its listening server (started, taken down, brought back, stopped) and the handler.

``Serving`` is the mixin of ``MarathonSim`` that owns the server and the background ticker; ``_Handler``
turns each HTTP request into one ``MarathonSim.handle`` call and writes the answer (slowly, or as a gzip
bomb, when a fault says so).
"""

import http.server
import json
import socket
import threading
import urllib.parse

from tests.sandbox.sim.faults import Bomb, Dropped, Trickled, gzip_zeros, send_slowly

REAL_CLOCK_TICK_S = 0.05
IDLE_CONNECTION_TIMEOUT_S = 5.0
# How often the HTTP server's loop looks for a stop request: stop() waits up to this long, and every unit
# test stops a simulator and a fake marathon-lb (at 0.05 s that was a third of the unit suite's wall time).
SERVE_POLL_INTERVAL_S = 0.005


class Serving:
    """The HTTP server of a ``MarathonSim`` (a mixin: uses its ``_lock``, ``tick``, ``launcher`` and the server fields
    set in ``MarathonSim.__init__``)."""

    # ---- lifecycle

    def start(self):
        """Start serving; returns self."""
        sim = self

        class Handler(_Handler):
            simulator = sim
            protocol_version = "HTTP/1.1" if sim.keep_alive else "HTTP/1.0"
            timeout = IDLE_CONNECTION_TIMEOUT_S  # an idle keep-alive connection is closed after this

            def setup(self):
                super().setup()
                with sim._lock:
                    sim.connections += 1

        self._handler = Handler
        self._listen(0)
        if self._background_tick:
            ticker = threading.Thread(target=self._tick_forever, name="marathon-sim-tick", daemon=True)
            ticker.start()
            self._threads.append(ticker)
        return self

    def _listen(self, port):
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": SERVE_POLL_INTERVAL_S},
                                 name="marathon-sim", daemon=True)
        serve.start()
        self._threads.append(serve)

    def go_down(self, for_s=None):
        """Refuse every connection (the listening socket is closed) until come_up(), or for ``for_s`` s."""
        with self._lock:
            server, self._server = self._server, None
            if self._down_timer is not None:
                self._down_timer.cancel()
            self._down_timer = None
            if for_s is not None:
                self._down_timer = threading.Timer(for_s, self.come_up)
                self._down_timer.daemon = True
                self._down_timer.start()
        if server is not None:
            server.shutdown()
            server.server_close()

    def come_up(self):
        """Listen again on the same port after go_down()."""
        with self._lock:
            if self._server is None and not self._stop_event.is_set():
                self._listen(self._port)

    def stop(self):
        """Stop the server and the ticker, and stop every task through the launcher."""
        self._stop_event.set()
        if self._down_timer is not None:
            self._down_timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self._server = None
        self.launcher.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._port

    def _tick_forever(self):
        while not self._stop_event.wait(REAL_CLOCK_TICK_S):
            self.tick()


class _Handler(http.server.BaseHTTPRequestHandler):
    simulator = None
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def _serve(self):
        parsed = urllib.parse.urlsplit(self.path)
        query = {key: values[-1] for key, values in
                 urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body_bytes = self.rfile.read(length) if length else b""
        try:
            if self.simulator._server is None:  # went down while this connection was open
                raise Dropped(self.command, parsed.path)
            status, payload, extra = self.simulator.handle(self.command, parsed.path, query, self.headers,
                                                           body_bytes)
        except Dropped:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        trickle_gap_s = None
        if isinstance(payload, Trickled):
            payload, trickle_gap_s = payload.payload, payload.gap_s
        if isinstance(payload, Bomb):
            data = gzip_zeros(payload.size_bytes)
            extra = dict(extra, **{"Content-Encoding": "gzip"})
        elif payload is None:
            data = b""
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        self.send_response(status)
        content_type = "text/plain" if isinstance(payload, str) else "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        try:
            self.end_headers()
            if self.command == "HEAD":
                pass
            elif trickle_gap_s is not None:
                send_slowly(self.wfile, data, trickle_gap_s, lambda: self.simulator._server is None)
            else:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a delayed answer)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve
