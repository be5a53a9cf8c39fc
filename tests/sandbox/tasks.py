"""Real task processes for the sandbox: a tiny HTTP server per Marathon task.

``python -m tests.sandbox.tasks serve --ip 127.0.0.1 --port P --app /nginx-green
--colour green --task-id ID`` runs one task. Fault knobs, read from the app's
labels so that they belong to one colour (one app version): SIM_SLOW_MS
delays every answer, SIM_ERROR_RATE (a share, 0 to 1) answers that share of
the requests with a 503, spread evenly (every fifth one for 0.2); the health
path is never slowed or failed, so Marathon's health checks pass. ``ProcessLauncher`` starts and
stops such processes for the Marathon simulator, each in its own session, so
that killing a task kills its whole process group and nothing outlives the
launcher.
"""

import argparse
import atexit
import dataclasses
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Optional

from tests.sandbox.ports import free_port, share  # noqa: F401 (tests import free_port from here too)
from tests.sandbox.sim.launch import DEFAULT_CHECK_TIMEOUT_S, FAILED_BY_LABEL, PASSED, Check, Placement, failed_by_label

REPO_ROOT = Path(__file__).resolve().parents[2]

LABEL_COLOUR = "HAPROXY_DEPLOYMENT_COLOUR"
LABEL_START_DELAY_S = "SIM_START_DELAY_S"
LABEL_SLOW_MS = "SIM_SLOW_MS"
LABEL_ERROR_RATE = "SIM_ERROR_RATE"

HEALTH_PATH = "/health"
PARENT_POLL_INTERVAL_S = 0.5
DRAIN_LIMIT_S = 30.0
LISTEN_BACKLOG = 128
TASK_HOST = "127.0.0.1"
IP_PER_TASK_ADDRESSES = 254 * 254


# ---------------------------------------------------------------- the task


class _TaskServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address, app_id, colour, task_id, slow_ms, error_rate=0.0):
        self.app_id = app_id
        self.colour = colour
        self.task_id = task_id
        self.slow_s = slow_ms / 1000.0
        self.error_rate = error_rate
        self.answered = 0  # requests answered outside the health path, for the error knob
        self.stopping = threading.Event()
        self.in_flight = 0
        self.in_flight_lock = threading.Lock()
        super().__init__(address, _TaskHandler)


class _TaskHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "zdd-sandbox-task"

    def do_GET(self):
        server = self.server
        with server.in_flight_lock:
            server.in_flight += 1
        try:
            failing = False
            if self.path != HEALTH_PATH:
                with server.in_flight_lock:
                    count = server.answered
                    server.answered += 1
                # the requests whose running share of failures reaches a new whole number fail
                failing = int((count + 1) * server.error_rate) > int(count * server.error_rate)
                if server.slow_s:
                    time.sleep(server.slow_s)
            body = json.dumps(
                {"app": server.app_id, "colour": server.colour, "task": server.task_id, "path": self.path}
            ).encode() + b"\n"
            self.send_response(503 if failing else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Colour", server.colour)
            self.send_header("X-Task-Id", server.task_id)
            if server.stopping.is_set():
                # Finish this request, then let the client go elsewhere.
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        finally:
            with server.in_flight_lock:
                server.in_flight -= 1

    def log_message(self, format, *args):
        pass


def serve(ip, port, app_id, colour, task_id, start_delay_s=0.0, slow_ms=0, error_rate=0.0):
    """Run one task until SIGTERM (or its parent dies), then drain and return."""
    parent_pid = os.getppid()
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop_requested.set())
    if stop_requested.wait(start_delay_s):
        return
    server = _TaskServer((ip, port), app_id, colour, task_id, slow_ms, error_rate)
    accept_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    accept_thread.start()
    # An orphaned task stops by itself: the launcher may have been SIGKILLed.
    while not stop_requested.wait(PARENT_POLL_INTERVAL_S):
        if os.getppid() != parent_pid:
            break
    server.stopping.set()
    server.shutdown()  # no more accepts
    server.socket.close()
    deadline = time.monotonic() + DRAIN_LIMIT_S
    while time.monotonic() < deadline:
        with server.in_flight_lock:
            if server.in_flight == 0:
                break
        time.sleep(0.01)


