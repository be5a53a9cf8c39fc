"""A whole local cluster: the Marathon simulator with real task processes, marathon-lbs with real HAProxy.

``Cluster`` is what the end-to-end tests, the demo and the benchmarks use:

* the Marathon simulator (``marathon.MarathonSim``) on the real clock, every
  task a real process (``tasks.ProcessLauncher``) health-checked over HTTP;
* one or more marathon-lb stand-ins (``lbsync.MarathonLB``), each a real
  HAProxy on its own loopback address (127.0.0.1, 127.0.0.2, ...), all with
  the same stats port, as several marathon-lb hosts would be;
* the real ``zdd`` command, run as a subprocess, and a load generator on
  every marathon-lb's frontend for the group.

Everything it starts is stopped by ``close()``.
"""

import csv
import datetime
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import zdd
from tests.sandbox.clock import RealClock
from tests.sandbox.lbsync import MarathonLB
from tests.sandbox.load import LoadGenerator
from tests.sandbox.marathon import MarathonSim
from tests.sandbox.ports import free_port
from tests.sandbox.tasks import ProcessLauncher

REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP = "web"
DEFAULT_STEP_DELAY_S = 0.5
# from launch to TASK_RUNNING (the simulator's SIM_START_DELAY_S, 1 s by default): a task process binds its port
# within a few hundred milliseconds, and the first health check comes intervalSeconds (1) after it runs; the app's
# own SIM_START_DELAY_S label (a slow start) wins
TASK_START_DELAY_S = 0.2
# from TASK_RUNNING to the first health check, and between checks until one passes (the simulator's
# SIM_FIRST_CHECK_S; after the first pass, the app's intervalSeconds): a task that binds its port in a few hundred
# milliseconds is seen healthy then, not a whole interval later
TASK_FIRST_CHECK_S = 0.1


def can_bind(ip):
    """Whether this host can listen on ``ip`` (Linux routes all of 127/8 to lo; macOS has only 127.0.0.1)."""
    try:
        with socket.socket() as probe:
            probe.bind((ip, 0))
        return True
    except OSError:
        return False


def usable_lb_count(requested, bindable=can_bind):
    """How many marathon-lbs can run here, each on its own 127.0.0.x; and a note when fewer than ``requested``."""
    count = 1
    while count < requested and bindable("127.0.0.%d" % (count + 1)):
        count += 1
    if count == requested:
        return count, None
    return count, ("this host cannot listen on 127.0.0.%d (macOS has only 127.0.0.1 by default): running %d "
                   "marathon-lb(s) instead of %d; `sudo ifconfig lo0 alias 127.0.0.%d up` adds the address"
                   % (count + 1, count, requested, count + 1))


def zdd_command():
    """The installed ``zdd`` command; ``python -m zdd`` from the checkout when it is not installed.

    ``ZDD_SANDBOX_ZDD`` (a command line) runs another zdd instead, e.g. an older
    ``zdd.py`` to measure against: ``ZDD_SANDBOX_ZDD="python3 /tmp/before/zdd.py"``.
    """
    if os.environ.get("ZDD_SANDBOX_ZDD"):
        return shlex.split(os.environ["ZDD_SANDBOX_ZDD"])
    installed = shutil.which("zdd")
    return [installed] if installed else [sys.executable, "-m", "zdd"]


