"""Several Marathon masters (docs/behaviour.rst, 'Several Marathon masters'): the next one when one gives no answer.

The masters are the simulator (or a second listener serving the same simulator, as Marathon's non-leaders
answer for the leader), a second simulator of its own, or a loopback port nobody listens on.
"""

import io
import shlex
import socket

import pytest
import requests

import zdd
from tests.helpers import SEQUENCE_3, AnotherMaster, closed_port_url, run, run_json, seed_blue, seed_half_done, writes
from tests.sandbox.marathon import MarathonSim

NEXT_MASTER = "asking the next Marathon master"


@pytest.fixture
def other_sim(world):
    """A second simulator with no app, on the world's clock: a master zdd must not have used."""
    sim = MarathonSim(clock=world.clock).start()
    try:
        yield sim
    finally:
        sim.stop()


def test_the_flag_and_the_variable_take_several_urls():
    parse = zdd.parse_options
    rest = ["-l", "http://lb:9090", "-j", "app.json"]
    assert parse(["-m", "http://a:8080,http://b:8080", "-m", "http://c:8080"] + rest, {}).marathon == (
        "http://a:8080", "http://b:8080", "http://c:8080")
    assert parse(rest, {"ZDD_MARATHON": "http://a:8080, http://b:8080"}).marathon == ("http://a:8080", "http://b:8080")
    assert parse(["-m", "http://c:8080"] + rest, {"ZDD_MARATHON": "http://a:8080"}).marathon == ("http://c:8080",)


@pytest.mark.parametrize("masters, message", [
    ("http://a:8080,ftp://b", "--marathon must be an http:// or https:// URL"),
    (",", "--marathon names no URL"),
], ids=["ftp-among-them", "only-commas"])
def test_a_bad_url_among_several_is_refused_before_anything(world, app_path, masters, message):
    code, _, err = run(world, app_path, marathon=masters)
    assert code == zdd.ExitCode.INVALID_ARGS
    assert message in err
    assert world.sim.requests == []


@pytest.fixture
def silent_url():
    """The URL of a port that takes connections and never answers (a master that hangs): reads time out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield "http://127.0.0.1:%d" % listener.getsockname()[1]


@pytest.mark.parametrize("dead", ["refused", "does-not-resolve", "silent"])
def test_a_swap_goes_on_when_the_first_master_is_down(world, app_path, dead, silent_url):
    seed_blue(world, 3)
    first = {"refused": closed_port_url(), "does-not-resolve": "http://marathon.zdd-test.invalid:8080",
             "silent": silent_url}[dead]
    code, _, err = run(world, app_path, "--request-timeout", "0.5", marathon=f"{first},{world.sim.url}")
    assert code == zdd.ExitCode.OK, err
    assert writes(world) == SEQUENCE_3
    assert err.count(NEXT_MASTER) == 1  # then the master that answered is asked first


@pytest.mark.parametrize("fault", [dict(kind="drop"), dict(kind="answer", status=503)], ids=["no-answer", "503"])
def test_the_master_that_answered_is_asked_first_from_then_on(world, app_path, other_sim, fault):
    """The first master fails one read, then answers again: zdd stays with the second, which answered."""
    seed_blue(world, 3)
    other_sim.inject(count=1, method="GET", **fault)
    code, _, err = run(world, app_path, marathon=f"{other_sim.url},{world.sim.url}")
    assert code == zdd.ExitCode.OK, err
    assert writes(world) == SEQUENCE_3
    assert other_sim.faults_injected[fault["kind"]] == 1
    assert [r for r in other_sim.requests if r.status != 503] == []  # never asked again


@pytest.mark.parametrize("fault", [dict(kind="drop"), dict(kind="delay", delay_s=2.0)], ids=["dropped", "late"])
def test_a_write_that_may_have_reached_the_first_master_is_not_sent_to_the_second(world, app_path, other_sim,
                                                                                  fault):
    """The create's connection drops (not done) or its answer comes too late (done): read again on the first."""
    seed_blue(world, 3)
    world.sim.inject(count=1, method="POST", path_regex="^/v2/apps$", **fault)
    code, _, err = run(world, app_path, "--request-timeout", "0.5", marathon=f"{world.sim.url},{other_sim.url}")
    assert code == zdd.ExitCode.OK, err
    assert writes(world) == SEQUENCE_3
    assert other_sim.requests == []
    assert NEXT_MASTER not in err


def test_a_write_refused_by_the_master_goes_to_the_next(world, app_path):
    """The master that answered the reads goes down before the create: the create goes to the other, once."""
    seed_blue(world, 3)
    first = AnotherMaster(world.sim)
    try:
        def answer(question):
            first.stop()
            return True

        code, _, err = run(world, app_path, ask=answer, marathon=f"{first.url},{world.sim.url}")
    finally:
        first.stop()
    assert code == zdd.ExitCode.OK, err
    assert writes(world) == SEQUENCE_3
    assert f"POST {first.url}/v2/apps failed after 2 attempts: connection refused; {NEXT_MASTER}" in err


