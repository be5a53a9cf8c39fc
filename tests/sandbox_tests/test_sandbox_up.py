"""The sandbox's commands: ``tests.sandbox.up`` (``tox -e sandbox``) and ``tests.sandbox.demo`` (``tox -e demo``).

The sandbox stays up until a signal, zdd works against it, and nothing is
left afterwards; the demo deploys green under load without a failed request.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.e2e.conftest import processes_matching, require_haproxy
from tests.sandbox.cluster import REPO_ROOT, zdd_command

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 120
ZDD_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60


def checkout_env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))


def descendants(root_pid):
    """Every live process whose parent chain leads to ``root_pid``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = set(), {root_pid}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def exported(env_file):
    """The ``export NAME=value`` lines of the env file, as a dict."""
    values = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = shlex.split(line[len("export "):])[0].partition("=")
            values[name] = value
    return values


def app_ids(marathon_url):
    with urllib.request.urlopen(marathon_url + "/v2/apps", timeout=5) as reply:
        return {app["id"] for app in json.load(reply)["apps"]}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sandbox_up_then_zdd_then_a_signal_leaves_nothing(tmp_path, signum):
    require_haproxy()
    env_file = tmp_path / "sandbox.env"
    env = checkout_env()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "tests.sandbox.up", "--env-file", str(env_file), "--workdir", str(tmp_path),
         "--instances", "2", "--minutes", "10"],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    started = set()
    try:
        end_s = time.monotonic() + START_TIMEOUT_S
        while not env_file.exists():
            assert sandbox.poll() is None, "the sandbox ended early:\n" + sandbox.stdout.read()
            assert time.monotonic() < end_s, "no env file after %d s" % START_TIMEOUT_S
            time.sleep(0.2)
        variables = exported(env_file)
        assert set(variables) >= {"ZDD_MARATHON", "ZDD_MARATHON_LB", "ZDD_JSON"}
        assert app_ids(variables["ZDD_MARATHON"]) == {"/web-blue"}

        # What the sandbox tells a person to paste: source the file, run zdd -f.
        deployed = subprocess.run(["sh", "-c", '. "$1" && shift && exec "$@"', "sh", str(env_file),
                                   *zdd_command(), "-f"],
                                  cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=ZDD_TIMEOUT_S)
        assert deployed.returncode == 0, deployed.stderr
        assert "Deleted /web-blue" in deployed.stderr
        assert app_ids(variables["ZDD_MARATHON"]) == {"/web-green"}

        started = descendants(sandbox.pid)
        assert len(started) >= 2 + 2 + 2, started  # at least 2 HAProxy masters, their workers, 2 tasks
        os.killpg(sandbox.pid, signum)  # what Ctrl-C in a terminal does: the whole foreground group
        output, _ = sandbox.communicate(timeout=STOP_TIMEOUT_S)
        assert sandbox.returncode == 0, output
        assert "sandbox stopped on a signal" in output
        assert not env_file.exists()
        left = sorted({pid for pid in started if alive(pid)} | set(processes_matching(str(tmp_path))))
        assert not left, "processes left behind: %s" % left
    finally:
        if sandbox.poll() is None:
            os.killpg(sandbox.pid, signal.SIGKILL)
            sandbox.wait()
        for pid in {pid for pid in started if alive(pid)} | set(processes_matching(str(tmp_path))):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def test_demo_deploys_green_under_load_without_a_failed_request():
    require_haproxy()
    demo = subprocess.run([sys.executable, "-m", "tests.sandbox.demo", "--instances", "3"], cwd=REPO_ROOT,
                          env=checkout_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "zdd exited with 0; apps now: {'/web-green': (3, 3)}" in demo.stdout
    requests = re.search(r"^requests: (\d+) failed: (\d+)$", demo.stdout, re.M)
    assert requests and int(requests[1]) > 0 and requests[2] == "0", demo.stdout
