"""zdd end to end: the real command against the sandbox under continuous load.

Each scenario runs the real ``zdd`` command against the Marathon simulator
(every task a real process) and real HAProxy marathon-lbs while clients hit
every marathon-lb's frontend; it asserts zero failed client requests and the
final Marathon state, and prints one line of measured figures per zdd run
(scenario, exit code, duration, requests, failures; visible with ``-s``).
"""

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import dateutil.parser
import pytest

import zdd
from tests.sandbox import mlb
from tests.sandbox.haproxy import Server, Service
from tests.sandbox.ports import free_port

pytestmark = pytest.mark.e2e

SETTLE_S = 1.0


# --------------------------------------------------------------------------- helpers


class UnderLoad:
    """One continuous load on every marathon-lb, with zdd runs measured one by one.

    ``with UnderLoad(cluster, "name") as run:`` starts the clients, lets them
    settle, and stops them a little after the block; ``run.zdd(...)`` runs the
    command and prints its figures (the requests counted are those completed
    while it ran).
    """

    def __init__(self, cluster, scenario):
        self.cluster = cluster
        self.scenario = scenario
        self.load = cluster.load()
        self.runs = []

    def __enter__(self):
        self.load.start()
        time.sleep(SETTLE_S)
        return self

    def __exit__(self, exc_type, *exc_info):
        try:
            if exc_type is None:
                time.sleep(SETTLE_S)
        finally:
            self.load.stop()
        if exc_type is None and len(self.runs) > 1:
            counts = self.load.counts()
            print("%s: whole load: requests %d, failed %d" % (self.scenario, counts["requests"], counts["failed"]))

    def mark(self):
        """A position in the load's results, to look at what was answered between two marks."""
        return len(self.load.snapshot())

    def between(self, start, end=None):
        return self.load.snapshot()[start:end]

    def zdd(self, app_path, *args, step="", timeout_s=300, **options):
        """Run zdd to its end (``options``: those of ``Cluster.zdd_argv``); returns its CompletedProcess."""
        started_mark, started = self.mark(), time.monotonic()
        result = self.cluster.zdd(app_path, *args, timeout_s=timeout_s, **options)
        self.record(step or " ".join(args) or "deploy", result.returncode, time.monotonic() - started,
                    self.between(started_mark))
        return result

    def zdd_watching(self, app_path, *args, step, when, then, timeout_s=300):
        """Run zdd; the first time ``when()`` holds while it runs, call ``then(process)``.

        Returns (CompletedProcess, whether ``then`` was called).
        """
        started_mark, started = self.mark(), time.monotonic()
        process = self.cluster.zdd_popen(app_path, *args)
        output = []
        reader = threading.Thread(target=lambda: output.extend(process.communicate()), daemon=True)
        reader.start()
        called = False
        try:
            while process.poll() is None:
                if not called and when():
                    then(process)
                    called = True
                assert time.monotonic() - started < timeout_s, "zdd did not finish in %d s" % timeout_s
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                process.kill()
            reader.join(timeout=30)
        self.record(step, process.returncode, time.monotonic() - started, self.between(started_mark))
        stdout, stderr = output if len(output) == 2 else ("", "")
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), called

    def record(self, step, exit_code, seconds, results):
        failed = sum(1 for result in results if result.failure)
        self.runs.append((step, exit_code, seconds, len(results), failed))
        print("\n%s [%s]: zdd exit %d in %.1f s; requests %d, failed %d"
              % (self.scenario, step, exit_code, seconds, len(results), failed))


def deploy_under_load(cluster, app, *args, scenario="deploy", step="", timeout_s=300):
    """Run zdd for ``app`` while clients hit every marathon-lb; returns (result, load, seconds)."""
    path = cluster.write_app(app)
    with UnderLoad(cluster, scenario) as run:
        result = run.zdd(path, *args, step=step, timeout_s=timeout_s)
    return result, run.load, run.runs[-1][2]


def assert_no_failure(load):
    counts = load.counts()
    assert counts["requests"] > 500, load.summary()
    assert counts["failed"] == 0, load.summary()


def assert_exit(result, code=0):
    assert result.returncode == code, "zdd exited %d, expected %d\n%s" % (result.returncode, code, result.stderr)


