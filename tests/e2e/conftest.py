"""The ``sandbox`` fixture: real HAProxy instances and task processes, none left behind."""

import os
import signal
import subprocess

import pytest

from tests.sandbox.haproxy import HAProxyInstance, find_haproxy
from tests.sandbox.tasks import ProcessLauncher


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end tests with a real HAProxy, real task processes and load")


HEALTH_LOG_LINES = 30  # the health check changes a failed scenario's report shows, per cluster


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed scenario's report says which of its tasks were not healthy, and why (see ``health_sections``)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when == "call" and "cluster_factory" in item.funcargs:
        report.sections.extend(health_sections(item.funcargs["cluster_factory"].clusters))


def health_sections(clusters):
    """(title, text) report sections: each cluster's tasks not healthy now, and its health check log."""
    sections = []
    for cluster in clusters:
        try:
            unhealthy = cluster.sim.health_report()
        except Exception as error:  # a report about a failure must not fail itself
            unhealthy = ["(no report: %r)" % error]
        log = cluster.launcher.workdir / "health.log"
        changes = log.read_text().splitlines()[-HEALTH_LOG_LINES:] if log.exists() else []
        sections.append(("%s: tasks not healthy" % cluster.workdir.name, "\n".join(unhealthy) or "none"))
        sections.append(("%s: health check changes (last %d)" % (cluster.workdir.name, HEALTH_LOG_LINES),
                         "\n".join(changes) or "none"))
    return sections


def require_haproxy():
    """Skip without HAProxy, except in CI (ZDD_REQUIRE_E2E=1), where that is a failure."""
    if find_haproxy():
        return
    if os.environ.get("ZDD_REQUIRE_E2E"):
        pytest.fail("HAProxy is not installed, and ZDD_REQUIRE_E2E is set")
    pytest.skip("HAProxy is not installed (python -m tests.sandbox.ensure_haproxy)")


def processes_matching(pattern):
    """PIDs whose command line contains ``pattern`` (pgrep -f), zombies excluded."""
    found = subprocess.run(["pgrep", "-f", pattern], stdout=subprocess.PIPE, text=True).stdout.split()
    alive = []
    for pid in map(int, found):
        try:
            with open("/proc/%d/stat" % pid) as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
        except OSError:
            pass
    return alive


def group_exists(pgid, marker):
    """True when a live (non-zombie) process of this test is in process group ``pgid``: one whose command line
    holds ``marker`` (the test's directory). A group whose leader was reaped may be a stranger's by now: PIDs
    wrap in well under a minute with scenarios side by side, and each new task is a group leader."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as stat:
                state, _ppid, group = stat.read().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if int(group) == pgid and state != "Z" and _ours(int(entry), marker):
            return True
    return False


def _ours(pid, marker):
    """Whether ``pid`` is alive (not a zombie) and ``marker`` is in its command line."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
            return marker in cmdline.read().decode(errors="replace") and _alive(pid)
    except OSError:
        return False


class Sandbox:
    """Makes HAProxy instances and one task launcher under ``workdir``; close() stops them all."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.instances = []
        self._launcher = None
        self.groups = set()  # process groups started: each HAProxy master's and each task's

    def haproxy(self, name="lb", **options):
        instance = HAProxyInstance(self.workdir / name, **options)
        self.instances.append(instance)
        return instance

    @property
    def launcher(self):
        if self._launcher is None:
            self._launcher = ProcessLauncher(self.workdir / "tasks")
        return self._launcher

    def close(self):
        for instance in self.instances:
            if instance.process is not None:
                self.groups.add(instance.process.pid)
            instance.stop()
        if self._launcher is not None:
            self.groups.update(self._launcher.pids())
            self.groups.update(task.process.pid for task in self._launcher._tasks.values())
            self._launcher.close()


@pytest.fixture
def sandbox(tmp_path):
    """A Sandbox; at teardown every process it started must be gone."""
    require_haproxy()
    created = Sandbox(tmp_path)
    try:
        yield created
    finally:
        created.close()
        left_groups = [pgid for pgid in created.groups if group_exists(pgid, str(tmp_path))]
        left = processes_matching(str(tmp_path))
        for pgid in left_groups:
            os.killpg(pgid, signal.SIGKILL)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left_groups and not left, "processes left behind: groups %s, pids %s" % (left_groups, left)


# zdd's --reload-grace in the scenarios (zdd's default: 2 s): the grace outlasts the requests an old HAProxy
# worker still has in flight to the tasks going away, and the sandbox's tasks answer within milliseconds (a second
# per kill saved). The scenarios whose tasks answer slowly, and those about the grace, pass reload_grace_s=None.
RELOAD_GRACE_S = 1.0


@pytest.fixture
def cluster_factory(tmp_path):
    """Make started Clusters (zdd run with --reload-grace RELOAD_GRACE_S unless ``reload_grace_s`` says otherwise);
    at teardown every process any of them started must be gone."""
    from tests.sandbox.cluster import Cluster

    require_haproxy()
    made = []

    def make(**options):
        options.setdefault("reload_grace_s", RELOAD_GRACE_S)
        cluster = Cluster(tmp_path / ("cluster-%d" % len(made)), **options)
        made.append(cluster)
        return cluster.start()

    make.clusters = made
    yield make
    started = set()
    for cluster in made:
        try:
            started.update(cluster.pids())
        finally:
            cluster.close()
    # a PID reaped by close() may be a stranger's by now: only one with this test's directory in its command line
    left = sorted({pid for pid in started if _ours(pid, str(tmp_path))} | set(processes_matching(str(tmp_path))))
    for pid in left:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            os.kill(pid, signal.SIGKILL)
    assert not left, "processes left running: %s" % left


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def cluster(cluster_factory):
    """A started Cluster with one marathon-lb, Marathon 1.5 shapes."""
    return cluster_factory()
