"""A real HAProxy, configured and reloaded the way marathon-lb does it.

``render_config()`` turns services into marathon-lb's config: its defaults, a
stats listener with ``/_haproxy_getpids`` served by Lua, one frontend and one
backend per service, ``disabled`` on draining servers. ``HAProxyInstance``
runs ``haproxy -W`` (master-worker) in its own session and reloads it
seamlessly: server states saved with ``show servers state``, listening
sockets handed over through the stats socket (``-x``), SIGUSR2 to the master.

How ``/_haproxy_getpids`` finds this instance's PIDs: the Lua service runs in
a worker; the worker's parent (``/proc/self/stat``) is its master; the
master's children (``/proc/<master>/task/<master>/children``) are the current
worker and every old worker still finishing connections. The answer is the
master PID followed by those children, so another HAProxy on the machine,
with its own master, never counts.
"""

import atexit
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

from tests.sandbox.ports import free_port

SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # where a package puts haproxy, off a user's PATH
START_TIMEOUT_S = 10.0
RELOAD_TIMEOUT_S = 10.0
STOP_GRACE_S = 3.0
SOCKET_TIMEOUT_S = 3.0
UNIX_PATH_MAX = 97  # HAProxy 2.6 refuses longer socket paths ("too long (max 97)"), below sun_path's 108 bytes

GETPIDS_LUA = """\
-- /_haproxy_getpids without a fork: the master PID of this HAProxy, then its
-- workers (the current one and the old ones still finishing connections),
-- all read from /proc. For HAProxy run in master-worker mode (-W).

local function read_all(path)
  local file = io.open(path, "r")
  if file == nil then return nil end
  local text = file:read("a")
  file:close()
  return text
end

local function parent_and_name(pid)
  local stat = read_all("/proc/" .. pid .. "/stat")
  if stat == nil then return nil, nil end
  -- "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  local name, ppid = stat:match("^%d+ %((.*)%) %S+ (%d+)")
  return ppid, name
end

local function instance_pids()
  local own = read_all("/proc/self/stat"):match("^(%d+)")
  local master, _ = parent_and_name(own)
  local _, master_name = parent_and_name(master)
  if os.getenv("HAPROXY_MWORKER") == nil or master_name ~= "haproxy" then
    return { own }
  end
  local pids = { master }
  local children = read_all("/proc/" .. master .. "/task/" .. master .. "/children") or own
  for child in children:gmatch("%d+") do
    local _, name = parent_and_name(child)
    if name == "haproxy" then table.insert(pids, child) end
  end
  return pids
end

core.register_service("getpids", "http", function(applet)
  local body = table.concat(instance_pids(), " ") .. "\\n"
  applet:set_status(200)
  applet:add_header("content-type", "text/plain")
  applet:add_header("content-length", string.len(body))
  applet:start_response()
  applet:send(body)
end)
"""

# The way marathon-lb's getpids.lua answers, as far as the traffic can tell:
# it runs "pidof haproxy" through io.popen, a fork (and an exec of /bin/sh)
# from inside the multi-threaded worker, and waits for the command to end.
# The child inherits every socket of the worker for as long as it runs, which
# is what cuts requests (BENCHMARKS.rst, 'getpids under load'); the same
# command forked the same way cuts as many. Its answer is not used: on a
# machine shared by several HAProxy instances "pidof" lists them all, so the
# PIDs come from /proc as in the fork-free Lua above.
GETPIDS_POPEN_LUA = GETPIDS_LUA.split("\n\n", 1)[1].split("core.register_service")[0] + """\
-- /_haproxy_getpids through a forked command, as marathon-lb's getpids.lua.

core.register_service("getpids", "http", function(applet)
  local pipe = io.popen("pidof haproxy", "r")
  pipe:read("a")
  pipe:close()
  local body = table.concat(instance_pids(), " ")
  applet:set_status(200)
  applet:add_header("content-length", string.len(body))
  applet:add_header("content-type", "text/plain")
  applet:start_response()
  applet:send(body)
end)
"""
GETPIDS_KINDS = {"proc": GETPIDS_LUA, "popen": GETPIDS_POPEN_LUA}
HEADS = ("sandbox", "marathon-lb")


def find_haproxy(environ=None):
    """The haproxy to run: $ZDD_SANDBOX_HAPROXY, else the first on PATH, else one in an sbin directory; or None."""
    environ = os.environ if environ is None else environ
    if environ.get("ZDD_SANDBOX_HAPROXY"):
        return environ["ZDD_SANDBOX_HAPROXY"]
    return (shutil.which("haproxy", path=environ.get("PATH", os.defpath))
            or shutil.which("haproxy", path=os.pathsep.join(SBIN_DIRS)))