class Cluster:
    def __init__(self, workdir, lbs=1, marathon_version="1.5", keep_alive=False, reload_grace_s=None,
                 **haproxy_options):
        self.workdir = Path(workdir)
        self.reload_grace_s = reload_grace_s  # zdd's --reload-grace; None: zdd's default
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clock = RealClock()
        self.launcher = ProcessLauncher(self.workdir / "tasks")
        self.sim = MarathonSim(clock=self.clock, launcher=self.launcher, marathon_version=marathon_version,
                               keep_alive=keep_alive)
        self.lb_ips = ["127.0.0.%d" % (index + 1) for index in range(lbs)]
        self.stats_port = free_port(self.lb_ips)
        self.service_port = free_port(self.lb_ips, {self.stats_port})
        self.alt_port = free_port(self.lb_ips, {self.stats_port, self.service_port})
        self.lbs = []
        self.haproxy_options = haproxy_options  # MarathonLB's: getpids, head, nbthread

    # -- lifecycle

    def start(self):
        try:
            self.sim.start()
            for ip in self.lb_ips:
                lb = MarathonLB(self.sim.url, self.workdir / ("lb-" + ip), bind_ip=ip, stats_port=self.stats_port,
                                **self.haproxy_options)
                self.lbs.append(lb)
                lb.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        for lb in self.lbs:
            lb.stop()
        self.sim.stop()
        self.launcher.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.close()

    def pids(self):
        """Every process this cluster started: HAProxy masters and workers, tasks."""
        found = set(self.launcher.pids())
        for lb in self.lbs:
            found.update(lb.haproxy.pids())
        return found

    # -- the app

    def app(self, instances=3, shape="1.5", ip_per_task=False, **labels):
        """The group's app JSON as a user writes it, in Marathon 1.5 or 1.4 shape."""
        mapping = {"containerPort": 8080, "hostPort": 0, "servicePort": self.service_port, "protocol": "tcp"}
        app = {
            "id": GROUP, "instances": instances, "cpus": 0.1, "mem": 32,
            "healthChecks": [{"protocol": "MESOS_HTTP" if shape == "1.5" else "HTTP", "path": "/health",
                              "portIndex": 0, "gracePeriodSeconds": 10, "intervalSeconds": 1,
                              "timeoutSeconds": 1, "maxConsecutiveFailures": 3}],
            "labels": {"HAPROXY_DEPLOYMENT_GROUP": GROUP, "HAPROXY_DEPLOYMENT_ALT_PORT": str(self.alt_port),
                       "HAPROXY_GROUP": "external", "SIM_START_DELAY_S": str(TASK_START_DELAY_S),
                       "SIM_FIRST_CHECK_S": str(TASK_FIRST_CHECK_S),
                       **{key: str(value) for key, value in labels.items()}},
        }
        if shape == "1.4":
            app["container"] = {"type": "DOCKER", "docker": {"image": "sandbox/echo", "network": "BRIDGE",
                                                             "portMappings": [mapping]}}
        else:
            app["container"] = {"type": "DOCKER", "docker": {"image": "sandbox/echo"}, "portMappings": [mapping]}
            app["networks"] = [{"mode": "container", "name": "sandbox"} if ip_per_task
                               else {"mode": "container/bridge"}]
            if ip_per_task:
                mapping.pop("hostPort")
        return app

    def write_app(self, app, name="app.json"):
        path = self.workdir / name
        path.write_text(json.dumps(app, indent=2))
        return path

    # -- zdd

    def zdd_argv(self, app_path, *args, step_delay_s=DEFAULT_STEP_DELAY_S, marathon=None):
        """zdd's command line for this cluster; ``marathon``: the -m value, else the simulator's URL."""
        return [*zdd_command(), "-m", marathon or self.sim.url, "-l", ",".join(lb.url for lb in self.lbs),
                "-j", str(app_path), "-f", "--syslog-socket", "/dev/null", "--log-level", "INFO",
                "-s", str(step_delay_s),
                *(() if self.reload_grace_s is None else ("--reload-grace", "%g" % self.reload_grace_s)), *args]

    def zdd(self, app_path, *args, timeout_s=300, **options):
        """Run zdd to the end; a CompletedProcess with its exit code, stdout and stderr."""
        return self.run(self.zdd_argv(app_path, *args, **options), timeout_s=timeout_s)

    def run(self, argv, timeout_s=300):
        """Run a command (zdd_argv, perhaps edited) to the end, from the checkout."""
        return subprocess.run(argv, cwd=REPO_ROOT, env=self._env(), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout_s)

    def zdd_popen(self, app_path, *args, **options):
        return subprocess.Popen(self.zdd_argv(app_path, *args, **options), cwd=REPO_ROOT, env=self._env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def _env(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        return env

    def deploy_first(self, instances=3, **app_options):
        """Deploy the blue app with zdd itself and wait until every marathon-lb routes to it."""
        app = self.app(instances, **app_options)
        result = self.zdd(self.write_app(app, "blue.json"))
        if result.returncode != 0:
            raise RuntimeError("the first deployment failed:\n" + result.stderr)
        self.wait_idle()
        return app

    def seed_first(self, instances=3, **app_options):
        """Blue as zdd's first deployment leaves it, put straight into the simulator; every marathon-lb routes to it.

        For the scenarios about what comes after the first deployment: the
        app is the one zdd would create (``zdd.prepare_app``, with no app in
        the group), added as Marathon adds a created app (its deployment
        starts the tasks and ends when they pass their health checks), and
        every marathon-lb serves it, as after ``deploy_first``, without a zdd
        process to start and run. ``deploy_first`` stays for the scenarios
        about the first deployment itself.
        """
        app = self.app(instances, **app_options)
        # with no app in the group, prepare_app reads no option
        self.sim.add_app(zdd.prepare_app(app, None, None, datetime.datetime.now()), ready=False)
        self.wait_idle()
        return app

    # -- observing

    def apps(self):
        """{app id: (instances, healthy tasks)} as Marathon has them now."""
        state = {}
        for app in self.sim.api_apps(embed_tasks=True):
            healthy = sum(1 for task in app["tasks"] if task["state"] == "TASK_RUNNING"
                          and any(result.get("alive") for result in task.get("healthCheckResults", [])))
            state[app["id"]] = (app["instances"], healthy)
        return state

    def wait_idle(self, timeout_s=60):
        """Wait until Marathon has no deployment and every marathon-lb shows its state."""
        end = time.monotonic() + timeout_s
        while self.sim.deployments():
            if time.monotonic() > end:
                raise TimeoutError("Marathon deployments did not finish: %s; tasks not healthy:\n%s"
                                   % (self.sim.deployments(), "\n".join(self.sim.health_report()) or "none"))
            time.sleep(0.1)
        for lb in self.lbs:
            lb.wait_synced(max(1.0, end - time.monotonic()))
        while not all(self.serving(lb) for lb in self.lbs):
            if time.monotonic() > end:
                raise TimeoutError("HAProxy did not mark the group's servers UP")
            time.sleep(0.1)

    def serving(self, lb):
        """Whether every server of the group's backend on ``lb`` is UP or in MAINT (none DOWN or new)."""
        backend = "%s_%d" % (GROUP, self.service_port)
        statuses = [row.get("status", "") for row in csv.DictReader(lb.haproxy.stats_csv().lstrip("# ").splitlines())
                    if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")]
        return bool(statuses) and all(status == "UP" or status.startswith("MAINT") for status in statuses)

    def frontend_urls(self):
        return ["http://%s:%d/" % (ip, self.service_port) for ip in self.lb_ips]

    def load(self, keepalive_clients=2, fresh_clients=2, max_duration_s=600, retry_idle_close=None):
        """A load generator on the group's frontend of every marathon-lb (not started).

        ``retry_idle_close`` (see load.py) defaults to whether the marathon-lbs run marathon-lb's own head,
        whose reloads close idle keep-alive connections at once.
        """
        if retry_idle_close is None:
            retry_idle_close = self.haproxy_options.get("head") == "marathon-lb"
        return LoadGenerator(self.frontend_urls(), keepalive_clients=keepalive_clients, fresh_clients=fresh_clients,
                             max_duration_s=max_duration_s, retry_idle_close=retry_idle_close)
