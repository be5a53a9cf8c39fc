"""The tests' shared helpers: seed the simulator as zdd left it, run zdd.main in process, read the writes.

Fixtures stay in conftest.py (``world``, ``app_file``, ``app_path``, ``real_world``); everything a test
module calls to seed, run or read is here, so that test modules neither copy them nor import them from each other.
"""

import http.server
import io
import json
import stat
import sys
import threading
import time

import zdd
from tests.sandbox.ports import free_port
from tests.sandbox.world import load_fixture

QUIET = ("--syslog-socket", "/dev/null", "--log-level", "INFO")


def zdd_labels(colour, port, instances, started_at, new_instances=0):
    """The labels zdd writes on a colour it deployed."""
    return {
        "HAPROXY_APP_ID": "nginx",
        "HAPROXY_0_PORT": str(port),
        "HAPROXY_DEPLOYMENT_COLOUR": colour,
        "HAPROXY_DEPLOYMENT_STARTED_AT": started_at,
        "HAPROXY_DEPLOYMENT_TARGET_INSTANCES": str(instances),
        "HAPROXY_DEPLOYMENT_NEW_INSTANCES": str(new_instances),
    }


def seed_blue(world, instances, fixture="1-nginx-marathon1.5.json", labels=None, **changes):
    """blue as zdd deployed it, with ``instances`` running tasks (and ``labels`` besides zdd's)."""
    return world.seed_app(fixture, id="/nginx-blue", instances=instances,
                          labels=dict(zdd_labels("blue", 10000, instances, "2025-06-01T10:00:00"), **(labels or {})),
                          **changes)


def seed_green(world, instances=1, target=3, new_instances=0):
    """green (the new colour, started after ``seed_blue``'s blue) as zdd left it while deploying it."""
    green_app = load_fixture("1-nginx-marathon1.5.json")
    green_app["container"]["portMappings"][0]["servicePort"] = 10001
    return world.seed_app(green_app, id="/nginx-green", instances=instances,
                          labels=zdd_labels("green", 10000, target, "2025-06-02T10:00:00", new_instances))


def seed_half_done(world, blue=2, green=1, target=3, new_instances=0):
    """blue (old) and green (new) both present, as a stopped deployment leaves them."""
    seed_blue(world, blue)
    return seed_green(world, green, target, new_instances)


def lb_routes(world, app_id, count):
    """A callable: whether the fake marathon-lb renders ``count`` servers of ``app_id`` now."""

    def check():
        servers = [server for service in world.lb.services() for server in service.servers]
        return sum(server.app_id == app_id for server in servers) == count

    return check


def unhealthy_app():
    """The nginx app JSON whose tasks never pass a health check in the simulator."""
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"]["SIM_HEALTHY"] = "false"
    return app


def make_hook(tmp_path, exit_code):
    """A pre-kill hook that records its arguments (one JSON list a line) and exits ``exit_code``."""
    record = tmp_path / "hook-calls.jsonl"
    hook = tmp_path / "hook.py"
    hook.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.exit({exit_code})\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    return str(hook), record


def refusing_hook(directory, allowed_calls):
    """A pre-kill hook (written in ``directory``) that lets ``allowed_calls`` kills through, then exits 3."""
    count = directory / "hook-count"
    hook = directory / "hook.py"
    hook.write_text(
        f"#!{sys.executable}\nimport pathlib, sys\n"
        f"count = pathlib.Path({str(count)!r})\n"
        "calls = int(count.read_text()) if count.exists() else 0\n"
        "count.write_text(str(calls + 1))\n"
        f"sys.exit(0 if calls < {allowed_calls} else 3)\n"
    )
    hook.chmod(0o755)
    return str(hook)