# ---------------------------------------------------------------- config


@dataclasses.dataclass
class Server:
    """Stand-in for mlb.py's server: one task behind a backend."""

    name: str
    ip: str
    port: int
    draining: bool = False


@dataclasses.dataclass
class Service:
    """Stand-in for mlb.py's service: one frontend port and its servers."""

    name: str
    port: int
    servers: List[Server] = dataclasses.field(default_factory=list)
    mode: str = "http"
    checked: bool = False  # servers carry ``check`` (the app has health checks)
    health_check_path: Optional[str] = None  # ``option httpchk GET <path>``


def render_config(services, stats_port, bind_ip, state_file, socket_path, lua_path, stats_garbage=None,
                  hold=None, head="sandbox", nbthread=None, ignore_scope=False):
    """The haproxy.cfg marathon-lb would write for ``services``.

    ``head="marathon-lb"`` leaves out the one line the sandbox adds to
    marathon-lb's defaults (below); ``nbthread`` sets HAProxy's thread count
    (None: HAProxy's default, one thread per CPU, as marathon-lb leaves it).

    Two fault knobs for the sandbox's failure tests, off by default:
    ``stats_garbage`` (a text) makes the stats listener answer the CSV page
    (``/haproxy?stats;csv``) with that text as ``200 text/html``, through an
    ``http-request return`` rule, as a stats URL that reaches the wrong page
    would; ``hold`` (``(port, sink_port)``) adds a TCP listener on ``port``
    that forwards to ``bind_ip:sink_port``, so a long-lived connection
    through it keeps an old worker alive after a reload.
    ``ignore_scope``: the stats listener drops a ``;scope=`` from the query
    (``http-request set-query``), answering the whole page as an HAProxy
    without scopes would.

    One addition to marathon-lb's defaults (``head="sandbox"``): ``option idle-close-on-response``.
    Without it, HAProxy 2.4+ makes an old worker close idle keep-alive client
    connections the moment a reload starts, so a request a client writes at
    that very instant is lost (RFC 9112 lets clients retry it; many do not).
    With it, the old worker answers the next request on each idle connection
    with ``Connection: close``, as HAProxy did before 2.4; ``timeout
    http-keep-alive 1s`` still bounds how long the old worker lives. Add the
    same line to marathon-lb's HAPROXY_HEAD for reloads without such errors.
    """
    lines = [
        "# written by the zdd sandbox, shaped like marathon-lb's",
        "global",
        "  lua-load %s" % lua_path,
        "  stats socket %s mode 600 level admin expose-fd listeners" % socket_path,
        "  stats timeout 2m",
        "  server-state-file %s" % state_file,
        *(["  nbthread %d" % nbthread] if nbthread else []),
        "",
        "defaults",
        "  load-server-state-from-file global",
        "  retries 3",
        "  backlog 10000",
        "  maxconn 10000",
        "  timeout connect 3s",
        "  timeout client 30s",
        "  timeout server 30s",
        "  timeout tunnel 3600s",
        "  timeout http-keep-alive 1s",
        "  timeout http-request 15s",
        "  timeout queue 30s",
        "  timeout tarpit 60s",
        "  option redispatch",
        "  option http-server-close",
        "  option dontlognull",
        *(["  option idle-close-on-response"] if head == "sandbox" else []),
        "",
        "listen stats",
        "  bind %s:%d" % (bind_ip, stats_port),
        "  balance",
        "  mode http",
        "  stats enable",
        "  monitor-uri /_haproxy_health_check",
        "  acl getpid path /_haproxy_getpids",
        "  http-request use-service lua.getpids if getpid",
        "  stats uri /haproxy?stats",
        "",
    ]
    if stats_garbage is not None:
        text = stats_garbage.replace("\\", "\\\\").replace('"', '\\"').replace("$", "")
        lines[-1:-1] = ['  http-request return status 200 content-type "text/html" string "%s" '
                        'if { path /haproxy } { query -m sub csv }' % text]
    if ignore_scope:
        lines[-1:-1] = ["  http-request set-query stats;csv if { path /haproxy } { query -m sub scope= }"]
    if hold is not None:
        lines += [
            "listen zdd_sandbox_hold",
            "  bind %s:%d" % (bind_ip, hold[0]),
            "  mode tcp",
            "  server sink %s:%d" % (bind_ip, hold[1]),
            "",
        ]
    for service in services:
        mode = getattr(service, "mode", "http")
        checked = getattr(service, "checked", False)
        health_path = getattr(service, "health_check_path", None)
        lines += [
            "frontend %s" % service.name,
            "  bind %s:%d" % (bind_ip, service.port),
            "  mode %s" % mode,
            "  use_backend %s" % service.name,
            "",
            "backend %s" % service.name,
            "  balance roundrobin",
            "  mode %s" % mode,
        ]
        if mode == "http":
            lines += [
                "  option forwardfor",
                "  http-request set-header X-Forwarded-Port %[dst_port]",
                "  http-request add-header X-Forwarded-Proto https if { ssl_fc }",
            ]
            if health_path:
                lines.append("  option httpchk GET %s" % health_path)
        for server in service.servers:
            line = "  server %s %s:%d" % (server.name, server.ip, server.port)
            if checked or health_path:
                line += " check inter 1s fall 2 rise 1"
            if server.draining:
                line += " disabled"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- the process