def kill_bodies(cluster):
    """The task id lists of every POST /v2/tasks/delete zdd sent, in order."""
    return [record.body["ids"] for record in cluster.sim.writes()
            if record.method == "POST" and record.path.rstrip("/") == "/v2/tasks/delete"]


def write_hook(cluster, name, exit_code):
    """An executable pre-kill hook that appends its arguments (one JSON line per call) to a file."""
    calls = cluster.workdir / (name + ".calls")
    hook = cluster.workdir / name
    hook.write_text("#!%s\nimport json, sys\nwith open(%r, 'a') as calls:\n"
                    "    calls.write(json.dumps(sys.argv[1:]) + '\\n')\nsys.exit(%d)\n"
                    % (sys.executable, str(calls), exit_code))
    hook.chmod(0o755)
    return hook, calls


def hook_calls(calls):
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


# --------------------------------------------------------------------------- blue -> green


@pytest.mark.parametrize("version,instances", [("1.5", 3), ("1.5", 10), ("1.4", 3)],
                         ids=["marathon1.5-3", "marathon1.5-10", "marathon1.4-3"])
def test_blue_to_green(cluster_factory, version, instances):
    """Marathon 1.5 and 1.4 response shapes, the app JSON in the same version's shape."""
    cluster = cluster_factory(marathon_version=version)
    cluster.seed_first(instances, shape=version)
    result, load, _ = deploy_under_load(cluster, cluster.app(instances, shape=version),
                                        scenario="blue->green %d, Marathon %s" % (instances, version))
    assert_exit(result)
    assert_no_failure(load)
    assert cluster.apps() == {"/web-green": (instances, instances)}
    assert set(load.counts()["by_colour"]) == {"blue", "green"}


def test_slow_starting_tasks(cluster):
    """New tasks take 3 s to run, then pass their health checks: zdd waits for each."""
    cluster.seed_first(3)
    result, load, _ = deploy_under_load(cluster, cluster.app(3, SIM_START_DELAY_S=3), scenario="start delay 3 s")
    assert_exit(result)
    assert_no_failure(load)
    assert cluster.apps() == {"/web-green": (3, 3)}
    for task in cluster.sim.app("/web-green")["tasks"]:  # each new task took its 3 s to start
        started = dateutil.parser.parse(task["startedAt"]) - dateutil.parser.parse(task["stagedAt"])
        assert started.total_seconds() >= 3 - 0.001, task  # Marathon's timestamps are cut to milliseconds


def test_two_marathon_lbs(cluster_factory):
    cluster = cluster_factory(lbs=2)
    cluster.seed_first(3)
    result, load, _ = deploy_under_load(cluster, cluster.app(3), scenario="2 marathon-lbs")
    assert_exit(result)
    assert_no_failure(load)
    assert cluster.apps() == {"/web-green": (3, 3)}
    for url in cluster.frontend_urls():  # both marathon-lbs served both colours
        colours = {r.colour for r in load.snapshot() if r.lb == url and not r.failure}
        assert colours == {"blue", "green"}, url


def test_two_marathon_lbs_one_ignoring_the_stats_scope(cluster_factory):
    """Beside another app whose proxy name contains the group's backend name (and a server zdd must not take
    for one of the group's), one marathon-lb answers the scoped stats, the other ignores the scope."""
    cluster = cluster_factory(lbs=2)
    cluster.seed_first(3)
    backend = "web_%d" % cluster.service_port
    for lb in cluster.lbs:
        lb.haproxy.extra_services = [Service("x" + backend, free_port(cluster.lb_ips, {cluster.stats_port,
                                             cluster.service_port, cluster.alt_port}),
                                             [Server("127_0_0_1_1", "127.0.0.1", 1)])]
    cluster.lbs[1].haproxy.ignore_scope = True
    for lb in cluster.lbs:
        lb.sync_once()
    scoped = [{line.split(",")[0] for line in lb.haproxy.stats_csv(zdd.stats_path(backend)[len(zdd.STATS_PATH):])
               .splitlines()[1:]} for lb in cluster.lbs]
    assert scoped == [{backend, "x" + backend}, {"stats", backend, "x" + backend}]
    result, load, _ = deploy_under_load(cluster, cluster.app(3), scenario="2 marathon-lbs, one without scopes")
    assert_exit(result)
    assert_no_failure(load)
    assert cluster.apps() == {"/web-green": (3, 3)}