def run(world, app_path, *args, ask=None, lbs=None, clock=None, marathon=None, stderr=None, environ=None):
    """Run zdd in process, with --force unless ``ask`` answers; returns (exit code, stdout, stderr).

    ``marathon``, ``lbs`` and ``clock`` default to the world's (``world`` may be None when all three are given);
    ``stderr`` is a stream to write to (a StringIO by default), ``environ`` zdd's environment (empty by default).
    """
    out, err = io.StringIO(), stderr if stderr is not None else io.StringIO()
    force = () if ask else ("--force",)
    argv = ["-m", marathon or world.sim.url, "-l", lbs or world.lb.url, "-j", app_path, *QUIET, *force, *args]
    code = zdd.main(argv, clock=clock or world.clock, ask=ask or (lambda question: True), stdout=out, stderr=err,
                    environ={} if environ is None else environ)
    return code, out.getvalue(), err.getvalue()


def run_json(world, app_path, *args, clock=None, marathon=None):
    """zdd.main with --force and JSON events; returns (exit code, events, stderr)."""
    code, out, err = run(world, app_path, "--output", "json", *args, clock=clock, marathon=marathon)
    return code, [json.loads(line) for line in out.splitlines()], err


def writes(world):
    """The writes that reached Marathon, compactly: ("create", id, n), ("kill", n), ("scale", id, n), ..."""
    compact = []
    for request in world.sim.writes():
        if request.method == "POST" and request.path == "/v2/apps":
            compact.append(("create", request.body["id"], request.body["instances"]))
        elif request.method == "POST" and request.path == "/v2/tasks/delete":
            compact.append(("kill", len(request.body["ids"])))
        elif request.method == "PUT":
            compact.append(("scale", "/" + request.path.split("/v2/apps/")[1], request.body["instances"]))
        elif request.method == "DELETE":
            compact.append(("delete", "/" + request.path.split("/v2/apps/")[1]))
        else:
            compact.append((request.method, request.path))
    return compact


def instances(world):
    """{app id: (instances, running tasks)} of the apps Marathon has now."""
    apps = world.sim.api_apps(embed_tasks=True)
    return {app["id"]: (app["instances"], sum(t["state"] == "TASK_RUNNING" for t in app["tasks"])) for app in apps}


class ActingClock:
    """``clock`` as zdd gets it, calling ``action()`` after each of its sleeps (zdd sleeps between its looks)."""

    def __init__(self, clock, action):
        self.clock, self.action = clock, action

    def __getattr__(self, name):
        return getattr(self.clock, name)

    def sleep(self, seconds):
        self.clock.sleep(seconds)
        self.action()


def options(**changes):
    """zdd's Options for the pure core, with ``changes``."""
    return zdd.Options(marathon="http://m:8080", marathon_lb=("http://lb:9090",), json="app.json", **changes)


def settle(world, seconds=30):
    """Let ``seconds`` pass on the world's clock; returns ``instances(world)``."""
    world.clock.advance(seconds)
    return instances(world)


# --- the write sequences of docs/behaviour.rst, 'The scale schedule' ---------------------------


SEQUENCE_3 = [("create", "/nginx-green", 1), ("kill", 1), ("scale", "/nginx-green", 2), ("kill", 1),
              ("scale", "/nginx-green", 3), ("delete", "/nginx-blue")]
SEQUENCE_10 = [("create", "/nginx-green", 1), ("kill", 1), ("scale", "/nginx-green", 2), ("kill", 1),
               ("scale", "/nginx-green", 3), ("kill", 1), ("scale", "/nginx-green", 5), ("kill", 2),
               ("scale", "/nginx-green", 10), ("delete", "/nginx-blue")]
SEQUENCE_HYBRID = [("create", "/nginx-green", 1), ("kill", 1), ("scale", "/nginx-green", 2), ("kill", 1)]


# --- several Marathon masters -------------------------------------------------------------------


def closed_port_url():
    """An http:// URL of a loopback port nobody listens on: a connection to it is refused."""
    return f"http://127.0.0.1:{free_port()}"


class AnotherMaster:
    """A second listener serving the same simulator: another Marathon master, with the same state.

    ``stop()`` closes it, so that connections to it are refused, while the simulator goes on.
    """

    def __init__(self, sim):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), sim._handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.stopped = False

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)


def wait_for(predicate, timeout_s=10.0, what="condition"):
    """Poll ``predicate`` every 50 ms until it is true (its value is returned); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)