# ---------------------------------------------------------------- the launcher


@dataclasses.dataclass
class _Task:
    process: subprocess.Popen
    ip: str
    port: int
    health_path: str
    health_timeout_s: float        # the app's health check timeoutSeconds
    log_file: object
    unhealthy: bool = False  # the app's SIM_HEALTHY label is "false": every health check fails
    killed: bool = False     # the simulator asked for its kill
    last_cause: Optional[str] = "not checked yet"  # why its last health check failed (None: it passed)


def _is_free(ip, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def _signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class ProcessLauncher:
    """Starts one real ``serve`` process per task; the simulator drives it."""

    slow_checks = True  # a check is a request to a real process: the simulator runs it off its lock

    def __init__(self, workdir=None, tag=None):
        self.workdir = Path(workdir).resolve() if workdir else None
        # The tag is in every task's command line: ``pgrep -f <tag>`` finds them.
        self.tag = tag or (str(self.workdir) if self.workdir else "zdd-sandbox-%d-%d" % (os.getpid(), id(self)))
        self._tasks: Dict[str, _Task] = {}
        self._ports_used = set()
        # IP-per-task addresses: this process's share() of 127.0.1.1 .. 127.0.254.254
        index, count = share()
        block = IP_PER_TASK_ADDRESSES // count
        self._next_ip_index, self._end_ip_index = 1 + index * block, 1 + (index + 1) * block
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    # -- placement

    def _host_port(self):
        while True:
            port = free_port(TASK_HOST)
            if port not in self._ports_used:
                self._ports_used.add(port)
                return port

    def _task_ip(self, container_port):
        # 127.0.1.1 .. 127.0.254.254: one loopback address per task.
        while self._next_ip_index < self._end_ip_index:
            index = self._next_ip_index
            self._next_ip_index += 1
            ip = "127.0.%d.%d" % (1 + (index - 1) // 254, 1 + (index - 1) % 254)
            if _is_free(ip, container_port):
                return ip
        raise RuntimeError("no loopback address left for IP-per-task")

    # -- the interface the simulator calls

    def launch(self, app, task_id, ip_per_task, container_ports):
        """Start a task process of ``app``; return where it will listen."""
        labels = app.get("labels") or {}
        colour = labels.get(LABEL_COLOUR, "none")
        start_delay_s = float(labels.get(LABEL_START_DELAY_S, 0) or 0)
        slow_ms = int(float(labels.get(LABEL_SLOW_MS, 0) or 0))
        error_rate = float(labels.get(LABEL_ERROR_RATE, 0) or 0)
        checks = app.get("healthChecks") or []
        health_path = next((check["path"] for check in checks if check.get("path")), HEALTH_PATH)
        health_timeout_s = min((float(check.get("timeoutSeconds", DEFAULT_CHECK_TIMEOUT_S)) for check in checks),
                               default=DEFAULT_CHECK_TIMEOUT_S)
        with self._lock:
            if self._closed:
                raise RuntimeError("launcher is closed")
            if ip_per_task:
                port = container_ports[0] if container_ports else 80
                ip = self._task_ip(port)
                placement = Placement(host=TASK_HOST, ports=[], ip=ip)
            else:
                port = self._host_port()
                ip = TASK_HOST
                placement = Placement(host=TASK_HOST, ports=[port], ip=None)
            argv = [
                sys.executable, "-m", "tests.sandbox.tasks", "serve",
                "--ip", ip, "--port", str(port), "--app", app["id"], "--colour", colour,
                "--task-id", task_id, "--start-delay", str(start_delay_s), "--slow-ms", str(slow_ms),
                "--error-rate", str(error_rate),
                "--tag", self.tag,
            ]
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
            log_file = subprocess.DEVNULL
            if self.workdir:
                self.workdir.mkdir(parents=True, exist_ok=True)
                log_file = open(self.workdir / ("task-%s.log" % task_id.replace("/", "_")), "ab")
            process = subprocess.Popen(
                argv, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
                stdout=log_file, stderr=log_file, start_new_session=True,
            )
            self._tasks[task_id] = _Task(process, ip, port, health_path, health_timeout_s, log_file,
                                         failed_by_label(app))
        return placement

    def check_health(self, task_id):
        """A ``Check``: passed when the task answers 200 on its health path right now, else why not.

        With a workdir, each change goes to ``health.log`` there (a task's first result, then each new cause of
        failure and each first pass after failures), so that a scenario stalled on a task says why.
        """
        task = self._tasks.get(task_id)
        if task is None:
            return Check(False, "no such task")
        check = self._check(task)
        if check.cause != task.last_cause:
            task.last_cause = check.cause
            self._log_health(task_id, check.cause or "passed")
        return check

    @staticmethod
    def _check(task):
        if task.unhealthy:
            return FAILED_BY_LABEL
        code = task.process.poll()
        if code is not None:
            how = "killed by %s" % signal.Signals(-code).name if code < 0 else "exit code %d" % code
            return Check(False, "task process gone (%s%s)" % (how, "" if task.killed else ", never killed"))
        connection = http.client.HTTPConnection(task.ip, task.port, timeout=task.health_timeout_s)
        try:
            connection.request("GET", task.health_path, headers={"Connection": "close"})
            status = connection.getresponse().status
        except socket.timeout:
            return Check(False, "no answer in %g s" % task.health_timeout_s)
        except (OSError, http.client.HTTPException) as error:
            return Check(False, "%s: %s" % (type(error).__name__, error))
        finally:
            connection.close()
        return PASSED if status == 200 else Check(False, "HTTP %d" % status)

    def _log_health(self, task_id, what):
        if self.workdir is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "health.log", "a") as log:
            log.write("%s %s: %s\n" % (time.strftime("%H:%M:%S"), task_id, what))

    def kill(self, task_id, grace_s):
        """SIGTERM the task now and SIGKILL it after ``grace_s`` seconds; don't wait."""
        task = self._tasks.get(task_id)
        if task is None or task.process.poll() is not None:
            return
        task.killed = True
        _signal_group(task.process.pid, signal.SIGTERM)
        timer = threading.Timer(grace_s, self._hard_kill, args=(task,))
        timer.daemon = True
        timer.start()

    @staticmethod
    def _hard_kill(task):
        if task.process.poll() is None:
            _signal_group(task.process.pid, signal.SIGKILL)
        task.process.wait()

    def is_gone(self, task_id):
        """True when the task's process has exited (or never existed)."""
        task = self._tasks.get(task_id)
        return task is None or task.process.poll() is not None

    def address(self, task_id):
        """(ip, port) the task listens on."""
        task = self._tasks[task_id]
        return task.ip, task.port

    def pids(self):
        """PIDs of the task processes still running."""
        return [task.process.pid for task in self._tasks.values() if task.process.poll() is None]

    def close(self):
        """Kill every task process and wait for all of them."""
        with self._lock:
            self._closed = True
            tasks = list(self._tasks.values())
        # Only a process not yet reaped still holds its PID, hence its group id: once reaped, the PID may be
        # another process's (PIDs wrap in well under a minute with scenarios side by side), and a signal to
        # that group would kill a stranger, e.g. another test's task.
        for task in tasks:
            if task.process.poll() is None:
                _signal_group(task.process.pid, signal.SIGKILL)
        for task in tasks:
            task.process.wait()
            if task.log_file is not subprocess.DEVNULL:
                task.log_file.close()
                task.log_file = subprocess.DEVNULL
        atexit.unregister(self.close)


# ---------------------------------------------------------------- command line


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.tasks")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run one task's HTTP server")
    serve_parser.add_argument("--ip", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, required=True)
    serve_parser.add_argument("--app", required=True, help="Marathon app id")
    serve_parser.add_argument("--colour", default="none")
    serve_parser.add_argument("--task-id", required=True)
    serve_parser.add_argument("--start-delay", type=float, default=0.0, help="seconds before binding")
    serve_parser.add_argument("--slow-ms", type=int, default=0, help="milliseconds added to each response")
    serve_parser.add_argument("--error-rate", type=float, default=0.0,
                              help="share of the requests (0 to 1) answered 503, spread evenly")
    serve_parser.add_argument("--tag", default="", help="free text, lets tests find their processes")
    options = parser.parse_args(argv)
    serve(options.ip, options.port, options.app, options.colour, options.task_id,
          options.start_delay, options.slow_ms, options.error_rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
