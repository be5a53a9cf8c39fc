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
``intervalSeconds`` (the first one ``intervalSeconds``, or ``SIM_FIRST_CHECK_S``, after it started running)
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
``SIM_FIRST_CHECK_S``  seconds from ``TASK_RUNNING`` to the first health check, and
                       between checks until one passes (default ``intervalSeconds``),
                       finer than Marathon's whole-second interval

Knobs on the object (and over HTTP at ``/_sim/...`` for out-of-process use):

``sim.set_task_healthy(task_id, healthy)``
    override the launcher's health result for one task (``None`` clears).
    ``POST /_sim/task_health`` with ``{"task_id", "healthy"}``.
``sim.health_report()``
    one line per task not healthy now, with why: its state, or the cause of its last check (recorded by
    Marathon or not yet, inside the grace period). ``Cluster.wait_idle`` puts it in its timeout, and a failed
    scenario's report shows it (tests/e2e/conftest.py).
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
import json
import threading
import time
import uuid

from tests.sandbox.clock import FakeClock, RealClock
from tests.sandbox.mlb import is_ip_per_task
from tests.sandbox.sim.apps import (
    ARCHIVE_SUFFIXES,
    COMMAND_PROTOCOLS,
    COMMON_DEFAULTS,
    HEALTH_CHECK_DEFAULTS,
    HTTP_PROTOCOLS,
    ID_SEGMENT_RE,
    KILL_AND_UNREACHABLE_DEFAULTS,
    NO_CMD_MESSAGE,
    READ_ONLY_FIELDS,
    SCHEMA_VIOLATIONS,
    TASK_ID_RE,
    V14_EMPTY,
    V14_NULLS,
    V15_OMIT_EMPTY,
    ApiError,
    AppDefinitions,
    SchemaViolation,
    app_id_of_task,
    format_ts,
    host_port_count,
    normalize_app_id,
    port_mappings,
    safe_app_id,
)
from tests.sandbox.sim.deployments import LOCKED_MESSAGE, Deployments, _App
from tests.sandbox.sim.faults import (
    BOMB_SIZE_BYTES,
    FAULT_KINDS,
    TRICKLE_GAP_S,
    Bomb,
    Dropped,
    FaultList,
    Trickled,
    garbled,
    gzip_zeros,
    send_slowly,
)
from tests.sandbox.sim.launch import LABEL_HEALTHY, PASSED, Check, Placement
from tests.sandbox.sim.routes import SERVICE_PORT_MAX, SERVICE_PORT_MIN, Routes
from tests.sandbox.sim.serving import IDLE_CONNECTION_TIMEOUT_S, REAL_CLOCK_TICK_S, SERVE_POLL_INTERVAL_S, Serving
from tests.sandbox.sim.tasklife import (
    DEFAULT_KILL_DELAY_S,
    DEFAULT_KILL_GRACE_S,
    DEFAULT_START_DELAY_S,
    LABEL_KILL_DELAY_S,
    LABEL_KILL_GRACE_S,
    LABEL_START_DELAY_S,
    Launcher,
    RecordLauncher,
    TaskLife,
)

# What other modules import from here: the simulator, its records and launchers, and the constants and helpers
# of its parts (tests/sandbox/sim/), as they were when all of it was this one module.
__all__ = [
    "ARCHIVE_SUFFIXES", "BOMB_SIZE_BYTES", "COMMAND_PROTOCOLS", "COMMON_DEFAULTS", "DEFAULT_KILL_DELAY_S",
    "DEFAULT_KILL_GRACE_S", "DEFAULT_START_DELAY_S", "FAULT_KINDS", "HEALTH_CHECK_DEFAULTS", "HTTP_PROTOCOLS",
    "IDLE_CONNECTION_TIMEOUT_S", "ID_SEGMENT_RE", "KILL_AND_UNREACHABLE_DEFAULTS", "LABEL_HEALTHY",
    "LABEL_KILL_DELAY_S", "LABEL_KILL_GRACE_S", "LABEL_START_DELAY_S", "LOCKED_MESSAGE", "NO_CMD_MESSAGE", "PASSED",
    "READ_ONLY_FIELDS", "REAL_CLOCK_TICK_S", "SCHEMA_VIOLATIONS", "SERVE_POLL_INTERVAL_S", "SERVICE_PORT_MAX",
    "SERVICE_PORT_MIN", "TASK_ID_RE", "TRICKLE_GAP_S", "V14_EMPTY", "V14_NULLS", "V15_OMIT_EMPTY",
    "ApiError", "Bomb", "Check", "Dropped", "Launcher", "MarathonSim", "Placement", "RecordLauncher", "RequestRecord",
    "SchemaViolation", "Trickled", "app_id_of_task", "format_ts", "garbled", "gzip_zeros", "host_port_count",
    "is_ip_per_task", "normalize_app_id", "port_mappings", "safe_app_id", "send_slowly",
]


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One API request as the simulator saw it."""
    method: str
    path: str
    query: dict
    body: object
    status: int


class MarathonSim(Serving, FaultList, Routes, Deployments, TaskLife, AppDefinitions):
    """A Marathon v2 API server on 127.0.0.1:0 holding apps, tasks and deployments.

    Its parts, one concern each (tests/sandbox/sim/): ``Serving`` the HTTP server, ``FaultList`` the faults,
    ``Routes`` the v2 API, ``Deployments`` the deployment plans and locks, ``TaskLife`` the tasks and health
    checks on the clock, ``AppDefinitions`` the app bodies' checks and shapes. Here: the state they share,
    the control API for tests, and ``handle``, where every request meets the fault list.
    """

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
        self._checks_running = {}  # task id -> _CheckRun: a slow check not yet recorded (not in the task's record,
        # which a deployment and a kill deep-copy)
        self._slave_id = "%s-S0" % uuid.uuid4()
        self._server = None
        self._threads = []
        self._stop_event = threading.Event()

    # ---- test and control API

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
                        self._record_health(task, app, PASSED, stamp, now)
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
