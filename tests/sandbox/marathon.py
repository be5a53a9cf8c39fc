"""A stateful Marathon v2 API simulator (Marathon 1.4 and 1.5 response shapes).

One simulator serves both kinds of test:

* unit tests hand it a ``FakeClock`` and the default ``RecordLauncher``: tasks
  are records, their host ports are just numbers, time moves only when the
  test (or zdd) sleeps on the clock;
* the sandbox hands it a ``RealClock`` and a launcher that starts real
  processes (``tests/sandbox/tasks.py``); a background thread then ticks.

The behaviour follows docs/marathon-api.rst. State advances lazily in
``tick()``, which runs at the start of every request.

Task life: launch -> ``TASK_STAGING`` (``startedAt`` null, host ports set) ->
after the app's start delay ``TASK_RUNNING`` -> health checks every
``intervalSeconds`` (first one ``intervalSeconds`` after it started running)
if the app has ``healthChecks`` -> the deployment step is done when every
wanted task runs and is healthy. Kill -> ``TASK_KILLING`` -> gone once the
launcher says so.

Knobs, as app labels (the simulator reads them; they stay in the app JSON):

``SIM_START_DELAY_S``  seconds from launch to ``TASK_RUNNING`` (default 1)
``SIM_HEALTHY``        ``"false"``: every health check of the app fails
                       (both launchers; default healthy)
``SIM_KILL_DELAY_S``   seconds from kill to gone (``RecordLauncher``; default 0)
``SIM_KILL_GRACE_S``   seconds from SIGTERM to SIGKILL (``ProcessLauncher``), finer
                       than Marathon's whole-second ``taskKillGracePeriodSeconds``

Knobs on the object (and over HTTP at ``/_sim/...`` for out-of-process use):

``sim.set_task_healthy(task_id, healthy)``
    override the launcher's health result for one task (``None`` clears).
    ``POST /_sim/task_health`` with ``{"task_id", "healthy"}``.
``sim.requests`` / ``sim.writes()``
    the log of API requests (``GET /_sim/requests`` returns it as JSON);
    ``sim.clear_log()`` / ``POST /_sim/clear_log`` empties it.

App bodies (``POST /v2/apps``, ``PUT /v2/apps/<id>``) are checked against
Marathon's app schema (``tests/sandbox/appschema.py``) as Marathon does: a
property it does not know (a field Marathon only returns, such as
``tasksRunning``) gets 422 ``Object is not valid`` with the details, a value
of the wrong type 400 ``Invalid JSON``. Each refused body is noted in the
module's ``SCHEMA_VIOLATIONS`` (``SchemaViolation``: client, method, path,
problems), one list for every simulator of the process; the unit tests'
conftest fails a test in which zdd wrote one.

Faults: one list, kept in the order they were added. Every API request (not
``/_sim/``) is matched against it in ``handle``, served over HTTP or called
directly; the first live fault that matches decides, and a fault whose
``rate`` passes a request over leaves that request alone (later faults are
not asked). ``sim.faults_injected`` counts the hits by kind;
``sim.clear_faults()`` (``DELETE /_sim/faults``) removes every fault;
``GET /_sim/faults`` returns the counts.

``sim.inject(kind, rate=1.0, count=None, for_s=None, method=None, path_regex=None, client_regex=None,
             status=(500, 503), delay_s=0.0, seed=None, body=None, garble=None,
             size_bytes=BOMB_SIZE_BYTES)``
    (``POST /_sim/faults`` takes the same fields as JSON) from now on,
    requests that match (``method``, a name or a regex matched whole, e.g.
    ``"POST|PUT|DELETE"`` for the writes; ``path_regex`` searched in the path;
    ``client_regex`` searched in the User-Agent, e.g. ``"^zdd/"``) suffer
    ``kind``:

    ``"answer"``  answer one of ``status`` (taken in turn) with ``body``
                  (default ``{"message": "injected failure"}``), without
                  touching the state; the answer is logged in ``sim.requests``;
    ``"error"``   answer one of ``status`` with ``{"message": "injected fault:
                  HTTP <status>"}``, without touching the state and without
                  logging it (the request never reached Marathon);
    ``"delay"``   serve the request at once (logged), then hold the answer
                  ``delay_s`` seconds (longer than a client's timeout: the
                  write is done, the client does not know);
    ``"drop"``    read the request, then close the connection without an
                  answer, without serving or logging it (``handle`` raises
                  ``Dropped``; the HTTP server closes the connection);
    ``"garble"``  serve the request (logged), then change its JSON answer
                  by ``garble``: one edit or a list of them, each
                  ``{"path": "app.tasks.0", "set": value}`` (the value there
                  replaced; ``null`` and other types included) or
                  ``{"path": "app.tasks", "drop": true}`` (the key removed).
                  A path's parts are keys, list indexes, or ``*`` for every
                  element; a part that is not there leaves the answer as it is
                  (``garbled``).
    ``"trickle"`` serve the request at once (logged), then send the answer's
                  body one byte every ``delay_s`` seconds (default
                  ``TRICKLE_GAP_S``), as a proxy that stalls mid-answer does;
                  it stops when the client hangs up or the simulator stops
                  (``handle`` returns the payload as a ``Trickled``);
    ``"bomb"``    answer 200 with ``size_bytes`` zero bytes (default 1 GiB)
                  gzip-compressed (about a thousandth of that on the wire),
                  without touching the state; logged (``handle`` returns a
                  ``Bomb``).

    ``rate`` is the fraction of matching requests hit, spread evenly (the
    k-th is hit when ``floor(k * rate)`` grows: 0.2 hits every fifth, never
    two in a row), or drawn at random with ``seed``. The fault ends after
    ``count`` hits or ``for_s`` seconds, whichever comes first (neither: it
    stays until ``sim.clear_faults()``; ``for_s`` is real time).
``sim.fail_next(method, path_regex, status, count=1, body=None)``
    the same as ``sim.inject("answer", method=method, path_regex=path_regex,
    status=status, count=count, body=body)``: the next ``count`` requests
    whose method and path (no query) match answer ``status``.
    ``POST /_sim/fail_next`` takes the same as JSON.
``sim.go_down()`` / ``sim.come_up()``
    close the listening socket, so every connection is refused, as a Marathon
    that is down; ``come_up`` listens on the same port again. The state,
    the tasks and the ticking go on meanwhile (Mesos keeps the tasks).
    ``POST /_sim/down`` with ``{"for_s": N}`` comes back up by itself after N
    seconds.
"""

import copy
import dataclasses
import datetime
import functools
import http.server
import json
import math
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
import uuid
import zlib

from tests.sandbox import appschema
from tests.sandbox.clock import FakeClock, RealClock
from tests.sandbox.mlb import is_ip_per_task  # noqa: F401 (also this module's helper)

DEFAULT_START_DELAY_S = 1.0
DEFAULT_KILL_DELAY_S = 0.0
DEFAULT_KILL_GRACE_S = 3.0
REAL_CLOCK_TICK_S = 0.05
IDLE_CONNECTION_TIMEOUT_S = 5.0
# How often the HTTP server's loop looks for a stop request: stop() waits up to this long, and every unit
# test stops a simulator and a fake marathon-lb (at 0.05 s that was a third of the unit suite's wall time).
SERVE_POLL_INTERVAL_S = 0.005
SERVICE_PORT_MIN = 10000
SERVICE_PORT_MAX = 20000

