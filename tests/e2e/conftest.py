"""The ``sandbox`` fixture: real HAProxy instances and task processes, none left behind."""

import os
import shutil
import signal
import subprocess

import pytest

from tests.sandbox.haproxy import HAPROXY_BIN, HAProxyInstance
from tests.sandbox.tasks import ProcessLauncher


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end tests with a real HAProxy, real task processes and load")


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


def group_exists(pgid):
    """True when a live (non-zombie) process is in process group ``pgid``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as stat:
                state, _ppid, group = stat.read().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if int(group) == pgid and state != "Z":
            return True
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
    if not (shutil.which("haproxy") or os.path.exists(HAPROXY_BIN)):
        pytest.skip("HAProxy is not installed (python tests/sandbox/ensure_haproxy.py)")
    created = Sandbox(tmp_path)
    try:
        yield created
    finally:
        created.close()
        left_groups = [pgid for pgid in created.groups if group_exists(pgid)]
        left = processes_matching(str(tmp_path))
        for pgid in left_groups:
            os.killpg(pgid, signal.SIGKILL)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left_groups and not left, "processes left behind: groups %s, pids %s" % (left_groups, left)
