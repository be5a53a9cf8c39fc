"""A fake marathon-lb stats endpoint for unit tests.

``FakeMarathonLB(sim)`` serves, on 127.0.0.1:0 (or ``host="::1"``):

* ``GET /haproxy?stats;csv``: what HAProxy 2.6 would show for the services
  marathon-lb renders from the simulator's apps (read in process with
  ``sim.api_apps()``, turned into services by ``mlb.services_from_apps``):
  the ``stats`` proxy's rows, then per service a FRONTEND row, one row per
  server and a BACKEND row. The header is HAProxy 2.6.12's verbatim
  (``tests/fixtures/haproxy26_stats.csv``). A server is ``UP`` when its app
  has health checks (marathon-lb adds ``check``), ``no check`` when it has
  none (as HAProxy shows a server without ``check``), ``MAINT`` when draining.
  With ``;scope=<text>`` it keeps, as HAProxy 2.6 does, the rows of the
  proxies whose name contains the text's first 20 characters, ignoring case
  (FRONTEND, servers and BACKEND alike; ``stats`` too if it matches); a text
  with a character a proxy name cannot hold (``%``, ``/``, ...) is no scope.
* ``GET /_haproxy_getpids``: ``"<master> <worker>\\n"`` (plus extra PIDs while
  "reloading").

Knobs: ``extra_pids`` (list; non-empty = reloading), ``hold_sessions(server,
scur, qcur)`` / ``release_sessions()``, ``lag`` (serve the view of N stats
polls ago), ``stats_failure`` / ``pids_failure`` (``None``, ``"garbage"``,
``"500"``, ``"trickle"``: the real answer sent one byte every
``TRICKLE_GAP_S`` until the client hangs up, ``"bomb"``: 200 with
``bomb_size_bytes`` zero bytes gzip-compressed, as the simulator's faults of
those names; for getpids also ``"html"``, an error page answered 200, and
``"empty"``, an empty 200 body), ``stats_garble`` (``None`` or a kind of
``garble_stats``: the real page, changed), ``down()`` / ``up()`` (connection
refused while down),
``ignore_scope`` (answer the whole page whatever the scope, as an HAProxy
without scopes would), ``stats_paths`` (the path of every stats request,
query included), ``reload_on_stats(seconds)`` (each stats request starts a reload as it is
answered: getpids lists an extra PID for ``seconds`` of the
simulator's clock; the answered stats are the new worker's, no sessions on a
server it has put in MAINT, while the old worker may still route to it).
``serve_traffic(requests_per_s, error_rate, rtime_ms)`` (per-server counters
that grow with the simulator's clock and restart at 0 whenever the rendered
config changes, as a reloaded HAProxy worker's do).

``ProxiedMarathonLB(upstream)`` is the same fake in front of a real
marathon-lb (end-to-end tests): its stats page and PIDs are the upstream's,
changed by the same knobs (``stats_garble``, ``pids_failure``).

Each BACKEND row's ``lastchg`` is the current worker's age in whole seconds
of the simulator's clock, as HAProxy's: a new worker starts whenever the
rendered config changes (seen at a stats poll) and at each
``reload_on_stats`` reload. ``show_worker_age = False`` leaves the column
empty, as a stats page that does not show it.
"""

import http.server
import socket
import threading
import urllib.request

from tests.sandbox import mlb
from tests.sandbox.marathon import BOMB_SIZE_BYTES, SERVE_POLL_INTERVAL_S, TRICKLE_GAP_S, gzip_zeros, send_slowly

HAPROXY26_HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"
    "weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,"
    "rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,"
    "hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,"
    "lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,"
    "agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,"
    "conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,"
    "srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,"
    "need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,"
    "ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,"
    "h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,"
    "h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,"
    "h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,"
    "h1_spliced_bytes_in,h1_spliced_bytes_out,"
)
COLUMNS = HAPROXY26_HEADER[2:].rstrip(",").split(",")

# Rows captured from HAProxy 2.6.12 (see tests/fixtures/README.md); the fake
# fills in names, status, sessions and ids by column name.
_TEMPLATES = {
    "FRONTEND": "x,FRONTEND,,,0,0,100,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,1,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,"
                ",,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,"
                "0,0,0,0,0,0,",
    "server": "x,x,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,1,,,1,2,1,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,"
              ",,0,0,0,0,,,,,,,,,,,,,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,",
    "BACKEND": "x,BACKEND,0,0,0,0,10,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,1,0,,1,2,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,"
               "0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,"
               "0,0,0,0,0,0,0,0,0,0,0,0,0,0,",
}
DEFAULT_PIDS = (4001, 4002)
ERROR_PAGE = "<html><body><h1>503</h1></body></html>\n"  # one word: the old count read 1 PID
# What garble_stats does to a page
STATS_GARBLES = ("no-scur", "scur-dash", "scur-empty", "no-status", "maint-listed-up", "other-backends", "5xx-dash")


