"""Tasks and their health on the simulator's clock: launchers, task records, and the tick that advances them.

A launcher starts and stops tasks (``RecordLauncher``: records, for the unit tests; tests/sandbox/tasks.py's
``ProcessLauncher``: real processes, for the sandbox). ``TaskLife`` is the mixin of ``MarathonSim`` that
launches, kills and ticks tasks through it, records health check results and renders tasks.
"""

import copy
import dataclasses
import datetime
import threading
import uuid

from tests.sandbox.mlb import is_ip_per_task
from tests.sandbox.sim.apps import _label_float, format_ts, host_port_count, port_mappings, safe_app_id
from tests.sandbox.sim.launch import FAILED_BY_LABEL, PASSED, Check, Placement, failed_by_label

DEFAULT_START_DELAY_S = 1.0
DEFAULT_KILL_DELAY_S = 0.0
DEFAULT_KILL_GRACE_S = 3.0

LABEL_START_DELAY_S = "SIM_START_DELAY_S"
# The sandbox's own knob: seconds from SIGTERM to SIGKILL when Marathon's whole-second field is too coarse
# (a task that stops almost at once, as an app that does not drain)
LABEL_KILL_GRACE_S = "SIM_KILL_GRACE_S"
LABEL_KILL_DELAY_S = "SIM_KILL_DELAY_S"
# The sandbox's own knob: seconds from TASK_RUNNING to a task's first health check, and between its checks until one
# passes (default: intervalSeconds); Marathon's whole-second interval makes every step of a deployment wait for it
LABEL_FIRST_CHECK_S = "SIM_FIRST_CHECK_S"


# --------------------------------------------------------------------------- launchers


class Launcher:
    """The interface the simulator drives tasks through (see RecordLauncher, tasks.ProcessLauncher)."""

    # Whether a health check takes real time (a request to a real process, up to the check's timeoutSeconds):
    # then the simulator runs each check in a thread of its own, as Marathon does not wait for a check either,
    # and records the result at its first tick after the check ends; else it checks within the tick.
    slow_checks = False

    def launch(self, app, task_id, ip_per_task, container_ports):
        raise NotImplementedError

    def check_health(self, task_id):
        """A ``Check``: whether the task passes its health check now, and if not why."""
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
            self._healthy[task_id] = (not failed_by_label(app),
                                      _label_float(app, LABEL_KILL_DELAY_S, DEFAULT_KILL_DELAY_S))
            return Placement(host=self._task_host, ports=ports, ip=ip)

    def check_health(self, task_id):
        with self._lock:
            if task_id not in self._healthy:
                return Check(False, "no such task")
            return PASSED if self._healthy[task_id][0] else FAILED_BY_LABEL

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
    last_check: object = None      # the last Check, recorded or not (failures in the grace period are not)

    def healthy(self):
        return bool(self.hc_results) and all(result["alive"] for result in self.hc_results)

    def active(self):
        return self.state in ("TASK_STAGING", "TASK_RUNNING")


class _CheckRun:
    """One slow health check, run in a thread of its own: ``check`` is its Check once it has ended."""

    def __init__(self, launcher, task_id):
        self.check = None
        threading.Thread(target=self._run, args=(launcher, task_id), daemon=True,
                         name="health check " + task_id).start()

    def _run(self, launcher, task_id):
        self.check = launcher.check_health(task_id)


class TaskLife:
    """Tasks, health checks and versions of a ``MarathonSim`` (a mixin: uses its ``clock``, ``launcher``, ``_apps``,
    ``_stopping``, ``_health_override``, ``_checks_running``, ``_slave_id`` and ``_last_version``)."""

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
                        self._checks_running.pop(task.id, None)
            for task in list(self._stopping.values()):
                if self.launcher.is_gone(task.id):
                    del self._stopping[task.id]
                    self._checks_running.pop(task.id, None)
            for app in self._apps.values():
                interval_s = self._health_interval_s(app)
                first_s = None if interval_s is None else _label_float(app.spec, LABEL_FIRST_CHECK_S, interval_s)
                for task in app.tasks.values():
                    if task.state == "TASK_STAGING" and now >= task.running_mono:
                        task.state = "TASK_RUNNING"
                        task.started_at = self._wall_at(task.running_mono)
                        if interval_s is not None:
                            task.next_check_mono = task.running_mono + first_s
                    if task.state != "TASK_RUNNING" or interval_s is None:
                        continue
                    running = self._checks_running.get(task.id)
                    if running is not None:
                        if running.check is None:
                            continue  # the next check starts only after this one
                        del self._checks_running[task.id]
                        self._checked(task, app, running.check, now)
                    if task.next_check_mono is not None and now >= task.next_check_mono:
                        forced = self._health_override.get(task.id)
                        if forced is None and self.launcher.slow_checks:
                            self._checks_running[task.id] = _CheckRun(self.launcher, task.id)
                        else:
                            self._checked(task, app, self._check_now(task.id, forced), now)
                        step_s = interval_s if task.ever_healthy else max(0.001, first_s)
                        while task.next_check_mono <= now:
                            task.next_check_mono += step_s
            self._reconcile()
            self._finish_deployments()

    def _check_now(self, task_id, forced):
        if forced is None:
            return self.launcher.check_health(task_id)
        return PASSED if forced else Check(False, "set unhealthy by the test")

    def _checked(self, task, app, check, now):
        task.last_check = check
        self._record_health(task, app, check, self.clock.utcnow(), now)

    def health_report(self):
        """One line per task of an app with health checks that is not healthy now: its state and why."""
        with self._lock:
            self.tick()
            lines = []
            for app in self._apps.values():
                if self._health_interval_s(app) is None:
                    continue
                for task in app.tasks.values():
                    if task.healthy():
                        continue
                    if task.state != "TASK_RUNNING":
                        why = "not checked (%s)" % task.state
                    elif task.last_check is None:
                        why = "not checked yet"
                    else:
                        why = task.last_check.cause
                    lines.append("%s %s: %s" % (task.id, task.state, why))
            return lines

    def _health_interval_s(self, app):
        checks = app.spec.get("healthChecks") or []
        if not checks:
            return None
        return max(0.001, min(float(check.get("intervalSeconds", 60)) for check in checks))

    def _record_health(self, task, app, check, stamp, now):
        healthy = check.healthy
        checks = app.spec.get("healthChecks") or []
        grace_s = min(float(spec.get("gracePeriodSeconds", 300)) for spec in checks)
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
                result["lastFailureCause"] = check.cause
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