class HAProxyError(Exception):
    """HAProxy refused a config, or did not start or reload in time."""


def unix_command(path, command, timeout_s=SOCKET_TIMEOUT_S):
    """Send one command to an HAProxy CLI socket and return the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout_s)
        connection.connect(str(path))
        connection.sendall(command.encode() + b"\n")
        # The master CLI keeps the connection open until we stop writing.
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode()


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def _is_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class HAProxyInstance:
    """One HAProxy master-worker process tree, like the one in a marathon-lb container."""

    def __init__(self, workdir, bind_ip="127.0.0.1", stats_port=None, haproxy_bin=None, getpids="proc",
                 head="sandbox", nbthread=None):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bind_ip = bind_ip
        self.stats_port = stats_port or free_port(bind_ip)
        self.haproxy_bin = haproxy_bin or find_haproxy()
        if self.haproxy_bin is None:
            raise HAProxyError("HAProxy is not installed (python -m tests.sandbox.ensure_haproxy)")
        self.config_path = self.workdir / "haproxy.cfg"
        self.pid_file = self.workdir / "haproxy.pid"
        self.state_file = self.workdir / "haproxy.state"
        self.lua_path = self.workdir / "getpids.lua"
        self.log_path = self.workdir / "haproxy.log"
        socket_dir = self.workdir
        if len(str(socket_dir / "master.sock")) > UNIX_PATH_MAX:
            socket_dir = Path(tempfile.mkdtemp(prefix="zdd-hap-"))
        self.stats_socket = socket_dir / "stats.sock"
        self.master_socket = socket_dir / "master.sock"
        if getpids not in GETPIDS_KINDS or head not in HEADS:
            raise ValueError("getpids is one of %s, head one of %s" % (sorted(GETPIDS_KINDS), HEADS))
        self.getpids_kind, self.head, self.nbthread = getpids, head, nbthread
        self.lua_path.write_text(GETPIDS_KINDS[getpids])
        if not self.state_file.exists():
            self.state_file.write_text("")
        self.config_text = None
        self.stats_garbage = None  # render_config's knobs
        self.hold = None
        self.ignore_scope = False
        self.extra_services = []  # served beside the ones render() is given (another app's proxies)
        self.process: Optional[subprocess.Popen] = None
        self.reload_durations_s: List[float] = []
        self._log_file = None
        self._watchdog: Optional[subprocess.Popen] = None

    # -- addresses

    @property
    def stats_url(self):
        host = "[%s]" % self.bind_ip if ":" in self.bind_ip else self.bind_ip
        return "http://%s:%d" % (host, self.stats_port)

    @property
    def stats_csv_url(self):
        return self.stats_url + "/haproxy?stats;csv"

    @property
    def getpids_url(self):
        return self.stats_url + "/_haproxy_getpids"

    def render(self, services):
        """This instance's config for ``services``."""
        return render_config(list(services) + list(self.extra_services), self.stats_port, self.bind_ip,
                             self.state_file, self.stats_socket, self.lua_path, stats_garbage=self.stats_garbage,
                             hold=self.hold, head=self.head, nbthread=self.nbthread, ignore_scope=self.ignore_scope)

    # -- lifecycle

    def check_config(self, config_text):
        """Raise HAProxyError unless HAProxy accepts ``config_text``."""
        candidate = self.workdir / "haproxy.cfg.new"
        candidate.write_text(config_text)
        result = subprocess.run([self.haproxy_bin, "-c", "-q", "-f", str(candidate)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if result.returncode != 0:
            raise HAProxyError("haproxy rejects the config: %s" % result.stdout.decode().strip())
        return candidate

    def start(self, config_text):
        """Start the master and its first worker; return once the stats port answers."""
        if self.process is not None:
            raise HAProxyError("already started")
        os.replace(self.check_config(config_text), self.config_path)
        self.config_text = config_text
        self._log_file = open(self.log_path, "ab")
        argv = [self.haproxy_bin, "-W", "-f", str(self.config_path), "-p", str(self.pid_file),
                "-S", str(self.master_socket), "-x", str(self.stats_socket)]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)
        self._start_watchdog()
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not self._current_worker():
                self._wait_step(deadline, "start")
            while not self._stats_answers():
                self._wait_step(deadline, "start")
        except BaseException:
            self.stop()
            raise

    def _wait_step(self, deadline, what):
        if self.process.poll() is not None:
            raise HAProxyError("haproxy exited during %s (code %s), see %s"
                               % (what, self.process.returncode, self.log_path))
        if time.monotonic() > deadline:
            raise HAProxyError("haproxy %s timed out, see %s" % (what, self.log_path))
        time.sleep(0.02)

    def _start_watchdog(self):
        # Should this Python process die without running atexit (SIGKILL),
        # the watchdog notices its parent is gone and kills HAProxy's group.
        script = (
            "import os, signal, time\n"
            "parent, group = %d, %d\n"
            "while os.getppid() == parent:\n"
            "    time.sleep(0.5)\n"
            "for signum in (signal.SIGTERM, signal.SIGKILL):\n"
            "    try:\n"
            "        os.killpg(group, signum)\n"
            "    except ProcessLookupError:\n"
            "        break\n"
            "    time.sleep(1)\n" % (os.getpid(), self.process.pid)
        )
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", script, "zdd-sandbox-watchdog", str(self.workdir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _stats_answers(self):
        try:
            with urllib.request.urlopen(self.stats_url + "/_haproxy_health_check", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False

    def show_proc(self):
        """The master CLI's ``show proc``: (master, current workers, old workers) PIDs."""
        answer = unix_command(self.master_socket, "show proc")
        master, current, old = None, [], []
        section = None
        for line in answer.splitlines():
            if line.startswith("# workers"):
                section = current
            elif line.startswith("# old workers"):
                section = old
            elif line.startswith("#"):
                section = None
            elif line.strip():
                fields = line.split()
                if fields[1] == "master":
                    master = int(fields[0])
                elif section is not None and fields[1] == "worker":
                    section.append(int(fields[0]))
        return master, current, old

    def _current_worker(self):
        try:
            _, current, _ = self.show_proc()
        except OSError:
            return None
        return current[0] if current else None

    def save_server_state(self):
        """Write ``show servers state`` to the state file, as marathon-lb does before a reload."""
        state = unix_command(self.stats_socket, "show servers state")
        self.state_file.write_text(state)

    def reload(self, config_text):
        """Seamlessly reload with ``config_text``; False (and nothing done) when unchanged."""
        if config_text == self.config_text:
            return False
        if self.process is None or self.process.poll() is not None:
            raise HAProxyError("haproxy is not running")
        candidate = self.check_config(config_text)
        started = time.monotonic()
        old_worker = self._current_worker()
        try:
            self.save_server_state()
        except OSError:
            self.state_file.write_text("")
        os.replace(candidate, self.config_path)
        self.config_text = config_text
        os.kill(self.process.pid, signal.SIGUSR2)
        deadline = started + RELOAD_TIMEOUT_S
        while True:
            worker = self._current_worker()
            if worker is not None and worker != old_worker:
                break
            self._wait_step(deadline, "reload")
        self.reload_durations_s.append(time.monotonic() - started)
        return True

    def pids(self):
        """This instance's master PID and its live worker PIDs (current and old)."""
        if self.process is None or self.process.poll() is not None:
            return []
        master = self.process.pid
        return [master] + [pid for pid in _children(master) if _is_alive(pid)]

    def getpids(self):
        """What ``/_haproxy_getpids`` answers, as ints."""
        with urllib.request.urlopen(self.getpids_url, timeout=2) as reply:
            return [int(pid) for pid in reply.read().split()]

    def stats_csv(self, more=""):
        """The stats page as CSV text; ``more``: parameters after ``;csv`` (``";scope=web"``)."""
        with urllib.request.urlopen(self.stats_csv_url + more, timeout=2) as reply:
            return reply.read().decode()

    def stop(self):
        """Stop the master and every worker, old ones too; wait for them."""
        atexit.unregister(self.stop)
        if self.process is not None:
            group = self.process.pid
            if self.process.poll() is None:
                try:
                    os.killpg(group, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
            # Workers share the master's process group; take no chances.
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)
        if self._watchdog is not None:
            if self._watchdog.poll() is None:
                self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop_for_restart(self):
        """Stop every process, so connections are refused, and allow start() again."""
        self.stop()
        self.process = None
        self.config_text = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()