def garble_stats(text, kind, backend=None):
    """The stats CSV ``text`` changed as a broken or hostile page would be, by ``kind``.

    ``no-scur``: the scur column gone from the header and every row;
    ``scur-dash`` / ``scur-empty`` / ``no-status``: the server rows' scur
    ``-``, scur empty, status empty; ``maint-listed-up``: each server row in
    MAINT followed by a second row for the same server, UP with 3 sessions;
    ``other-backends``: every row of the other proxies broken (scur ``-``,
    status empty, cut short); ``5xx-dash``: the server rows' hrsp_5xx ``-``.
    ``backend``: the proxy whose server rows are changed (None: every proxy's).
    """
    if kind not in STATS_GARBLES:
        raise ValueError("unknown stats garble %r" % kind)
    lines = text.splitlines()
    columns = lines[0].lstrip("# ").rstrip(",").split(",")
    scur, status, hrsp_5xx = columns.index("scur"), columns.index("status"), columns.index("hrsp_5xx")
    out = []
    for line in lines:
        fields = line.split(",")
        server = not line.startswith("#") and fields[1] not in ("FRONTEND", "BACKEND")
        ours = server and backend in (None, fields[0])
        if kind == "no-scur":
            del fields[scur]
        elif kind in ("scur-dash", "scur-empty", "no-status") and ours:
            fields[status if kind == "no-status" else scur] = "-" if kind == "scur-dash" else ""
        elif kind == "5xx-dash" and ours:
            fields[hrsp_5xx] = "-"
        elif kind == "other-backends" and not line.startswith("#") and fields[0] != backend:
            fields[scur], fields[status] = "-", ""
            fields = fields[:status + 1]
        out.append(",".join(fields))
        if kind == "maint-listed-up" and ours and fields[status] == "MAINT":
            twin = list(fields)
            twin[status], twin[scur] = "UP", "3"
            out.append(",".join(twin))
    return "\n".join(out) + "\n"


def garble_pids(kind):
    """A ``/_haproxy_getpids`` answer that is not a list of PIDs: ``"html"`` an error page, ``"empty"`` nothing."""
    return {"html": ERROR_PAGE, "empty": ""}[kind]
SCOPE_MAX = 20  # HAProxy 2.6's STAT_SCOPE_TXT_MAXLEN
SCOPE_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:")  # a proxy name's


def _template(kind):
    return dict(zip(COLUMNS, _TEMPLATES[kind].rstrip(",").split(",")))


def _row(values):
    return ",".join(str(values.get(column, "")) for column in COLUMNS) + ","


def render_stats_csv(services, sessions=None, counters=None, worker_age_s=1):
    """HAProxy 2.6's ``;csv`` page for ``services``.

    ``sessions``: server name -> (scur, qcur); ``counters``: server name ->
    {column: value} for the per-server counters (stot, hrsp_5xx, rtime, ...);
    ``worker_age_s``: the BACKEND rows' lastchg ("" to leave it out).
    """
    sessions = sessions or {}
    counters = counters or {}
    lines = [HAPROXY26_HEADER]
    proxies = [("stats", "http", ())] + [(service.name, service.mode, service) for service in services]
    for iid, (name, mode, service) in enumerate(proxies, start=1):
        frontend = _template("FRONTEND")
        frontend.update(pxname=name, iid=iid, mode=mode)
        lines.append(_row(frontend))
        up_servers = 0
        for sid, server in enumerate(getattr(service, "servers", ()), start=1):
            row = _template("server")
            scur, qcur = sessions.get(server.name, (0, 0))
            row.update(pxname=name, svname=server.name, iid=iid, sid=sid, scur=scur, qcur=qcur, mode=mode)
            row.update(counters.get(server.name, {}))
            if server.draining:
                row["status"] = "MAINT"
            elif service.checked:
                row.update(status="UP", check_status="L7OK", check_code=200, check_duration=0,
                           check_desc="Layer7 check passed", check_rise=2, check_fall=3, check_health=4)
            up_servers += 0 if server.draining else 1
            lines.append(_row(row))
        backend = _template("BACKEND")
        backend.update(pxname=name, iid=iid, mode=mode, act=up_servers, weight=up_servers, lastchg=worker_age_s,
                       status="UP" if up_servers or name == "stats" else "DOWN")
        lines.append(_row(backend))
    return "\n".join(lines) + "\n"