def test_ip_per_task(cluster):
    cluster.seed_first(3, ip_per_task=True)
    result, load, _ = deploy_under_load(cluster, cluster.app(3, ip_per_task=True), scenario="IP per task")
    assert_exit(result)
    assert_no_failure(load)
    assert cluster.apps() == {"/web-green": (3, 3)}
    assert set(load.counts()["by_colour"]) == {"blue", "green"}


@pytest.mark.parametrize("version,ip_per_task", [("1.5", False), ("1.4", False), ("1.5", True)],
                         ids=["marathon1.5", "marathon1.4", "marathon1.5-ip-per-task"])
def test_an_unchanged_release_is_skipped(cluster_factory, version, ip_per_task):
    """The JSON blue was deployed from, again with --skip-unchanged: nothing differs, nothing is written."""
    cluster = cluster_factory(marathon_version=version)
    options = {"shape": version, "ip_per_task": True} if ip_per_task else {"shape": version}
    cluster.deploy_first(3, **options)
    cluster.sim.clear_log()
    result, load, _ = deploy_under_load(cluster, cluster.app(3, **options), "--skip-unchanged",
                                        scenario="unchanged, Marathon %s" % version)
    assert_exit(result)
    assert "nothing differs from /web-blue" in result.stderr
    assert "runs this definition already: nothing to deploy (--skip-unchanged)" in result.stderr
    assert cluster.sim.writes() == []
    assert cluster.apps() == {"/web-blue": (3, 3)}
    assert load.counts()["failed"] == 0, load.summary()


# --------------------------------------------------------------------------- hybrid


@pytest.mark.parametrize("complete", ["--complete-cur", "--complete-prev"])
def test_hybrid_then_complete(cluster, complete):
    """--new-instances 2 on blue 4 leaves both colours serving; --complete-cur/--complete-prev converges."""
    cluster.seed_first(4)
    path = cluster.write_app(cluster.app(4))
    with UnderLoad(cluster, "hybrid then %s" % complete) as run:
        hybrid = run.zdd(path, "--new-instances", "2")
        assert_exit(hybrid)
        assert cluster.apps() == {"/web-blue": (2, 2), "/web-green": (2, 2)}
        cluster.wait_idle()
        quiet = run.mark()
        time.sleep(2)
        served = {result.colour for result in run.between(quiet) if not result.failure}
        assert served == {"blue", "green"}, "the hybrid group serves both colours"
        completed = run.zdd(path, complete)
        assert_exit(completed)
    assert_no_failure(run.load)
    if complete == "--complete-cur":
        assert cluster.apps() == {"/web-green": (4, 4)}
    else:
        assert cluster.apps() == {"/web-blue": (4, 4)}


# --------------------------------------------------------------------------- SIGKILL, then --resume


def test_sigkill_then_resume(cluster):
    """zdd killed with SIGKILL halfway; the same command with --resume finishes, one load throughout."""
    cluster.seed_first(3)
    path = cluster.write_app(cluster.app(3))
    with UnderLoad(cluster, "SIGKILL then --resume") as run:
        killed, called = run.zdd_watching(path, step="zdd, SIGKILL once green >= 2 or a kill",
                                          when=lambda: _halfway(cluster),
                                          then=lambda process: process.send_signal(signal.SIGKILL))
        assert called, "zdd ended before it was killed:\n" + killed.stderr
        assert killed.returncode == -signal.SIGKILL
        assert set(cluster.apps()) == {"/web-blue", "/web-green"}, "killed before the deployment ended"
        resumed = run.zdd(path, "--resume")
        assert_exit(resumed)
        assert "Resuming: /web-green is the new app, /web-blue the old one" in resumed.stderr
    assert_no_failure(run.load)
    assert cluster.apps() == {"/web-green": (3, 3)}


def _halfway(cluster):
    """The new app was scaled to 2 or more, or an old task was killed."""
    for record in cluster.sim.writes():
        if record.method == "POST" and record.path.rstrip("/") == "/v2/tasks/delete":
            return True
        if (record.method == "PUT" and record.path.rstrip("/") == "/v2/apps/web-green"
                and isinstance(record.body, dict) and record.body.get("instances", 0) >= 2):
            return True
    return False