def test_a_write_after_a_refused_one_on_a_master_that_is_gone_too_fails_as_with_one(world, app_path):
    """Every master refuses the create: nothing was created, zdd stops as it does with one master (exit 7)."""
    seed_blue(world, 3)
    first, second = AnotherMaster(world.sim), AnotherMaster(world.sim)
    try:
        def answer(question):
            first.stop()
            second.stop()
            return True

        code, _, err = run(world, app_path, ask=answer, marathon=f"{first.url},{second.url}")
    finally:
        first.stop()
        second.stop()
    assert code == zdd.ExitCode.CREATE_FAILED, err
    assert writes(world) == []


def test_every_master_down_before_the_first_write_fails_as_one_does(world, app_path):
    seed_blue(world, 3)
    first, last = closed_port_url(), closed_port_url()
    code, _, err = run(world, app_path, marathon=f"{first},{last}")
    assert code == zdd.ExitCode.MARATHON_FAILED
    assert f"GET {last}/v2/apps failed after 4 attempts: connection refused" in err
    assert world.sim.requests == []


def test_status_reads_from_the_master_that_answers(world, app_path):
    seed_half_done(world, blue=2, green=1, target=3)
    code, out, err = run(world, app_path, "--status", marathon=f"{closed_port_url()},{world.sim.url}")
    assert code == zdd.ExitCode.OK, err
    assert "/nginx-green" in out and "/nginx-blue" in out
    assert world.sim.writes() == []


def test_the_commands_of_a_failure_report_keep_every_master_and_hide_their_passwords(world, app_path, tmp_path):
    """A run stopped halfway (a pre-kill hook refuses once) names both masters; its 'to finish' command finishes."""
    seed_blue(world, 3)
    refuse = tmp_path / "refuse-once"
    refuse.write_text("")
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nif [ -e {refuse} ]; then rm {refuse}; exit 1; fi\nexit 0\n")
    hook.chmod(0o755)
    dead = closed_port_url().replace("http://", "http://ops:s3cret@")
    live = world.sim.url.replace("http://", "http://ops:s3cret@")
    code, events, err = run_json(world, app_path, "--pre-kill-hook", str(hook), marathon=f"{dead},{live}")
    assert code == zdd.ExitCode.HOOK_REFUSED, err
    assert "s3cret" not in err and "s3cret" not in str(events)
    finish = next(line for line in err.splitlines() if "to finish: " in line).split("to finish: ", 1)[1]
    masters = f"{dead},{live}".replace("s3cret", "***")
    assert shlex.split(finish)[1:3] == ["-m", masters]
    assert events[-1]["resume_command"] == finish
    # The command as shown runs (the simulator takes any password): it finishes the deployment.
    err = io.StringIO()
    code = zdd.main(shlex.split(finish)[1:], clock=world.clock, stdout=io.StringIO(), stderr=err, environ={})
    assert code == zdd.ExitCode.OK, err.getvalue()
    assert writes(world)[-1] == ("delete", "/nginx-blue")


def test_the_client_tries_every_master_once_per_request_in_the_order_given(world):
    """Unit level: the order of the masters, and where the next request starts."""
    seed_blue(world, 1)
    second = AnotherMaster(world.sim)
    dead = closed_port_url()
    try:
        http = zdd.HttpClient(requests.Session(), 1.0, zdd.Deadline(world.clock, 0), world.clock,
                              zdd.Interrupts(world.clock))
        client = zdd.MarathonClient((dead, second.url, world.sim.url), http)
        assert [app["id"] for app in client.list_apps()] == ["/nginx-blue"]
        assert client.current == 1
        second.stop()
        assert client.get_app("/nginx-blue")["id"] == "/nginx-blue"
        assert client.current == 2
        assert client.list_apps() and client.current == 2
    finally:
        second.stop()


@pytest.mark.parametrize("target, method, may", [
    ("refused", "POST", True), ("does-not-resolve", "POST", True), ("silent", "POST", False),
    ("refused", "GET", True), ("does-not-resolve", "GET", True), ("silent", "GET", True),
])
def test_which_failures_a_request_may_take_to_the_next_master(world, silent_url, target, method, may):
    """From the real exceptions: a write goes on only when it certainly never arrived; a read always may."""
    url = {"refused": closed_port_url(), "does-not-resolve": "http://marathon.zdd-test.invalid:8080",
           "silent": silent_url}[target]
    http = zdd.HttpClient(requests.Session(), 0.3, zdd.Deadline(world.clock, 0), world.clock,
                          zdd.Interrupts(world.clock))
    with pytest.raises(zdd.RequestFailed) as failed:
        http.request(method, url + "/v2/apps", json_body={} if method == "POST" else None)
    assert zdd._may_ask_another(method, failed.value) is may
