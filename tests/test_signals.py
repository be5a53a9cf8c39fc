"""SIGINT and SIGTERM stop zdd at a safe point with the resume command; --resume then finishes.

zdd runs as a real process here (``python -m zdd``) against a simulator on the
real clock, so the signal arrives while it really waits.
"""

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zdd
from tests.helpers import zdd_labels
from tests.sandbox.world import load_fixture

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout_s=20):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_at_a_safe_point_and_resume_finishes(real_world, tmp_path, signum, code):
    sim, lb = real_world
    sim.add_app(dict(load_fixture("1-nginx-marathon1.5.json"), id="/nginx-blue", instances=3,
                     labels=dict(load_fixture("1-nginx-marathon1.5.json")["labels"],
                                 **zdd_labels("blue", 10000, 3, "2025-06-01T10:00:00"))))
    app = load_fixture("1-nginx-marathon1.5.json")
    app["healthChecks"][0]["intervalSeconds"] = 1
    lb.extra_pids = [4003]  # marathon-lb "reloading": zdd waits while we signal
    path = tmp_path / "app.json"
    path.write_text(json.dumps(app))
    argv = ["-m", sim.url, "-l", lb.url, "-j", str(path), "-f", "--syslog-socket", "/dev/null", "-s", "0.2",
            "--reload-check", "getpids"]
    process = subprocess.Popen([sys.executable, "-m", "zdd", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: lb.pid_polls >= 3)
        process.send_signal(signum)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code, err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert "state: /nginx-green: green 1/1; /nginx-blue: blue 3/3" in err
    assert [(w.method, w.path) for w in sim.writes()] == [("POST", "/v2/apps")]
    resume = next(line for line in err.splitlines() if "to finish: " in line).split("to finish: ", 1)[1]
    assert resume.startswith("zdd ") and resume.endswith("--resume")
    lb.extra_pids = []
    resumed = zdd.main(argv + ["--resume", "-s", "0.05"], stdout=io.StringIO(), stderr=io.StringIO(),
                       environ={})
    assert resumed == 0
    assert [a["id"] for a in sim.api_apps()] == ["/nginx-green"]
