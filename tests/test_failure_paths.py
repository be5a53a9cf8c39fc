"""How zdd fails: signals during a rollback, the rollback's stall watch, the failure report, error types, clocks.

In process against the world's simulator and fake marathon-lb on the fake
clock, except the error-classification table, which builds the exception
chains requests and urllib3 raise.
"""

import json
import signal
import socket

import pytest
import requests
import urllib3

import zdd
from tests.helpers import refusing_hook, run, seed_blue, settle, unhealthy_app, writes, zdd_labels
from tests.sandbox.world import load_fixture


def seed_slow_blue(world, instances, start_delay_s):
    """Blue as zdd left it, whose tasks started from now on take ``start_delay_s`` to run."""
    labels = dict(zdd_labels("blue", 10000, instances, "2025-06-01T10:00:00"), SIM_START_DELAY_S=str(start_delay_s))
    return world.seed_app("1-nginx-marathon1.5.json", id="/nginx-blue", instances=instances, labels=labels)


def on_every_sleep(world, action):
    """Call ``action()`` after each sleep of the world's clock (zdd sleeps on it between polls)."""
    sleep = world.clock.sleep

    def sleep_then_act(seconds):
        sleep(seconds)
        action()

    world.clock.sleep = sleep_then_act


def rollback_began(world):
    """Whether zdd has started restoring blue (its first write to /nginx-blue)."""
    return any(write.method == "PUT" and write.path == "/v2/apps/nginx-blue" for write in world.sim.writes())


def blue_restored(world, target):
    blue = world.sim.app("/nginx-blue")
    return blue is not None and sum(zdd.is_routable(blue, task) for task in blue["tasks"]) >= target


# --- a signal during the rollback ----------------------------------------------------------------


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, zdd.ExitCode.INTERRUPTED),
                                          (signal.SIGTERM, zdd.ExitCode.TERMINATED)])
def test_a_signal_during_the_rollback_stops_with_its_own_code(world, app_file, tmp_path, signum, code):
    seed_slow_blue(world, 5, 30)  # blue's restored tasks take 30 s to start
    sent = []

    def signal_once_rolling_back():
        if rollback_began(world) and not sent:
            sent.append(signum)
            signal.raise_signal(signum)

    on_every_sleep(world, signal_once_rolling_back)
    exit_code, _, err = run(world, app_file(), "--on-failure", "rollback",
                            "--pre-kill-hook", refusing_hook(tmp_path, 2))
    assert sent == [signum]
    assert exit_code == code, err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert "the rollback failed too" not in err
    assert ("delete", "/nginx-green") not in writes(world)


# --- the rollback's stall watch ------------------------------------------------------------------


def test_a_rollback_that_keeps_progressing_is_not_a_stall(world, app_file, tmp_path):
    """Two waits, each shorter than --stall-timeout, longer together than --stall-timeout + --max-wait."""
    seed_slow_blue(world, 5, 20)
    reload_ends_at = []

    def reload_once_blue_is_back():
        if not reload_ends_at and rollback_began(world) and blue_restored(world, 5):
            reload_ends_at.append(world.clock.monotonic() + 20)
            world.lb.extra_pids = [4003]  # marathon-lb reloads for 20 s
        elif reload_ends_at and world.clock.monotonic() >= reload_ends_at[0]:
            world.lb.extra_pids = []

    on_every_sleep(world, reload_once_blue_is_back)
    code, _, err = run(world, app_file(), "--on-failure", "rollback", "--pre-kill-hook", refusing_hook(tmp_path, 2),
                       "--stall-timeout", "25", "--max-wait", "10", "--step-delay", "1")
    assert reload_ends_at, "the scenario must reach its second wait"
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert settle(world) == {"/nginx-blue": (5, 5)}


def test_a_rollback_that_makes_no_progress_stalls(world, app_file, tmp_path):
    seed_slow_blue(world, 5, 100000)  # restored tasks never start
    code, _, err = run(world, app_file(), "--on-failure", "rollback", "--pre-kill-hook", refusing_hook(tmp_path, 2),
                       "--stall-timeout", "25", "--step-delay", "1")
    assert code == zdd.ExitCode.ROLLBACK_FAILED, err
    assert "the rollback failed too: no progress for 25 s" in err