# --------------------------------------------------------------------------- the pre-kill hook


def test_pre_kill_hook_gets_the_apps_and_the_tasks(cluster):
    cluster.seed_first(3)
    hook, calls = write_hook(cluster, "hook-ok", 0)
    result, load, _ = deploy_under_load(cluster, cluster.app(3), "--pre-kill-hook", str(hook),
                                        scenario="pre-kill hook", step="--pre-kill-hook hook-ok")
    assert_exit(result)
    assert_no_failure(load)
    assert cluster.apps() == {"/web-green": (3, 3)}
    made = hook_calls(calls)
    killed = kill_bodies(cluster)
    assert made and len(made) == len(killed), (made, killed)
    for (old_json, task_ids_json, new_json), kill_ids in zip(made, killed):
        old_app, task_ids, new_app = json.loads(old_json), json.loads(task_ids_json), json.loads(new_json)
        assert old_app["id"] == "/web-blue" and new_app["id"] == "/web-green"
        assert task_ids == kill_ids, "the hook is told exactly the tasks killed next"
        old_task_ids = {task["id"] for task in old_app["tasks"]}
        assert task_ids and set(task_ids) <= old_task_ids, "only tasks of the old app are killed"


def test_pre_kill_hook_refusing_stops_before_any_kill(cluster):
    cluster.seed_first(3)
    hook, calls = write_hook(cluster, "hook-no", 3)
    path = cluster.write_app(cluster.app(3))
    with UnderLoad(cluster, "pre-kill hook exits 3") as run:
        result = run.zdd(path, "--pre-kill-hook", str(hook), step="--pre-kill-hook hook-no")
        after_zdd = run.mark()
        time.sleep(2)
        served_after = {r.colour for r in run.between(after_zdd) if not r.failure}
    assert_exit(result, 12)
    assert "pre-kill hook" in result.stderr and "exited with 3" in result.stderr
    assert len(hook_calls(calls)) == 1
    assert kill_bodies(cluster) == [], "no task was killed"
    assert_no_failure(run.load)
    assert "blue" in served_after, "the old app still serves after zdd stopped"
    assert cluster.apps() == {"/web-blue": (3, 3), "/web-green": (1, 1)}


# --------------------------------------------------------------------------- a lingering HAProxy worker


def test_old_worker_held_open_then_max_wait(cluster):
    """A connection keeps an old HAProxy worker alive: zdd (with getpids) waits for it, then goes on after --max-wait.

    The connection is opened once the new app's first task runs (its first
    health check is a second later), so the reload that routes to that task
    leaves the worker behind; HAProxy ends the incomplete request after
    ``timeout http-request`` (15 s), long after --max-wait.
    """
    cluster.seed_first(3)
    lb = cluster.lbs[0]
    path = cluster.write_app(cluster.app(3))
    try:
        with UnderLoad(cluster, "old worker held, --max-wait 4") as run:
            result, called = run.zdd_watching(
                path, "--max-wait", "4", "--reload-check", "getpids", step="--max-wait 4",
                when=lambda: _first_task_running(cluster, "/web-green"),
                then=lambda process: lb.hold_old_worker(cluster.service_port))
    finally:
        lb.release_old_worker()
    assert called
    assert_exit(result)
    log = [line.split(" zdd: ", 1)[-1] for line in result.stderr.splitlines()]
    assert any("is reloading (3 HAProxy PIDs)" in line for line in log)
    forced = [index for index, line in enumerate(log) if line.startswith("--max-wait (4 s) passed")]
    assert forced, "zdd went on after --max-wait"
    # it killed the old tasks in MAINT although the old worker still lived
    following = log[forced[0] + 1]
    assert following.startswith("Killing ") and "old task(s) of /web-blue" in following, log[forced[0]:forced[0] + 3]
    assert "Deleted /web-blue: the deployment is complete" in log
    assert_no_failure(run.load)
    assert cluster.apps() == {"/web-green": (3, 3)}