def stats_scope(query):
    """The scope HAProxy 2.6 takes from a stats query (``stats;csv;scope=web_10000``), or None.

    It reads up to ``;``, ``&`` or a space, keeps the first 20 characters, does
    not decode them, and takes no scope when one is not a proxy name's character.
    """
    _, found, rest = query.partition("scope=")
    if not found:
        return None
    text = rest.split(";")[0].split("&")[0].split(" ")[0][:SCOPE_MAX]
    return text if text and set(text) <= SCOPE_CHARACTERS else None


def scoped(text, scope):
    """``text`` (a stats CSV page) with only the rows of proxies whose name contains ``scope``, ignoring case."""
    if scope is None:
        return text
    scope = scope.lower()
    return "".join(line for line in text.splitlines(keepends=True)
                   if line.startswith("#") or scope in line.split(",", 1)[0].lower())


class _DualStackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _V6Server(_DualStackServer):
    address_family = socket.AF_INET6


class FakeMarathonLB:
    """marathon-lb's stats endpoint over a MarathonSim, in process."""

    def __init__(self, sim, host="127.0.0.1", resolve=mlb.resolve_host, pids=DEFAULT_PIDS):
        self.sim = sim
        self.host = host
        self.resolve = resolve
        self.pids = list(pids)
        self.extra_pids = []
        self.lag = 0
        self.stats_failure = None
        self.pids_failure = None
        self.stats_garble = None
        self.backend = None  # the proxy stats_garble changes (None: all)
        self.bomb_size_bytes = BOMB_SIZE_BYTES
        self.stats_polls = 0
        self.stats_paths = []
        self.ignore_scope = False
        self.pid_polls = 0
        self.reload_s = None  # reload_on_stats
        self.reloads_left = None
        self._reload_when = None
        self._reload_until = None
        self.reloads_started = 0
        self.show_worker_age = True
        # (no simulator: a ProxiedMarathonLB, whose pages and worker ages are the real upstream's)
        self._worker_started = sim.clock.monotonic() if sim is not None else None
        self.worker_starts = [self._worker_started]  # when each worker started, on the simulator's clock
        self._sessions = {}
        self._history = []
        self._last_alive = {}
        self._traffic = None  # (requests per second per server, {app id: error share}, {app id: rtime ms})
        self._served = {}  # server name -> [requests, failures] counted by the current "worker"
        self._config = None  # the servers (and their draining) the current worker was started with
        self._counted_at = None
        self.reloads = 0
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        self._port = 0

    # ---- knobs

    def hold_sessions(self, server, scur=1, qcur=0):
        """Keep sessions on a server: MAINT but not drained while scur/qcur > 0."""
        with self._lock:
            self._sessions[server] = (scur, qcur)

    def release_sessions(self, server=None):
        with self._lock:
            if server is None:
                self._sessions.clear()
            else:
                self._sessions.pop(server, None)

    def reload_on_stats(self, seconds, times=None, when=None):
        """The next ``times`` stats requests (None: all) each start a reload of ``seconds``; None: no more.

        ``when``: a callable; a stats request starts a reload only while it returns true.
        """
        with self._lock:
            self.reload_s, self.reloads_left, self._reload_when = seconds, times, when

    def _start_reload(self):
        if self._reload_when is not None and not self._reload_when():
            return
        with self._lock:
            if self.reload_s is None or self.reloads_left == 0:
                return
            self._reload_until = self.sim.clock.monotonic() + self.reload_s
            self._worker_started = self.sim.clock.monotonic()
            self.worker_starts.append(self._worker_started)
            self.reloads_started += 1
            if self.reloads_left is not None:
                self.reloads_left -= 1

    def current_pids(self):
        """What getpids lists now: the resting PIDs, plus extra ones while reloading."""
        with self._lock:
            reloading = self._reload_until is not None and self.sim.clock.monotonic() < self._reload_until
        return list(self.pids) + list(self.extra_pids) + ([4099] if reloading else [])
    def serve_traffic(self, requests_per_s, error_rate=None, rtime_ms=None):
        """Count traffic: each routed server serves ``requests_per_s`` (on the simulator's clock).

        ``error_rate`` ({app id: share}) of an app's requests answer 5xx;
        ``rtime_ms`` ({app id: ms}) is its servers' rtime. A server in MAINT
        gets no new requests. The counters restart at 0 when the rendered
        config changes: marathon-lb reloads HAProxy, and the new worker counts
        from zero.
        """
        with self._lock:
            self._traffic = (requests_per_s, dict(error_rate or {}), dict(rtime_ms or {}))

    def _count_traffic(self, services):
        now = self.sim.clock.monotonic()
        config = tuple((service.name, tuple((server.name, server.draining) for server in service.servers))
                       for service in services)
        elapsed_s = 0.0 if self._counted_at is None else now - self._counted_at
        self._counted_at = now
        if config != self._config:
            # a reload since the last poll; the new worker is taken to have started just after that poll
            if self._config is not None:
                self.reloads += 1
                self._worker_started = now
                self.worker_starts.append(now)
            self._config, self._served = config, {}
        if self._traffic is None:
            return {}
        requests_per_s, error_rate, rtime_ms = self._traffic
        counters = {}
        for service in services:
            for server in service.servers:
                served = self._served.setdefault(server.name, [0.0, 0.0])
                if not server.draining:
                    served[0] += requests_per_s * elapsed_s
                    served[1] += requests_per_s * elapsed_s * error_rate.get(server.app_id, 0.0)
                requests, failures = int(served[0]), int(served[1])
                counters[server.name] = {"stot": requests, "lbtot": requests, "hrsp_5xx": failures,
                                         "hrsp_2xx": requests - failures,
                                         "rtime": int(rtime_ms.get(server.app_id, 0)) if requests else 0}
        return counters

    def services(self):
        """The services marathon-lb would render right now."""
        return mlb.services_from_apps(self.sim.api_apps(embed_tasks=True), self.resolve, self._last_alive)

    def stats_csv(self):
        """One stats poll: the current view (or a lagging one), as CSV text."""
        with self._lock:
            self.stats_polls += 1
            services = self.services()
            counters = self._count_traffic(services)
            age = int(self.sim.clock.monotonic() - self._worker_started) if self.show_worker_age else ""
            self._history.append(render_stats_csv(services, dict(self._sessions), counters, age))
            del self._history[:-(max(0, self.lag) + 1)]
            return self._history[0]

    # ---- lifecycle

    def start(self):
        lb = self

        class Handler(_Handler):
            fake = lb

        server_class = _V6Server if ":" in self.host else _DualStackServer
        self._server = server_class((self.host, self._port), Handler)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": SERVE_POLL_INTERVAL_S}, name="fake-marathon-lb",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def down(self):
        """Stop listening: connections are refused until up()."""
        self.stop()

    def up(self):
        """Listen again on the same port."""
        if self._server is None:
            self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d" % (host, self._port)


