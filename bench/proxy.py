"""A counting TCP proxy on loopback: how many connections and HTTP requests a client opens and sends.

Requests are counted by the blank line that ends each request's headers
(``\\r\\n\\r\\n`` from client to server), which is exact for zdd's traffic:
GETs without bodies and writes whose JSON bodies hold no raw CRLF. Each
request line is also counted by its path (``paths``), so the marathon-lb
reads can be split into ``/_haproxy_getpids`` and the stats (``requests_to``).
"""

import collections
import re
import socket
import threading

END_OF_HEADERS = b"\r\n\r\n"
REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|PATCH) (\S+) HTTP/1\.[01]$")


class CountingProxy:
    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.connections = 0
        self.requests = 0
        self.paths = collections.Counter()  # request path (query included) -> requests
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = []
        self._sockets = []

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._listener.getsockname()[1]

    def requests_to(self, path):
        """Requests to ``path``, or to ``path`` with more ``;`` parameters (zdd's stats read adds a scope)."""
        with self._lock:
            return sum(count for found, count in self.paths.items() if found == path or found.startswith(path + ";"))

    def start(self):
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self):
        self._stop.set()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def _accept(self):
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            upstream = socket.create_connection(self.target, timeout=30)
            self._sockets += [client, upstream]
            with self._lock:
                self.connections += 1
            for source, sink, counting in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pipe, args=(source, sink, counting), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pipe(self, source, sink, counting):
        tail = b""
        partial_line = b""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if counting:
                    window = tail + data
                    *lines, partial_line = (partial_line + data).split(b"\r\n")
                    found = [match.group(2).decode("latin-1") for match in map(REQUEST_LINE.search, lines) if match]
                    with self._lock:
                        self.requests += window.count(END_OF_HEADERS)
                        self.paths.update(found)
                    tail = window[-3:]
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            source.close()  # each direction closes its source: both sockets end closed, no descriptor kept
