"""A proxy in front of a marathon-lb's stats port that garbles its answers, for end-to-end tests.

``GarblingProxy(upstream).start()`` listens on 127.0.0.1 (a free port) and
forwards each GET to ``upstream`` (a marathon-lb's stats URL). Knobs:
``stats_garble`` (a kind of ``fakelb.garble_stats``) changes the stats CSV
page; ``pids_garble`` (``"html"``, ``"empty"``: ``fakelb.garble_pids``)
replaces the ``/_haproxy_getpids`` answer; ``None`` passes the answer
through. ``garbled`` counts the answers changed. An upstream that does not
answer gives 502.
"""

import http.server
import threading
import urllib.error
import urllib.request

from tests.sandbox.fakelb import garble_pids, garble_stats

UPSTREAM_TIMEOUT_S = 2.0


class GarblingProxy:
    def __init__(self, upstream):
        self.upstream = upstream.rstrip("/")
        self.stats_garble = None
        self.pids_garble = None
        self.garbled = 0
        self._server = None
        self._thread = None

    def start(self):
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="garbling-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._server.server_address[1]

    def answer(self, path):
        """(status, text) for a GET of ``path``: the upstream's answer, garbled as the knobs say."""
        try:
            with urllib.request.urlopen(self.upstream + path, timeout=UPSTREAM_TIMEOUT_S) as reply:
                status, text = reply.status, reply.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except OSError as exc:
            return 502, "upstream: %s\n" % exc
        stats_garble, pids_garble = self.stats_garble, self.pids_garble
        if status == 200 and path.startswith("/haproxy?stats") and stats_garble is not None:
            self.garbled += 1
            return status, garble_stats(text, stats_garble)
        if status == 200 and path.startswith("/_haproxy_getpids") and pids_garble is not None:
            self.garbled += 1
            return status, garble_pids(pids_garble)
        return status, text


class _Handler(http.server.BaseHTTPRequestHandler):
    owner = None
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        status, text = self.owner.answer(self.path)
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