LABEL_START_DELAY_S = "SIM_START_DELAY_S"
# The sandbox's own knob: seconds from SIGTERM to SIGKILL when Marathon's whole-second field is too coarse
# (a task that stops almost at once, as an app that does not drain)
LABEL_KILL_GRACE_S = "SIM_KILL_GRACE_S"
LABEL_HEALTHY = "SIM_HEALTHY"
LABEL_KILL_DELAY_S = "SIM_KILL_DELAY_S"

ID_SEGMENT_RE = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$")
TASK_ID_RE = re.compile(r"^(.+)[._]([^_.]+)$")
NO_CMD_MESSAGE = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
LOCKED_MESSAGE = (
    "App is locked by one or more deployments. Override with the option '?force=true'. "
    "View details at '/v2/deployments/<DEPLOYMENT_ID>'."
)

# Fields of an app that Marathon only returns: a seed given as a GET answer drops them; a client's body that
# carries one is refused (they are not in Marathon's app schema, tests/sandbox/appschema.py).
READ_ONLY_FIELDS = (
    "version", "versionInfo", "tasks", "deployments", "tasksStaged", "tasksRunning",
    "tasksHealthy", "tasksUnhealthy", "lastTaskFailure", "readinessCheckResults", "taskStats",
)

COMMON_DEFAULTS = {
    "instances": 1, "cpus": 1.0, "mem": 128.0, "disk": 0.0, "gpus": 0, "executor": "",
    "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 3600,
    "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
    "labels": {}, "requirePorts": False,
}
V14_NULLS = ("cmd", "args", "user", "container", "ipAddress", "residency", "taskKillGracePeriodSeconds")
V14_EMPTY = {"env": {}, "constraints": [], "uris": [], "storeUrls": [], "fetch": [], "healthChecks": [],
             "readinessChecks": [], "dependencies": [], "secrets": {}}
V15_OMIT_EMPTY = ("args", "env", "constraints", "dependencies", "fetch", "healthChecks",
                  "readinessChecks", "secrets", "acceptedResourceRoles")
