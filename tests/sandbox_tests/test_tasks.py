"""Real task processes: they serve, report their colour, and stop gracefully."""

import http.client
import json
import os
import signal
import threading
import time

import pytest

from tests.e2e.conftest import processes_matching
from tests.helpers import wait_for
from tests.sandbox.marathon import PASSED, Check

pytestmark = pytest.mark.e2e


def get(ip, port, path="/", timeout_s=5):
    connection = http.client.HTTPConnection(ip, port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("X-Colour"), response.read()
    finally:
        connection.close()


def wait_healthy(launcher, task_id, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while not launcher.check_health(task_id).healthy:
        assert time.monotonic() < deadline, "task %s never healthy" % task_id
        time.sleep(0.05)


def app(colour, **labels):
    return {"id": "/nginx-" + colour,
            "labels": dict({"HAPROXY_DEPLOYMENT_COLOUR": colour}, **{k: str(v) for k, v in labels.items()})}


def test_task_serves_its_app_colour_and_id(sandbox):
    launcher = sandbox.launcher
    placement = launcher.launch(app("green"), "nginx-green.1", False, [80])
    assert placement.host == "127.0.0.1" and placement.ip is None and len(placement.ports) == 1
    wait_healthy(launcher, "nginx-green.1")
    status, colour, body = get("127.0.0.1", placement.ports[0], "/anything")
    assert (status, colour) == (200, "green")
    assert json.loads(body) == {"app": "/nginx-green", "colour": "green", "task": "nginx-green.1", "path": "/anything"}
    assert get("127.0.0.1", placement.ports[0], "/health")[0] == 200


def test_ip_per_task_listens_on_its_own_loopback_address(sandbox):
    launcher = sandbox.launcher
    first = launcher.launch(app("blue"), "a", True, [8080])
    second = launcher.launch(app("blue"), "b", True, [8080])
    assert first.ports == [] and second.ports == []
    # an address of its own, off 127.0.0.x (where the marathon-lbs listen); side by side, each test its own
    assert first.ip.startswith("127.0.") and not first.ip.startswith("127.0.0.") and first.ip != second.ip
    wait_healthy(launcher, "a")
    wait_healthy(launcher, "b")
    assert get(first.ip, 8080)[:2] == (200, "blue")
    assert get(second.ip, 8080)[:2] == (200, "blue")


def test_start_delay_binds_late(sandbox):
    launcher = sandbox.launcher
    started = time.monotonic()
    launcher.launch(app("blue", SIM_START_DELAY_S=1.0), "late", False, [80])
    assert not launcher.check_health("late").healthy
    wait_healthy(launcher, "late")
    assert time.monotonic() - started >= 1.0


def test_sigterm_finishes_the_request_in_flight_then_exits(sandbox):
    launcher = sandbox.launcher
    placement = launcher.launch(app("blue", SIM_SLOW_MS=1500), "slow", False, [80])
    wait_healthy(launcher, "slow")
    answers = []
    in_flight = threading.Thread(target=lambda: answers.append(get("127.0.0.1", placement.ports[0])))
    in_flight.start()
    time.sleep(0.3)
    launcher.kill("slow", grace_s=10)
    time.sleep(0.3)
    with pytest.raises(ConnectionRefusedError):
        get("127.0.0.1", placement.ports[0], "/health")  # stopped accepting
    in_flight.join()
    assert answers and answers[0][:2] == (200, "blue")
    deadline = time.monotonic() + 5
    while not launcher.is_gone("slow"):
        assert time.monotonic() < deadline, "task did not exit after SIGTERM"
        time.sleep(0.05)


def test_sigkill_after_grace_when_sigterm_is_not_enough(sandbox):
    launcher = sandbox.launcher
    placement = launcher.launch(app("blue", SIM_SLOW_MS=5000), "stuck", False, [80])
    wait_healthy(launcher, "stuck")

    def doomed_request():
        try:
            get("127.0.0.1", placement.ports[0], timeout_s=8)
        except (OSError, http.client.HTTPException):
            pass  # the task dies under it: that is the point

    threading.Thread(target=doomed_request, daemon=True).start()
    time.sleep(0.3)
    started = time.monotonic()
    launcher.kill("stuck", grace_s=0.5)
    assert time.monotonic() - started < 0.2  # kill() does not wait
    deadline = time.monotonic() + 3
    while not launcher.is_gone("stuck"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert time.monotonic() - started < 3


def test_close_kills_every_task(sandbox):
    launcher = sandbox.launcher
    for index in range(3):
        launcher.launch(app("blue"), "t%d" % index, False, [80])
    # a process just started shows its own command line only once it has exec'd (under load, not at once)
    wait_for(lambda: len(processes_matching(launcher.tag)) == 3, what="3 task processes")
    launcher.close()
    assert all(launcher.is_gone("t%d" % index) for index in range(3))
    assert processes_matching(launcher.tag) == []
    assert os.getpid() not in processes_matching(launcher.tag)


def test_close_signals_no_group_whose_leader_was_reaped(sandbox, monkeypatch):
    """A task reaped before close() may have its PID, hence its group id, taken by another process by then
    (PIDs wrap in well under a minute with scenarios side by side): close() must not signal that group."""
    launcher = sandbox.launcher
    launcher.launch(app("blue"), "gone", False, [80])
    launcher.launch(app("blue"), "running", False, [80])
    wait_for(lambda: len(launcher.pids()) == 2, what="2 task processes")
    gone_pid = launcher._tasks["gone"].process.pid
    launcher.kill("gone", 0.1)
    wait_for(lambda: launcher.is_gone("gone"), what="the killed task to be reaped")
    signalled = []
    real_killpg = os.killpg
    monkeypatch.setattr(os, "killpg", lambda group, signum: (signalled.append(group), real_killpg(group, signum)))
    running_pid = launcher._tasks["running"].process.pid
    launcher.close()
    assert gone_pid not in signalled
    assert running_pid in signalled


def test_a_failed_health_check_says_why_and_the_log_keeps_each_change(sandbox):
    launcher = sandbox.launcher
    launcher.launch(app("blue", SIM_START_DELAY_S=1.0), "late", False, [80])
    launcher.launch(app("blue"), "stranger-killed", False, [80])
    launcher.launch(app("blue"), "killed", False, [80])
    launcher.launch(app("blue", SIM_HEALTHY="false"), "unhealthy", False, [80])
    refused = launcher.check_health("late")
    assert not refused.healthy and refused.cause.startswith("ConnectionRefusedError: ")
    assert launcher.check_health("unhealthy") == Check(False, "SIM_HEALTHY is false")
    assert launcher.check_health("nobody") == Check(False, "no such task")
    for task_id in ("late", "stranger-killed", "killed"):
        wait_healthy(launcher, task_id)
        assert launcher.check_health(task_id) == PASSED
    os.killpg(launcher._tasks["stranger-killed"].process.pid, signal.SIGKILL)  # not through the launcher
    launcher.kill("killed", grace_s=5)
    wait_for(lambda: launcher.is_gone("stranger-killed") and launcher.is_gone("killed"), what="both tasks gone")
    assert launcher.check_health("stranger-killed") == Check(
        False, "task process gone (killed by SIGKILL, never killed)")
    assert launcher.check_health("killed") == Check(False, "task process gone (exit code 0)")
    log = [line.split(" ", 1)[1] for line in (sandbox.workdir / "tasks" / "health.log").read_text().splitlines()]
    # a change is logged once, however often the same cause is seen
    assert log.count("late: " + refused.cause) == 1 and log.count("late: passed") == 1
    assert log.index("late: " + refused.cause) < log.index("late: passed")
    assert log.count("unhealthy: SIM_HEALTHY is false") == 1
    assert log.index("stranger-killed: passed") < log.index(
        "stranger-killed: task process gone (killed by SIGKILL, never killed)")
    assert log.index("killed: passed") < log.index("killed: task process gone (exit code 0)")


def test_a_check_waits_the_apps_timeout_seconds_for_an_answer(sandbox):
    launcher = sandbox.launcher
    launcher.launch(dict(app("blue"), healthChecks=[{"path": "/health", "timeoutSeconds": 0.3}]), "hung", False, [80])
    wait_healthy(launcher, "hung")
    process_group = launcher._tasks["hung"].process.pid
    os.killpg(process_group, signal.SIGSTOP)                # alive, listening, answering nothing
    try:
        assert launcher.check_health("hung") == Check(False, "no answer in 0.3 s")
    finally:
        os.killpg(process_group, signal.SIGCONT)
    wait_healthy(launcher, "hung")


def test_error_rate_label_fails_that_share_of_requests_but_never_the_health_check(sandbox):
    launcher = sandbox.launcher
    placement = launcher.launch(app("green", SIM_ERROR_RATE=0.2), "nginx-green.e", False, [80])
    wait_healthy(launcher, "nginx-green.e")
    statuses = [get("127.0.0.1", placement.ports[0])[0] for _ in range(50)]
    assert statuses.count(503) == 10 and statuses.count(200) == 40
    assert statuses[:5] == [200, 200, 200, 200, 503]  # spread evenly: every fifth
    assert all(get("127.0.0.1", placement.ports[0], "/health")[0] == 200 for _ in range(10))
    status, colour, _ = get("127.0.0.1", placement.ports[0])
    assert colour == "green"  # a failed answer still says which colour gave it