def _first_task_running(cluster, app_id):
    app = cluster.sim.app(app_id)
    return app is not None and any(task["state"] == "TASK_RUNNING" for task in app["tasks"])


# --------------------------------------------------------------------------- what marathon-lb reads


@pytest.mark.parametrize("version", ["1.4", "1.5"])
def test_simulator_serves_what_marathon_lb_reads(cluster_factory, version):
    """GET /v2/apps?embed=apps.tasks, the request marathon-lb sends, with every field it reads."""
    cluster = cluster_factory(marathon_version=version)
    cluster.deploy_first(2, shape=version)
    assert any(record.method == "GET" and record.path.rstrip("/") == "/v2/apps"
               and "apps.tasks" in record.query.get("embed", "").split(",") for record in cluster.sim.requests), \
        "the marathon-lb stand-in reads this very request"
    with urllib.request.urlopen(cluster.sim.url + "/v2/apps?embed=apps.tasks", timeout=5) as response:
        apps = json.load(response)["apps"]
    assert [app["id"] for app in apps] == ["/web-blue"]
    app = apps[0]
    labels = app["labels"]
    assert labels["HAPROXY_DEPLOYMENT_GROUP"] == "web"
    assert labels["HAPROXY_0_PORT"] == str(cluster.service_port)
    assert labels["HAPROXY_DEPLOYMENT_COLOUR"] == "blue"
    assert labels["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"] == "2"
    dateutil.parser.parse(labels["HAPROXY_DEPLOYMENT_STARTED_AT"])
    assert app["instances"] == 2
    [check] = app["healthChecks"]
    assert check["protocol"] == ("HTTP" if version == "1.4" else "MESOS_HTTP") and check["path"] == "/health"
    dateutil.parser.parse(app["versionInfo"]["lastScalingAt"])
    if version == "1.4":
        assert app["container"]["docker"]["network"] == "BRIDGE"
        [mapping] = app["container"]["docker"]["portMappings"]
        assert app["ports"] == [cluster.service_port]
        assert [d["port"] for d in app["portDefinitions"]] == [cluster.service_port]
        assert "networks" not in app and "portMappings" not in app["container"]
    else:
        assert app["networks"] == [{"mode": "container/bridge"}]
        [mapping] = app["container"]["portMappings"]
        assert "portMappings" not in app["container"]["docker"]
    assert mapping["servicePort"] == cluster.service_port and mapping["containerPort"] == 8080
    assert len(app["tasks"]) == 2
    for task in app["tasks"]:
        assert task["id"].startswith("web-blue.")
        assert task["host"] == "127.0.0.1" and task["state"] == "TASK_RUNNING"
        assert len(task["ports"]) == 1 and isinstance(task["ports"][0], int)
        assert isinstance(task.get("ipAddresses", []), list)
        assert [result["alive"] for result in task["healthCheckResults"]] == [True]
        with urllib.request.urlopen("http://%s:%d/" % (task["host"], task["ports"][0]), timeout=5) as answer:
            assert answer.headers["X-Colour"] == "blue"  # the port is where the task listens
    [service] = mlb.services_from_apps(apps)
    assert service.name == "web_%d" % cluster.service_port and service.port == cluster.service_port
    assert sorted(server.task_id for server in service.servers) == sorted(task["id"] for task in app["tasks"])


def test_simulator_serves_ip_per_task_addresses(cluster):
    """IP per task: each task's ipAddresses, and the container port marathon-lb routes to."""
    cluster.seed_first(2, ip_per_task=True)
    with urllib.request.urlopen(cluster.sim.url + "/v2/apps?embed=apps.tasks", timeout=5) as response:
        [app] = json.load(response)["apps"]
    assert app["networks"][0]["mode"] == "container"
    for task in app["tasks"]:
        [address] = task["ipAddresses"]
        assert address["protocol"] == "IPv4" and address["ipAddress"].startswith("127.0.")
        with urllib.request.urlopen("http://%s:8080/" % address["ipAddress"], timeout=5) as answer:
            assert answer.headers["X-Colour"] == "blue"
    [service] = mlb.services_from_apps([app])
    assert {(server.ip, server.port) for server in service.servers} == {
        (task["ipAddresses"][0]["ipAddress"], 8080) for task in app["tasks"]}
