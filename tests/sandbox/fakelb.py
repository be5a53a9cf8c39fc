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
* ``GET /_haproxy_getpids``: ``"<master> <worker>\\n"`` (plus extra PIDs while
  "reloading").

Knobs: ``extra_pids`` (list; non-empty = reloading), ``hold_sessions(server,
scur, qcur)`` / ``release_sessions()``, ``lag`` (serve the view of N stats
polls ago), ``stats_failure`` / ``pids_failure`` (``None``, ``"garbage"``,
``"500"``), ``down()`` / ``up()`` (connection refused while down),
``reload_on_stats(seconds)`` (each stats request starts a reload as it is
answered: getpids lists an extra PID for ``seconds`` of the
simulator's clock; the answered stats are the new worker's, no sessions on a
server it has put in MAINT, while the old worker may still route to it).
``serve_traffic(requests_per_s, error_rate, rtime_ms)`` (per-server counters
that grow with the simulator's clock and restart at 0 whenever the rendered
config changes, as a reloaded HAProxy worker's do).
"""

import http.server
import socket
import threading

from tests.sandbox import mlb
from tests.sandbox.marathon import SERVE_POLL_INTERVAL_S

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


def _template(kind):
    return dict(zip(COLUMNS, _TEMPLATES[kind].rstrip(",").split(",")))


def _row(values):
    return ",".join(str(values.get(column, "")) for column in COLUMNS) + ","


def render_stats_csv(services, sessions=None, counters=None):
    """HAProxy 2.6's ``;csv`` page for ``services``.

    ``sessions``: server name -> (scur, qcur); ``counters``: server name ->
    {column: value} for the per-server counters (stot, hrsp_5xx, rtime, ...).
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
        backend.update(pxname=name, iid=iid, mode=mode, act=up_servers, weight=up_servers,
                       status="UP" if up_servers or name == "stats" else "DOWN")
        lines.append(_row(backend))
    return "\n".join(lines) + "\n"


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
        self.stats_polls = 0
        self.pid_polls = 0
        self.reload_s = None  # reload_on_stats
        self.reloads_left = None
        self._reload_when = None
        self._reload_until = None
        self.reloads_started = 0
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
            self._history.append(render_stats_csv(services, dict(self._sessions), self._count_traffic(services)))
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

    def _send(self, status, text, content_type="text/plain"):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _failed(self, failure):
        if failure in ("500", 500):
            self._send(500, "<html><body><h1>500 Internal Server Error</h1></body></html>\n", "text/html")
            return True
        if failure == "garbage":
            self._send(200, "\x00\x01 this is not what you expected ;;;\n<<<>>>\n")
            return True
        return False

    def do_GET(self):
        fake = self.fake
        path, _, query = self.path.partition("?")
        if path == "/haproxy" and query.split(";")[0] == "stats" and "csv" in query.split(";")[1:]:
            if not self._failed(fake.stats_failure):
                text = fake.stats_csv()
                fake._start_reload()  # before the answer is sent: any later getpids request sees it
                self._send(200, text, "text/csv")
        elif path == "/_haproxy_getpids":
            fake.pid_polls += 1
            if not self._failed(fake.pids_failure):
                self._send(200, " ".join(str(pid) for pid in fake.current_pids()) + "\n")
        else:
            self._send(404, "<html><body><h1>404 Not Found</h1></body></html>\n", "text/html")