class _Handler(http.server.BaseHTTPRequestHandler):
    fake = None
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def _send(self, status, text, content_type="text/plain", failure=None):
        """Answer ``text``; a "trickle" ``failure`` sends it slowly, a "bomb" sends zeros, gzip-compressed."""
        data = text.encode()
        encoding = {}
        if failure == "bomb":
            data, encoding = gzip_zeros(self.fake.bomb_size_bytes), {"Content-Encoding": "gzip"}
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in encoding.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            if failure == "trickle":
                send_slowly(self.wfile, data, TRICKLE_GAP_S, lambda: self.fake._server is None)
            else:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            self.close_connection = True

    def _failed(self, failure):
        if failure in ("500", 500):
            self._send(500, "<html><body><h1>500 Internal Server Error</h1></body></html>\n", "text/html")
            return True
        if failure == "garbage":
            self._send(200, "\x00\x01 this is not what you expected ;;;\n<<<>>>\n")
            return True
        if failure in ("html", "empty"):
            self._send(200, garble_pids(failure), "text/html" if failure == "html" else "text/plain")
            return True
        return False

    def do_GET(self):
        fake = self.fake
        path, _, query = self.path.partition("?")
        if path == "/haproxy" and query.split(";")[0] == "stats" and "csv" in query.split(";")[1:]:
            fake.stats_paths.append(self.path)
            if not self._failed(fake.stats_failure):
                fake._start_reload()  # before the answer: a later getpids sees it; the page is the new worker's
                text = fake.stats_csv()
                if fake.stats_garble is not None:
                    text = garble_stats(text, fake.stats_garble, fake.backend)
                text = scoped(text, None if fake.ignore_scope else stats_scope(query))
                self._send(200, text, "text/csv", failure=fake.stats_failure)
        elif path == "/_haproxy_getpids":
            fake.pid_polls += 1
            if not self._failed(fake.pids_failure):
                self._send(200, " ".join(str(pid) for pid in fake.current_pids()) + "\n", failure=fake.pids_failure)
        else:
            self._send(404, "<html><body><h1>404 Not Found</h1></body></html>\n", "text/html")


UPSTREAM_TIMEOUT_S = 2.0


class ProxiedMarathonLB(FakeMarathonLB):
    """The fake's knobs in front of a real marathon-lb at ``upstream`` (its stats URL), for end-to-end tests."""

    def __init__(self, upstream):
        super().__init__(sim=None)
        self.upstream = upstream.rstrip("/")

    def _read(self, path):
        with urllib.request.urlopen(self.upstream + path, timeout=UPSTREAM_TIMEOUT_S) as reply:
            return reply.read().decode()

    def stats_csv(self):
        with self._lock:
            self.stats_polls += 1
        return self._read("/haproxy?stats;csv")

    def current_pids(self):
        return self._read("/_haproxy_getpids").split()