# --- the failure report --------------------------------------------------------------------------


def test_the_report_after_the_deadline_shows_what_was_last_seen(world, app_file):
    seed_blue(world, 3)
    code, _, err = run(world, app_file(unhealthy_app()), "--deadline", "45", "--stall-timeout", "0")
    assert code == zdd.ExitCode.DEADLINE
    assert "state: /nginx-green: green 0/1; /nginx-blue: blue 3/3" in err
    assert "unknown" not in err


def test_the_report_makes_no_request(world, app_file):
    seed_blue(world, 3)
    code, _, err = run(world, app_file(unhealthy_app()), "--stall-timeout", "60")
    assert code == zdd.ExitCode.STALLED
    assert "state: /nginx-green: green 0/1; /nginx-blue: blue 3/3" in err
    polls = sum(1 for line in err.splitlines() if "step 1:" in line)
    reads_of_green = sum(1 for r in world.sim.requests if r.method == "GET" and r.path == "/v2/apps/nginx-green")
    assert polls > 3 and reads_of_green == polls  # one read per poll, none for the report


# --- errors classified by type, not by their text --------------------------------------------------


def _chain(outer_type, inner, cause):
    """requests' exception as it wraps urllib3's, with ``cause`` (an OSError) behind it, as for a real call."""
    inner.__cause__ = cause
    retries = urllib3.exceptions.MaxRetryError(None, "/v2/apps", reason=inner)
    return outer_type(retries)


def _refused(text):
    return _chain(requests.exceptions.ConnectionError,
                  urllib3.exceptions.NewConnectionError(None, f"Failed to establish a new connection: {text}"),
                  ConnectionRefusedError(111, text))


ERRORS = [
    # (exception, what zdd says, nothing reached the server)
    (_refused("[Errno 111] Connection refused"), "connection refused", True),
    (_refused("[WinError 10061] No connection could be made because the target machine actively refused it"),
     "connection refused", True),
    (_refused("[Errno 61] Verbindungsaufbau abgelehnt"), "connection refused", True),
    (_chain(requests.exceptions.ConnectionError, urllib3.exceptions.ProtocolError("Connection refused by proxy"),
            ConnectionResetError(104, "Connection refused by peer?")), "connection reset", False),
    (_chain(requests.exceptions.ConnectionError,
            urllib3.exceptions.NameResolutionError("marathon.invalid", None, socket.gaierror(-2, "x")),
            socket.gaierror(socket.EAI_NONAME, "Der Name ist unbekannt")), "host name does not resolve", False),
    (_chain(requests.exceptions.ConnectionError,
            urllib3.exceptions.NameResolutionError("marathon.invalid", None, socket.gaierror(-3, "x")),
            socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")),
     "host name lookup failed", False),
    (requests.exceptions.ConnectTimeout("connect timed out"), "connection timed out", True),
    (requests.exceptions.ReadTimeout("Connection refused (but it is a read timeout)"),
     "no answer within the request timeout", False),
    (requests.exceptions.ConnectionError("Connection refused, says the text only"), "connection failed", False),
]


@pytest.mark.parametrize("exc, said, nothing_sent", ERRORS)
def test_transport_errors_are_classified_by_type(exc, said, nothing_sent):
    assert zdd._describe(exc) == said
    assert zdd._nothing_sent(exc) is nothing_sent


def test_a_real_refused_connection_is_safe_to_send_again():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        requests.post(f"http://127.0.0.1:{port}/v2/apps", json={}, timeout=5)
    assert zdd._describe(caught.value) == "connection refused"
    assert zdd._nothing_sent(caught.value)


# --- one clock -----------------------------------------------------------------------------------


def test_event_times_come_from_the_given_clock(world, app_file):
    seed_blue(world, 3)
    code, out, _ = run(world, app_file(load_fixture("1-nginx-marathon1.5.json")), "--dry-run", "--output", "json")
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "start"
    assert events[0]["time"] == "2026-01-01T12:00:00.000+00:00"  # the FakeClock's start