# Both versions answer these (added in 1.4) for an app that leaves them out.
KILL_AND_UNREACHABLE_DEFAULTS = {"killSelection": "YOUNGEST_FIRST",
                                 "unreachableStrategy": {"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600}}
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip")  # uris fetched with extract
# What a fault does to a request it hits (the module docstring says more).
FAULT_KINDS = ("answer", "error", "delay", "drop", "garble")
# Faults of the answer's body, sent by the HTTP server: a body sent slowly, a compressed body that grows huge.
FAULT_KINDS += ("trickle", "bomb")
TRICKLE_GAP_S = 0.05
BOMB_SIZE_BYTES = 2**30
SCHEMA_VIOLATIONS = []  # SchemaViolation: every app body a simulator of this process refused by the app schema

HEALTH_CHECK_DEFAULTS = {"protocol": "HTTP", "gracePeriodSeconds": 300, "intervalSeconds": 60, "timeoutSeconds": 20,
                         "maxConsecutiveFailures": 3, "delaySeconds": 15}
HTTP_PROTOCOLS = ("HTTP", "HTTPS")  # Marathon's own HTTP checks: answered with ignoreHttp1xx (default false)
COMMAND_PROTOCOLS = ("COMMAND",)  # no port


# --------------------------------------------------------------------------- helpers

def garbled(payload, edits):
    """A copy of the JSON ``payload`` with each edit of a "garble" fault made (the module docstring says how)."""
    payload = copy.deepcopy(payload)
    for edit in edits:
        parts = str(edit["path"]).split(".")
        holders = [payload]
        for part in parts[:-1]:
            holders = [child for holder in holders for child in _children(holder, part)]
        for holder in holders:
            for key in _keys(holder, parts[-1]):
                if edit.get("drop"):
                    del holder[key]
                else:
                    holder[key] = copy.deepcopy(edit.get("set"))
    return payload


def _keys(holder, part):
    """The keys (or indexes) of ``holder`` that a path part names: ``*`` all of them."""
    if isinstance(holder, dict):
        return list(holder) if part == "*" else [part] if part in holder else []
    if isinstance(holder, list):
        if part == "*":
            return list(range(len(holder)))[::-1]  # from the end: a drop keeps the indexes still to come
        return [int(part)] if part.lstrip("-").isdigit() and -len(holder) <= int(part) < len(holder) else []
    return []


def _children(holder, part):
    return [holder[key] for key in _keys(holder, part)]


def normalize_app_id(raw):
    """``foo``, ``/foo/``, ``//foo`` -> ``/foo``."""
    return "/" + "/".join(part for part in str(raw).split("/") if part)


def safe_app_id(app_id):
    """``/prod/web`` -> ``prod_web`` (the task id prefix)."""
    return normalize_app_id(app_id).lstrip("/").replace("/", "_")


def app_id_of_task(task_id):
    """The app id a task id names, or None when the task id is malformed."""
    match = TASK_ID_RE.match(task_id) if isinstance(task_id, str) else None
    if not match:
        return None
    return normalize_app_id(match.group(1).replace("_", "/"))


def format_ts(moment):
    """Marathon's timestamp: ISO-8601 UTC with milliseconds and ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def port_mappings(app):
    """The port mappings of an app in either shape (``[]`` for host networking)."""
    container = app.get("container") or {}
    return container.get("portMappings") or (container.get("docker") or {}).get("portMappings") or []


def host_port_count(app):
    """How many host ports a task of ``app`` (canonical/1.5 shape) gets."""
    if is_ip_per_task(app):
        return sum(1 for mapping in port_mappings(app) if mapping.get("hostPort") is not None)
    if port_mappings(app):
        return len(port_mappings(app))
    return len(app.get("portDefinitions") or [])


def _label_float(app, key, default):
    try:
        return float((app.get("labels") or {}).get(key, default))
    except (TypeError, ValueError):
        return default


def _health_check(check):
    """A health check with what Marathon fills in: its defaults, ``portIndex`` 0 without a port, ``ignoreHttp1xx``."""
    full = dict(HEALTH_CHECK_DEFAULTS, **check)
    if full["protocol"] not in COMMAND_PROTOCOLS and "port" not in full:
        full.setdefault("portIndex", 0)
    if full["protocol"] in HTTP_PROTOCOLS:
        full.setdefault("ignoreHttp1xx", False)
    return full


class ApiError(Exception):
    """An HTTP error answer: status and JSON body."""

    def __init__(self, status, body):
        super().__init__(status, body)
        self.status = status
        self.body = body


def _invalid(path, error):
    return ApiError(422, {"message": "Object is not valid", "details": [{"path": path, "errors": [error]}]})


# --------------------------------------------------------------------------- launchers

@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a launched task runs: agent host, host ports, container IP (or None)."""
    host: str
    ports: list
    ip: object = None


class Launcher:
    """The interface the simulator drives tasks through (see RecordLauncher, tasks.ProcessLauncher)."""

    def launch(self, app, task_id, ip_per_task, container_ports):
        raise NotImplementedError

    def check_health(self, task_id):
        raise NotImplementedError

    def kill(self, task_id, grace_s):
        raise NotImplementedError

    def is_gone(self, task_id):
        raise NotImplementedError

    def close(self):
        pass


class RecordLauncher(Launcher):
    """Tasks as records: ports and IPs from counters, nothing listens."""

    def __init__(self, clock, task_host="127.0.0.1", first_host_port=31000,
                 ip_prefix="10.1.0.", bridge_ip_prefix="172.17.0."):
        self._clock = clock
        self._task_host = task_host
        self._next_port = first_host_port
        self._ip_prefix = ip_prefix
        self._bridge_ip_prefix = bridge_ip_prefix
        self._next_ip = 2
        self._healthy = {}
        self._gone_at = {}
        self._lock = threading.Lock()

    def launch(self, app, task_id, ip_per_task, container_ports):
        with self._lock:
            count = host_port_count(app)
            ports = list(range(self._next_port, self._next_port + count))
            self._next_port += count
            ip = None
            bridge = bool(port_mappings(app)) and not ip_per_task
            if ip_per_task or bridge:
                prefix = self._ip_prefix if ip_per_task else self._bridge_ip_prefix
                ip = "%s%d" % (prefix, self._next_ip)
                self._next_ip += 1
            healthy = str((app.get("labels") or {}).get(LABEL_HEALTHY, "true")).lower() != "false"
            self._healthy[task_id] = (healthy, _label_float(app, LABEL_KILL_DELAY_S, DEFAULT_KILL_DELAY_S))
            return Placement(host=self._task_host, ports=ports, ip=ip)

    def check_health(self, task_id):
        with self._lock:
            return self._healthy.get(task_id, (False, 0.0))[0]

    def kill(self, task_id, grace_s):
        with self._lock:
            delay_s = self._healthy.get(task_id, (False, 0.0))[1]
            self._gone_at.setdefault(task_id, self._clock.monotonic() + delay_s)

    def is_gone(self, task_id):
        with self._lock:
            gone_at = self._gone_at.get(task_id)
            return gone_at is not None and self._clock.monotonic() >= gone_at

    def close(self):
        pass


# --------------------------------------------------------------------------- state records

@dataclasses.dataclass
class _Task:
    id: str
    app_id: str
    host: str
    slave_id: str
    ports: list
    ip: object
    version: str
    staged_at: datetime.datetime
    launched_mono: float
    running_mono: float
    state: str = "TASK_STAGING"
    started_at: object = None
    hc_results: object = None      # list of dicts once the first result is recorded
    next_check_mono: object = None
    ever_healthy: bool = False

    def healthy(self):
        return bool(self.hc_results) and all(result["alive"] for result in self.hc_results)

    def active(self):
        return self.state in ("TASK_STAGING", "TASK_RUNNING")


@dataclasses.dataclass
class _App:
    id: str
    spec: dict                 # canonical (1.5-like) definition without id/version
    version: str
    last_scaling_at: str
    last_config_change_at: str
    tasks: dict = dataclasses.field(default_factory=dict)
    versions: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Deployment:
    id: str
    version: str
    steps: list                # [[(action, app_id), ...], ...]
    originals: dict            # app id -> deep copy of _App before the change (None: did not exist)
    to_kill: set = dataclasses.field(default_factory=set)
    current_step: int = 1

    def affected(self):
        return sorted({app_id for step in self.steps for _, app_id in step})


@dataclasses.dataclass(frozen=True)
class SchemaViolation:
    """An app body the simulator refused as Marathon's app schema does: who sent it, where, and what was wrong."""
    client: str
    method: str
    path: str
    problems: tuple


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One API request as the simulator saw it."""
    method: str
    path: str
    query: dict
    body: object
    status: int


# --------------------------------------------------------------------------- the simulator

class MarathonSim:
    """A Marathon v2 API server on 127.0.0.1:0 holding apps, tasks and deployments."""

    def __init__(self, clock=None, launcher=None, marathon_version="1.5", task_host="127.0.0.1",
                 background_tick=None, keep_alive=False):
        self.clock = clock if clock is not None else RealClock()
        self.keep_alive = keep_alive  # HTTP/1.1 persistent connections, as Marathon's Jetty serves them
        self.connections = 0  # TCP connections accepted, for the benchmarks
        self.launcher = launcher if launcher is not None else RecordLauncher(self.clock, task_host)
        self.marathon_version = marathon_version
        self.task_host = task_host
        self.requests = []
        self._background_tick = (not isinstance(self.clock, FakeClock)) if background_tick is None else background_tick
        self._lock = threading.RLock()
        self._apps = {}
        self._stopping = {}        # task id -> _Task of deleted apps still being killed
        self._deployments = {}
        self._last_version = None
        self._faults = []          # _Fault, in the order added; the first live match decides
        self.faults_injected = {kind: 0 for kind in FAULT_KINDS}
        self._port = None
        self._handler = None
        self._down_timer = None
        self._health_override = {}
        self._slave_id = "%s-S0" % uuid.uuid4()
        self._server = None
        self._threads = []
        self._stop_event = threading.Event()

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

    # ---- test and control API

    def inject(self, kind, rate=1.0, count=None, for_s=None, method=None, path_regex=None, client_regex=None,
               status=(500, 503), delay_s=0.0, seed=None, body=None, garble=None,
               size_bytes=BOMB_SIZE_BYTES):
        """Add a fault to the list (see the module docstring); returns it."""
        if kind not in FAULT_KINDS:
            raise ValueError("unknown fault kind %r" % kind)
        statuses = [int(status)] if isinstance(status, (int, str)) else [int(code) for code in status]
        fault = _Fault(kind=kind, rate=float(rate), remaining=None if count is None else int(count),
                       until=None if for_s is None else time.monotonic() + float(for_s),
                       method=re.compile(method.upper()) if method else None,
                       path_re=re.compile(path_regex) if path_regex else None,
                       client_re=re.compile(client_regex) if client_regex else None,
                       statuses=statuses, delay_s=float(delay_s),
                       rng=random.Random(seed) if seed is not None else None,
                       body=body if body is not None else {"message": "injected failure"},
                       garble=[garble] if isinstance(garble, dict) else list(garble or ()),
                       size_bytes=int(size_bytes))
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next(self, method, path_regex, status, count=1, body=None):
        """Answer the next ``count`` matching requests with ``status`` and ``body``, logged (an "answer" fault)."""
        return self.inject("answer", method=method, path_regex=path_regex, status=status, count=count, body=body)

    def clear_faults(self):
        """Remove every fault (the counts in ``faults_injected`` stay)."""
        with self._lock:
            self._faults.clear()

    def _fault_for(self, method, path, client):
        """The fault this request suffers, counted as a hit, or None."""
        with self._lock:
            now = time.monotonic()
            self._faults = [fault for fault in self._faults if fault.live(now)]
            for fault in self._faults:
                if not fault.matches(method, path, client):
                    continue
                if not fault.hits():
                    return None
                self.faults_injected[fault.kind] += 1
                return fault
            return None

    def set_task_healthy(self, task_id, healthy):
        """Force one task's health check result (None: ask the launcher again)."""
        with self._lock:
            if healthy is None:
                self._health_override.pop(task_id, None)
            else:
                self._health_override[task_id] = bool(healthy)

    def writes(self):
        """The logged requests that are not GETs."""
        with self._lock:
            return [record for record in self.requests if record.method != "GET"]

    def clear_log(self):
        with self._lock:
            self.requests.clear()

    def add_app(self, app_json, ready=True):
        """Seed an app (no request logged); with ready=True its tasks already run healthy."""
        with self._lock:
            self.tick()
            spec, app_id = self._parse_app(app_json)
            if app_id in self._apps:
                raise ValueError("app %s exists" % app_id)
            version = self._new_version()
            app = _App(id=app_id, spec=spec, version=version, last_scaling_at=version,
                       last_config_change_at=version)
            self._assign_service_ports(app)
            app.versions[version] = copy.deepcopy(spec)
            self._apps[app_id] = app
            self._reconcile()
            if ready:
                now = self.clock.monotonic()
                stamp = self.clock.utcnow()
                for task in app.tasks.values():
                    task.state = "TASK_RUNNING"
                    task.started_at = stamp
                    task.running_mono = now
                    if spec.get("healthChecks"):
                        self._record_health(task, app, True, stamp, now)
                        task.next_check_mono = now + self._health_interval_s(app)
            else:
                self._deployments_add([[("StartApplication", app_id)], [("ScaleApplication", app_id)]],
                                      {app_id: None}, version)
            return self.app(app_id)

    def app(self, app_id):
        """The app as GET /v2/apps/{id} shows it (dict), or None."""
        with self._lock:
            self.tick()
            app = self._apps.get(normalize_app_id(app_id))
            return self._render_app(app, with_tasks=True) if app else None

    def api_apps(self, embed_tasks=True):
        """Exactly the ``apps`` list GET /v2/apps[?embed=apps.tasks] returns."""
        with self._lock:
            self.tick()
            return [self._render_app(app, with_tasks=embed_tasks) for app in self._sorted_apps()]

    def deployments(self):
        """Exactly what GET /v2/deployments returns."""
        with self._lock:
            self.tick()
            return [self._render_deployment(dep) for dep in self._deployments.values()]

    # ---- time

    def _new_version(self):
        moment = self.clock.utcnow()
        moment = moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
        if self._last_version is not None and moment <= self._last_version:
            moment = self._last_version + datetime.timedelta(milliseconds=1)
        self._last_version = moment
        return format_ts(moment)

    def _wall_at(self, mono):
        """The UTC wall time of an earlier monotonic instant."""
        return self.clock.utcnow() - datetime.timedelta(seconds=max(0.0, self.clock.monotonic() - mono))

    def tick(self):
        """Advance tasks, health checks and deployments to the clock's now."""
        with self._lock:
            now = self.clock.monotonic()
            # Killed tasks that are gone leave the app (or the stopping set).
            for app in list(self._apps.values()):
                for task in list(app.tasks.values()):
                    if task.state == "TASK_KILLING" and self.launcher.is_gone(task.id):
                        del app.tasks[task.id]
            for task in list(self._stopping.values()):
                if self.launcher.is_gone(task.id):
                    del self._stopping[task.id]
            for app in self._apps.values():
                interval_s = self._health_interval_s(app)
                for task in app.tasks.values():
                    if task.state == "TASK_STAGING" and now >= task.running_mono:
                        task.state = "TASK_RUNNING"
                        task.started_at = self._wall_at(task.running_mono)
                        if interval_s is not None:
                            task.next_check_mono = task.running_mono + interval_s
                    if (task.state == "TASK_RUNNING" and interval_s is not None
                            and task.next_check_mono is not None and now >= task.next_check_mono):
                        healthy = self._health_override.get(task.id)
                        if healthy is None:
                            healthy = bool(self.launcher.check_health(task.id))
                        self._record_health(task, app, healthy, self.clock.utcnow(), now)
                        while task.next_check_mono <= now:
                            task.next_check_mono += interval_s
            self._reconcile()
            self._finish_deployments()

    def _health_interval_s(self, app):
        checks = app.spec.get("healthChecks") or []
        if not checks:
            return None
        return max(0.001, min(float(check.get("intervalSeconds", 60)) for check in checks))

    def _record_health(self, task, app, healthy, stamp, now):
        checks = app.spec.get("healthChecks") or []
        grace_s = min(float(check.get("gracePeriodSeconds", 300)) for check in checks)
        if not healthy and not task.ever_healthy and now < task.running_mono + grace_s:
            return  # failures inside the grace period are not recorded before the first success
        uuid_part = task.id.rsplit(".", 1)[1]
        instance_id = "%s.marathon-%s" % (safe_app_id(task.app_id), uuid_part)
        results = task.hc_results or [
            {"alive": False, "consecutiveFailures": 0, "firstSuccess": None, "lastFailure": None,
             "lastSuccess": None, "lastFailureCause": None, "instanceId": instance_id} for _ in checks]
        for result in results:
            result["alive"] = healthy
            if healthy:
                result["consecutiveFailures"] = 0
                result["lastSuccess"] = format_ts(stamp)
                result["firstSuccess"] = result["firstSuccess"] or format_ts(stamp)
            else:
                result["consecutiveFailures"] += 1
                result["lastFailure"] = format_ts(stamp)
                result["lastFailureCause"] = "sim: health check failed"
        task.ever_healthy = task.ever_healthy or healthy
        task.hc_results = results

    # ---- tasks

    def _launch(self, app):
        task_id = "%s.%s" % (safe_app_id(app.id), uuid.uuid1())
        spec_view = dict(app.spec, id=app.id)
        ip_per_task = is_ip_per_task(spec_view)
        container_ports = [mapping.get("containerPort", 0) for mapping in port_mappings(spec_view)]
        placement = self.launcher.launch(spec_view, task_id, ip_per_task, container_ports)
        now = self.clock.monotonic()
        task = _Task(id=task_id, app_id=app.id, host=placement.host, slave_id=self._slave_id,
                     ports=list(placement.ports),
                     ip=placement.ip, version=app.version, staged_at=self.clock.utcnow(),
                     launched_mono=now,
                     running_mono=now + _label_float(app.spec, LABEL_START_DELAY_S, DEFAULT_START_DELAY_S))
        app.tasks[task_id] = task
        return task

    def _kill(self, task, app_spec):
        if task.state == "TASK_KILLING":
            return
        task.state = "TASK_KILLING"
        grace_s = _label_float(app_spec, LABEL_KILL_GRACE_S, None)
        if grace_s is None:
            grace_s = app_spec.get("taskKillGracePeriodSeconds") or DEFAULT_KILL_GRACE_S
        self.launcher.kill(task.id, float(grace_s))

    def _reconcile(self):
        """Launch or kill (youngest first) until each app has ``instances`` active tasks."""
        for app in self._apps.values():
            active = [task for task in app.tasks.values() if task.active()]
            wanted = int(app.spec.get("instances", 1))
            for _ in range(wanted - len(active)):
                self._launch(app)
            if len(active) > wanted:
                youngest = sorted(active, key=lambda task: task.launched_mono, reverse=True)
                for task in youngest[:len(active) - wanted]:
                    self._kill(task, app.spec)

    def _app_converged(self, app_id, to_kill):
        app = self._apps.get(app_id)
        if app is None:
            return not any(task.app_id == app_id for task in self._stopping.values())
        if any(task_id in app.tasks for task_id in to_kill):
            return False
        tasks = list(app.tasks.values())
        if any(task.state == "TASK_KILLING" for task in tasks):
            return False
        if len(tasks) != int(app.spec.get("instances", 1)):
            return False
        checked = bool(app.spec.get("healthChecks"))
        return all(task.state == "TASK_RUNNING" and (task.healthy() or not checked) for task in tasks)

    def _finish_deployments(self):
        for dep in list(self._deployments.values()):
            while dep.current_step <= len(dep.steps):
                step = dep.steps[dep.current_step - 1]
                if all(action == "StartApplication" or self._app_converged(app_id, dep.to_kill)
                       for action, app_id in step):
                    dep.current_step += 1
                else:
                    break
            if dep.current_step > len(dep.steps):
                dep.current_step = len(dep.steps)
                del self._deployments[dep.id]

    # ---- deployments

    def _deployments_add(self, steps, originals, version, to_kill=()):
        dep = _Deployment(id=str(uuid.uuid4()), version=version, steps=[s for s in steps if s],
                          originals=originals, to_kill=set(to_kill))
        if dep.steps:
            self._deployments[dep.id] = dep
        return dep

    def _locking(self, app_ids):
        app_ids = set(app_ids)
        return [dep for dep in self._deployments.values() if app_ids & set(dep.affected())]

    def _check_lock(self, app_ids, force):
        locking = self._locking(app_ids)
        if not locking:
            return
        if not force:
            raise ApiError(409, {"message": LOCKED_MESSAGE, "deployments": [{"id": dep.id} for dep in locking]})
        for dep in locking:
            del self._deployments[dep.id]

    def _render_deployment(self, dep):
        steps = [{"actions": [{"action": action, "app": app_id} for action, app_id in step]} for step in dep.steps]
        current = dep.steps[dep.current_step - 1] if dep.steps else []
        return {"id": dep.id, "version": dep.version, "affectedApps": dep.affected(), "affectedPods": [],
                "steps": steps,
                "currentActions": [{"action": action, "app": app_id, "readinessCheckResults": []}
                                   for action, app_id in current],
                "currentStep": dep.current_step, "totalSteps": len(dep.steps)}

    # ---- parsing and validation

    def _parse_app(self, body, app_id=None):
        """Validate an app JSON and return (canonical spec, absolute id)."""
        if not isinstance(body, dict):
            raise ApiError(400, {"message": "Please specify data in JSON format",
                                 "details": "The request body must be a JSON object"})
        raw = copy.deepcopy(body)
        for field in READ_ONLY_FIELDS:
            raw.pop(field, None)
        app_id = normalize_app_id(app_id if app_id is not None else raw.get("id", ""))
        raw.pop("id", None)
        self._check_types(raw)
        segments = app_id.strip("/").split("/") if app_id != "/" else []
        if not segments or not all(ID_SEGMENT_RE.match(segment) for segment in segments):
            raise _invalid("/id", "'%s' must fully match the regular expression '%s'"
                           % (app_id, ID_SEGMENT_RE.pattern))
        if not raw.get("cmd") and not raw.get("args") and not raw.get("container"):
            raise _invalid("/", NO_CMD_MESSAGE)
        if raw.get("instances", 1) < 0:
            raise _invalid("/instances", "got %s, expected 0 or more" % raw["instances"])
        return self._canonical(raw), app_id

    @staticmethod
    def _check_types(raw):
        def type_error(path, expected):
            return ApiError(400, {"message": "Invalid JSON",
                                  "details": [{"path": path, "errors": ["error.expected.%s" % expected]}]})
        if "instances" in raw and (not isinstance(raw["instances"], int) or isinstance(raw["instances"], bool)):
            raise type_error("/instances", "jsnumber")
        labels = raw.get("labels")
        if labels is not None:
            if not isinstance(labels, dict):
                raise type_error("/labels", "jsobject")
            for key, value in labels.items():
                if not isinstance(value, str):
                    raise type_error("/labels/%s" % key, "jsstring")

    @staticmethod
    def _canonical(raw):
        """Input of either shape -> the 1.5-like shape the simulator stores."""
        spec = {key: value for key, value in raw.items() if value is not None}
        container = spec.get("container")
        docker = (container or {}).get("docker") or {}
        ip_address = spec.pop("ipAddress", None)
        if ip_address and spec.get("networks"):
            raise _invalid("/", "must not specify both networks and ipAddress")
        if docker.get("network") and spec.get("networks"):
            raise _invalid("/", "must not specify both container.docker.network and networks")
        ports = spec.pop("ports", None)
        definitions = spec.get("portDefinitions")
        if ports is not None and definitions is not None and [d.get("port") for d in definitions] != list(ports):
            raise _invalid("/", "You cannot specify both ports and port definitions")
        if container is not None:
            container = spec["container"] = copy.deepcopy(container)
            docker = container.get("docker")
            if docker is not None:
                network = docker.pop("network", None)
                mappings = docker.pop("portMappings", None)
                if mappings is not None and not container.get("portMappings"):
                    container["portMappings"] = mappings
                if network == "BRIDGE":
                    spec["networks"] = [{"mode": "container/bridge"}]
                elif network == "USER":
                    spec["networks"] = [{"mode": "container", "name": "dcos"}]
                elif network == "HOST":
                    spec["networks"] = [{"mode": "host"}]
        if ip_address:
            network = {"mode": "container"}
            network["name"] = ip_address.get("networkName") or "dcos"
            spec["networks"] = [network]
            discovery = (ip_address.get("discovery") or {}).get("ports") or []
            if container is None and discovery:
                spec["container"] = container = {"type": "MESOS"}
            if container is not None and not container.get("portMappings") and discovery:
                container["portMappings"] = [{"containerPort": p.get("number", 0), "name": p.get("name"),
                                              "protocol": p.get("protocol", "tcp")} for p in discovery]
        spec.setdefault("networks", [{"mode": "host"}])
        host_mode = spec["networks"][0].get("mode") == "host"
        if host_mode:
            if container is not None:
                container.pop("portMappings", None)
            if definitions is None:
                definitions = [{"port": port} for port in ports] if ports is not None else [{"port": 0}]
            spec["portDefinitions"] = [dict({"protocol": "tcp", "labels": {}}, **d) for d in definitions]
        else:
            spec.pop("portDefinitions", None)
            bridge = spec["networks"][0].get("mode") == "container/bridge"
            if container is not None:
                mappings = []
                for mapping in container.get("portMappings") or []:
                    full = {"containerPort": 0, "labels": {}, "protocol": "tcp", "servicePort": 0}
                    if bridge:
                        full["hostPort"] = 0
                    full.update({k: v for k, v in mapping.items() if v is not None})
                    mappings.append(full)
                container["portMappings"] = mappings
        if container is not None:
            container.setdefault("volumes", [])
            if container.get("docker") is not None:
                container["docker"] = dict({"forcePullImage": False, "parameters": [], "privileged": False},
                                           **container["docker"])
        if spec.get("uris") and not spec.get("fetch"):
            spec["fetch"] = [{"uri": uri, "extract": uri.endswith(ARCHIVE_SUFFIXES), "executable": False,
                              "cache": False} for uri in spec["uris"]]
        spec.pop("uris", None)
        spec["healthChecks"] = [_health_check(check) for check in spec.get("healthChecks") or []]
        for key, value in COMMON_DEFAULTS.items():
            spec.setdefault(key, copy.deepcopy(value))
        return spec

    def _used_service_ports(self):
        used = set()
        for app in self._apps.values():
            for entry in app.spec.get("portDefinitions") or []:
                used.add(entry.get("port"))
            for entry in (app.spec.get("container") or {}).get("portMappings") or []:
                used.add(entry.get("servicePort"))
        return used

    def _assign_service_ports(self, app):
        used = self._used_service_ports()
        entries = app.spec.get("portDefinitions") or []
        key = "port"
        if not entries:
            entries = (app.spec.get("container") or {}).get("portMappings") or []
            key = "servicePort"
        for entry in entries:
            if entry.get(key, 0) == 0:
                port = next(p for p in range(SERVICE_PORT_MIN, SERVICE_PORT_MAX + 1) if p not in used)
                entry[key] = port
                used.add(port)

    # ---- rendering

    def _is_14(self):
        return str(self.marathon_version).startswith("1.4")

    def _render_spec(self, app_id, spec):
        """The app definition in this Marathon version's output shape."""
        spec = copy.deepcopy(spec)
        if self._is_14():
            out = {key: None for key in V14_NULLS}
            out.update(copy.deepcopy(V14_EMPTY))
            networks = spec.pop("networks")
            mode = networks[0].get("mode")
            container = spec.get("container")
            mappings = (container or {}).pop("portMappings", None)
            if container is not None and container.get("docker") is not None:
                docker = container["docker"]
                docker["network"] = {"host": "HOST", "container/bridge": "BRIDGE"}.get(mode, "USER")
                if mode != "host":
                    docker["portMappings"] = [{k: v for k, v in m.items() if k != "labels" or v}
                                              for m in mappings or []]
            if mode == "container":
                spec.pop("portDefinitions", None)
                spec.pop("requirePorts", None)
                out["ipAddress"] = {"groups": [], "labels": {}, "discovery": {"ports": []},
                                    "networkName": networks[0].get("name", "dcos")}
                out.update({key: value for key, value in spec.items()})
                out.pop("requirePorts", None)
            else:
                if mode == "host":
                    definitions = spec["portDefinitions"]
                else:
                    definitions = [{"port": m.get("servicePort", 0), "protocol": m.get("protocol", "tcp"),
                                    "labels": {}} for m in mappings or []]
                spec["portDefinitions"] = definitions
                out["ports"] = [definition["port"] for definition in definitions]
                out.update(spec)
            out["uris"] = [entry["uri"] for entry in spec.get("fetch") or []]
        else:
            out = {key: value for key, value in spec.items()
                   if value is not None and not (key in V15_OMIT_EMPTY and not value)}
        for key, value in KILL_AND_UNREACHABLE_DEFAULTS.items():
            out.setdefault(key, copy.deepcopy(value))
        out["id"] = app_id
        return out

    def _counts(self, tasks):
        return {
            "tasksStaged": sum(1 for task in tasks if task.state == "TASK_STAGING"),
            "tasksRunning": sum(1 for task in tasks if task.state == "TASK_RUNNING"),
            "tasksHealthy": sum(1 for task in tasks if task.hc_results and task.healthy()),
            "tasksUnhealthy": sum(1 for task in tasks if task.hc_results and not task.healthy()),
        }

    def _render_task(self, task):
        out = {"id": task.id, "appId": task.app_id, "host": task.host, "slaveId": task.slave_id,
               "state": task.state, "stagedAt": format_ts(task.staged_at),
               "startedAt": format_ts(task.started_at) if task.started_at else None,
               "version": task.version, "ports": list(task.ports)}
        if task.ip:
            out["ipAddresses"] = [{"ipAddress": task.ip, "protocol": "IPv6" if ":" in task.ip else "IPv4"}]
        if task.hc_results:
            out["healthCheckResults"] = copy.deepcopy(task.hc_results)
        return out

    def _render_app(self, app, with_tasks):
        out = self._render_spec(app.id, app.spec)
        out["version"] = app.version
        out["versionInfo"] = {"lastScalingAt": app.last_scaling_at, "lastConfigChangeAt": app.last_config_change_at}
        out.update(self._counts(list(app.tasks.values())))
        out["deployments"] = [{"id": dep.id} for dep in self._locking([app.id])]
        if with_tasks:
            out["tasks"] = [self._render_task(task) for task in app.tasks.values()]
        return out

    def _sorted_apps(self):
        return [self._apps[app_id] for app_id in sorted(self._apps)]

    # ---- request dispatch

    def handle(self, method, path, query, headers, body_bytes):
        """Serve one API request, or let the fault that matches it decide (the only place faults apply).

        Returns (status, json body or None, extra headers); raises ``Dropped`` for a "drop" fault.
        """
        with self._lock:
            if path.startswith("/_sim/"):
                return self._handle_control(method, path, body_bytes)
            fault = self._fault_for(method, path, headers.get("User-Agent") if headers is not None else None)
            kind = fault.kind if fault is not None else None
            if kind == "drop":
                raise Dropped(method, path)
            if kind == "error":
                status = fault.status()
                return status, {"message": "injected fault: HTTP %d" % status}, {}
            body = None
            if body_bytes:
                try:
                    body = json.loads(body_bytes)
                except ValueError:
                    body = body_bytes.decode("utf-8", "replace")
            if kind == "answer":
                status, payload, extra = fault.status(), copy.deepcopy(fault.body), {}
            elif kind == "bomb":
                status, payload, extra = 200, Bomb(fault.size_bytes), {}
            else:
                status, payload, extra = self._dispatch(method, path, query, headers, body)
            if kind == "garble":
                payload = garbled(payload, fault.garble)
            self.requests.append(RequestRecord(method, path, dict(query), copy.deepcopy(body), status))
        if kind == "delay":
            time.sleep(fault.delay_s)  # served already; the answer comes late
        if kind == "trickle":
            payload = Trickled(payload, fault.delay_s or TRICKLE_GAP_S)
        return status, payload, extra

    def _dispatch(self, method, path, query, headers, body):
        self.tick()
        try:
            if path == "/ping" and method == "GET":
                return 200, "pong", {}
            if path == "/v2/info" and method == "GET":
                return 200, self._info(), {}
            if path.rstrip("/") == "/v2/apps":
                if method == "GET":
                    return 200, {"apps": self._list_apps(query)}, {}
                if method == "POST":
                    self._check_schema(method, path, body, headers)
                    return self._create(self._json_body(body), query)
            if path.startswith("/v2/apps/"):
                app_id = normalize_app_id(path[len("/v2/apps/"):])
                if method == "GET":
                    return self._get_app(app_id)
                if method == "PUT":
                    self._check_schema(method, path, body, headers)
                    return self._update(app_id, self._json_body(body), query)
                if method == "DELETE":
                    return self._delete(app_id, query)
            if path.rstrip("/") == "/v2/tasks/delete" and method == "POST":
                return self._kill_tasks(body, query, headers)
            if path.rstrip("/") == "/v2/deployments" and method == "GET":
                return 200, [self._render_deployment(dep) for dep in self._deployments.values()], {}
            if path.startswith("/v2/deployments/") and method == "DELETE":
                return self._cancel_deployment(path[len("/v2/deployments/"):].strip("/"), query)
            return 404, {"message": "HTTP 404 Not Found"}, {}
        except ApiError as exc:
            return exc.status, exc.body, {}

    def _check_schema(self, method, path, body, headers):
        """Refuse an app body Marathon's app schema refuses (422), and note it in ``SCHEMA_VIOLATIONS``."""
        if not isinstance(body, dict):
            return  # not JSON, or not an object: _json_body and _parse_app answer those
        problems = appschema.violations(body, partial=method == "PUT")
        if problems:
            client = (headers.get("User-Agent") if headers is not None else None) or ""
            SCHEMA_VIOLATIONS.append(SchemaViolation(client, method, path, tuple(problems)))
            self._check_types(body)  # a value of the wrong type: 400 "Invalid JSON", as before any validation
            raise ApiError(422, {"message": "Object is not valid", "details": [
                {"path": problem.split(": ", 1)[0], "errors": [problem.split(": ", 1)[1]]} for problem in problems]})

    @staticmethod
    def _json_body(body):
        if isinstance(body, str):
            raise ApiError(400, {"message": "Invalid JSON", "details": "Unexpected character in the request body"})
        if body is None:
            raise ApiError(400, {"message": "Please specify data in JSON format", "details": "empty body"})
        return body

    @staticmethod
    def _flag(query, name, default=False):
        value = query.get(name)
        if value is None:
            return default
        return value.lower() in ("true", "1", "")

    def _deployment_result(self, status, dep, version):
        return status, {"version": version, "deploymentId": dep.id}, {"Marathon-Deployment-Id": dep.id}

    def _info(self):
        version = self.marathon_version if self.marathon_version.count(".") >= 2 else self.marathon_version + ".0"
        return {"name": "marathon", "version": version, "frameworkId": "sim-framework",
                "leader": "127.0.0.1:8080", "elected": True,
                "http_config": {"http_port": 8080, "https_port": 8443},
                "marathon_config": {"local_port_min": SERVICE_PORT_MIN, "local_port_max": SERVICE_PORT_MAX}}

    def _list_apps(self, query):
        embed = query.get("embed", "")
        apps = self._sorted_apps()
        if query.get("id"):
            apps = [app for app in apps if query["id"].lower() in app.id.lower()]
        if query.get("cmd"):
            apps = [app for app in apps if query["cmd"].lower() in (app.spec.get("cmd") or "").lower()]
        if query.get("label"):
            apps = [app for app in apps if _label_selector_matches(query["label"], app.spec.get("labels") or {})]
        return [self._render_app(app, with_tasks="apps.tasks" in embed.split(",")) for app in apps]

    def _get_app(self, app_id):
        if app_id.endswith("/*"):
            prefix = app_id[:-1]
            return 200, {"*": [self._render_app(app, True) for app in self._sorted_apps()
                               if app.id.startswith(prefix)]}, {}
        app = self._apps.get(app_id)
        if app is None:
            raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
        return 200, {"app": self._render_app(app, with_tasks=True)}, {}

    def _create(self, body, query):
        spec, app_id = self._parse_app(body)
        if app_id in self._apps:
            raise ApiError(409, {"message": "An app with id [%s] already exists." % app_id})
        self._check_lock([app_id], self._flag(query, "force"))
        echo = self._render_spec(app_id, spec)
        dep, version = self._store_new_app(app_id, spec)
        echo.update({"version": version, "tasksStaged": 0, "tasksRunning": 0, "tasksHealthy": 0,
                     "tasksUnhealthy": 0, "deployments": [{"id": dep.id}], "tasks": []})
        return 201, echo, {"Marathon-Deployment-Id": dep.id, "Location": "%s/v2/apps%s" % (self.url, app_id)}

    def _store_new_app(self, app_id, spec):
        """Store a new app and start its deployment (StartApplication, then ScaleApplication)."""
        version = self._new_version()
        app = _App(id=app_id, spec=spec, version=version, last_scaling_at=version, last_config_change_at=version)
        self._assign_service_ports(app)
        app.versions[version] = copy.deepcopy(app.spec)
        self._apps[app_id] = app
        dep = self._deployments_add([[("StartApplication", app_id)], [("ScaleApplication", app_id)]],
                                    {app_id: None}, version)
        self._reconcile()
        return dep, version

    def _update(self, app_id, body, query):
        if not isinstance(body, dict):
            raise ApiError(400, {"message": "Please specify data in JSON format",
                                 "details": "The request body must be a JSON object"})
        force = self._flag(query, "force")
        app = self._apps.get(app_id)
        if app is None:
            spec, _ = self._parse_app(body, app_id=app_id)
            self._check_lock([app_id], force)
            dep, version = self._store_new_app(app_id, spec)
            return self._deployment_result(201, dep, version)
        if "version" in body:
            old_spec = app.versions.get(body["version"])
            if old_spec is None:
                raise ApiError(404, {"message": "Version %s of app %s does not exist" % (body["version"], app_id)})
            new_spec = copy.deepcopy(old_spec)
        elif self._flag(query, "partialUpdate", default=True):
            new_spec, _ = self._parse_app(dict(self._render_spec(app_id, app.spec), **copy.deepcopy(body)),
                                          app_id=app_id)
        else:
            new_spec, _ = self._parse_app(body, app_id=app_id)
        # Compare after the same render/parse round trip, so defaults never count as a change.
        current_spec, _ = self._parse_app(self._render_spec(app_id, app.spec), app_id=app_id)
        scale_only = ({k: v for k, v in new_spec.items() if k != "instances"}
                      == {k: v for k, v in current_spec.items() if k != "instances"})
        version = self._new_version()
        if scale_only and new_spec.get("instances") == app.spec.get("instances"):
            # A no-op plan: no steps, so no lock check and no deployment to see.
            dep = self._deployments_add([], {}, version)
            return self._deployment_result(200, dep, version)
        self._check_lock([app_id], force)
        original = copy.deepcopy(app)
        if scale_only:
            app.spec["instances"] = new_spec["instances"]
            app.version = app.last_scaling_at = version
            action = "ScaleApplication"
        else:
            app.spec = new_spec
            self._assign_service_ports(app)
            app.version = app.last_scaling_at = app.last_config_change_at = version
            for task in app.tasks.values():
                self._kill(task, app.spec)
            action = "RestartApplication"
        app.versions[version] = copy.deepcopy(app.spec)
        dep = self._deployments_add([[(action, app_id)]], {app_id: original}, version)
        self._reconcile()
        return self._deployment_result(200, dep, version)

    def _delete(self, app_id, query):
        app = self._apps.get(app_id)
        if app is None:
            raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
        self._check_lock([app_id], self._flag(query, "force", default=True))
        version = self._new_version()
        del self._apps[app_id]
        for task in app.tasks.values():
            self._kill(task, app.spec)
            self._stopping[task.id] = task
        dep = self._deployments_add([[("StopApplication", app_id)]], {app_id: copy.deepcopy(app)}, version)
        return self._deployment_result(200, dep, version)

    def _kill_tasks(self, body, query, headers):
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(415, {"message": "HTTP 415 Unsupported Media Type"})
        scale = self._flag(query, "scale")
        if scale and self._flag(query, "wipe"):
            raise ApiError(400, {"message": "You cannot use scale and wipe at the same time."})
        body = self._json_body(body)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(task_id, str) for task_id in ids):
            raise ApiError(400, {"message": "Invalid JSON",
                                 "details": [{"path": "/ids", "errors": ["error.expected.jsarray"]}]})
        by_app = {}
        for task_id in ids:
            app_id = app_id_of_task(task_id)
            if app_id is None:
                raise ApiError(400, {"message": "Invalid task id '%s'. [taskId %s is no valid identifier]"
                                                % (task_id, task_id)})
            app = self._apps.get(app_id)
            if app is not None and task_id in app.tasks:
                by_app.setdefault(app_id, []).append(app.tasks[task_id])
        version = self._new_version()
        if not scale:
            killed = []
            for app_id, tasks in by_app.items():
                for task in tasks:
                    killed.append(self._render_task(task))
                    self._kill(task, self._apps[app_id].spec)
            self._reconcile()
            return 200, {"tasks": killed}, {}
        self._check_lock(list(by_app), self._flag(query, "force"))
        originals = {}
        to_kill = []
        for app_id, tasks in by_app.items():
            app = self._apps[app_id]
            originals[app_id] = copy.deepcopy(app)
            live = [task for task in tasks if task.active()]
            app.spec["instances"] = max(0, int(app.spec.get("instances", 1)) - len(live))
            app.version = app.last_scaling_at = version
            app.versions[version] = copy.deepcopy(app.spec)
            for task in live:
                self._kill(task, app.spec)
                to_kill.append(task.id)
        dep = self._deployments_add([[("ScaleApplication", app_id) for app_id in sorted(by_app)]],
                                    originals, version, to_kill)
        self._reconcile()
        return self._deployment_result(200, dep, version)

    def _cancel_deployment(self, dep_id, query):
        dep = self._deployments.get(dep_id)
        if dep is None:
            raise ApiError(404, {"message": "DeploymentPlan %s does not exist" % dep_id})
        del self._deployments[dep_id]
        if self._flag(query, "force"):
            return 202, None, {}
        version = self._new_version()
        steps = []
        originals = {}
        for app_id, original in dep.originals.items():
            current = self._apps.get(app_id)
            originals[app_id] = copy.deepcopy(current)
            if original is None:
                if current is not None:
                    del self._apps[app_id]
                    for task in current.tasks.values():
                        self._kill(task, current.spec)
                        self._stopping[task.id] = task
                    steps.append([("StopApplication", app_id)])
            else:
                restored = current or _App(id=app_id, spec={}, version=version, last_scaling_at=version,
                                           last_config_change_at=original.last_config_change_at)
                restored.spec = copy.deepcopy(original.spec)
                restored.version = restored.last_scaling_at = version
                self._apps[app_id] = restored
                steps.append([("ScaleApplication", app_id)])
        rollback = self._deployments_add(steps, originals, version)
        self._reconcile()
        return self._deployment_result(200, rollback, version)

    def _handle_control(self, method, path, body_bytes):
        body = json.loads(body_bytes) if body_bytes else {}
        if path == "/_sim/fail_next" and method == "POST":
            self.fail_next(body["method"], body["path_regex"], body["status"], body.get("count", 1), body.get("body"))
            return 200, {"ok": True}, {}
        if path == "/_sim/task_health" and method == "POST":
            self.set_task_healthy(body["task_id"], body.get("healthy"))
            return 200, {"ok": True}, {}
        if path == "/_sim/requests" and method == "GET":
            return 200, [dataclasses.asdict(record) for record in self.requests], {}
        if path == "/_sim/faults" and method == "POST":
            kind = body.pop("kind")
            self.inject(kind, **body)
            return 200, {"ok": True}, {}
        if path == "/_sim/faults" and method == "DELETE":
            self.clear_faults()
            return 200, {"ok": True}, {}
        if path == "/_sim/faults" and method == "GET":
            return 200, dict(self.faults_injected), {}
        if path == "/_sim/down" and method == "POST":
            # answered first: the listening socket closes right after
            timer = threading.Timer(0.05, self.go_down, kwargs={"for_s": body.get("for_s")})
            timer.daemon = True
            timer.start()
            return 200, {"ok": True}, {}
        if path == "/_sim/clear_log" and method == "POST":
            self.requests.clear()
            return 200, {"ok": True}, {}
        return 404, {"message": "unknown control endpoint"}, {}


def _label_selector_matches(selector, labels):
    """Marathon's label selector: ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``."""
    terms = re.findall(r"[^,()]+(?:\([^)]*\))?", selector)
    for term in (t.strip() for t in terms):
        if not term:
            continue
        match = re.match(r"^(\S+)\s+(in|notin)\s+\((.*)\)$", term)
        if match:
            values = [v.strip() for v in match.group(3).split(",")]
            present = labels.get(match.group(1)) in values
            if present != (match.group(2) == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "==" in term:
            key, value = term.split("==", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term not in labels:
            return False
    return True


class Dropped(Exception):
    """A "drop" fault hit this request: it is not served, and its connection closes without an answer."""


@dataclasses.dataclass(frozen=True)
class Trickled:
    """A "trickle" fault's answer: ``payload``, sent one byte every ``gap_s`` seconds."""
    payload: object
    gap_s: float


@dataclasses.dataclass(frozen=True)
class Bomb:
    """A "bomb" fault's answer: ``size_bytes`` zero bytes, gzip-compressed."""
    size_bytes: int


@functools.lru_cache(maxsize=4)
def gzip_zeros(size_bytes):
    """``size_bytes`` zero bytes as one gzip stream, never all in memory: one MiB compressed once, repeated."""
    block = bytes(min(size_bytes, 2**20)) or b"\0"
    whole, rest = divmod(size_bytes, len(block))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)  # refers to nothing before it
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    tail = compressor.compress(bytes(rest)) + compressor.flush()  # the final block
    crc = 0
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(bytes(rest), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + segment * whole + tail + struct.pack("<II", crc, size_bytes % 2**32)


def send_slowly(wfile, data, gap_s, stopped):
    """Write ``data`` one byte every ``gap_s`` seconds until done, the client hangs up, or ``stopped()``."""
    for index in range(len(data)):
        if stopped():
            return
        wfile.write(data[index:index + 1])
        wfile.flush()
        time.sleep(gap_s)


@dataclasses.dataclass
class _Fault:
    """One fault of the simulator's list (``MarathonSim.inject``, ``MarathonSim.fail_next``)."""
    kind: str
    rate: float
    remaining: object
    until: object
    method: object
    path_re: object
    client_re: object
    statuses: list
    delay_s: float
    rng: object
    body: object = None
    garble: list = None
    size_bytes: int = BOMB_SIZE_BYTES
    seen: int = 0
    injected: int = 0

    def live(self, now):
        return (self.remaining is None or self.remaining > 0) and (self.until is None or now < self.until)

    def matches(self, method, path, client):
        return ((self.method is None or self.method.fullmatch(method))
                and (self.path_re is None or self.path_re.search(path))
                and (self.client_re is None or self.client_re.search(client or "")))

    def hits(self):
        """Count one matching request; True when this one is hit."""
        self.seen += 1
        if self.rng is not None:
            hit = self.rng.random() < self.rate
        else:
            hit = math.floor(self.seen * self.rate + 1e-9) > math.floor((self.seen - 1) * self.rate + 1e-9)
        if hit:
            self.injected += 1
            if self.remaining is not None:
                self.remaining -= 1
        return hit

    def status(self):
        """The status of the latest hit: ``statuses`` taken in turn."""
        return self.statuses[(self.injected - 1) % len(self.statuses)]


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
