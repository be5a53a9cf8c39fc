"""Each answer is bounded as a whole: in time (--request-timeout, --deadline) and in size (MAX_ANSWER_BYTES).

The simulator's "trickle" fault sends a real answer one byte at a time (each
read comes well within the request timeout, the whole answer does not); its
"bomb" fault answers a small gzip body that grows far past the size cap. The
fake marathon-lb has the same two as ``stats_failure`` / ``pids_failure``.
Times here are real seconds: an answer is cut on the machine's clock.
"""

import time
import tracemalloc

import pytest

import zdd
from tests.helpers import SEQUENCE_3, ActingClock, run, run_json, seed_blue, settle, writes
from tests.sandbox.marathon import gzip_zeros

TRICKLE_GAP_S = 0.01  # /v2/apps of this world is ~2 KB: ~20 s to send whole, each byte far within the timeout
BOMB_SIZE_BYTES = 2 * zdd.MAX_ANSWER_BYTES  # twice the cap, 128 KB on the wire


def timed_run(world, app_path, *args):
    started = time.monotonic()
    code, events, err = run_json(world, app_path, *args)
    return code, events, err, time.monotonic() - started


def test_a_trickled_marathon_answer_is_cut_at_the_request_timeout(world, app_path):
    """Before the first write a GET /v2/apps that never ends within 0.5 s is Marathon not answering: exit 6."""
    seed_blue(world, 3)
    world.sim.inject("trickle", method="GET", path_regex="^/v2/apps$", delay_s=TRICKLE_GAP_S)
    code, _, err, elapsed_s = timed_run(world, app_path, "--request-timeout", "0.5")
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert f"after {zdd.GET_ATTEMPTS} attempts: no whole answer within the request timeout (0.5 s)" in err
    assert elapsed_s < 10  # 4 attempts of 0.5 s each; the backoffs are on the fake clock
    assert writes(world) == []


def test_a_trickled_read_after_the_create_is_waited_for(world, app_path):
    """After the first write, reads cut at the timeout are Marathon not answering: waited out, then finished."""
    seed_blue(world, 3)
    world.sim.inject("trickle", method="GET", path_regex="^/v2/apps/nginx-green$", delay_s=TRICKLE_GAP_S,
                     count=zdd.GET_ATTEMPTS)
    code, _, err, _ = timed_run(world, app_path, "--request-timeout", "0.5")
    assert code == 0, err
    assert "Marathon does not answer" in err and "no whole answer within the request timeout" in err
    assert world.sim.faults_injected["trickle"] == zdd.GET_ATTEMPTS
    assert writes(world) == SEQUENCE_3


def test_the_deadline_bounds_a_request_in_flight(world, app_path):
    """--deadline 1 with --request-timeout 30: the trickled read ends at the deadline, not 20 s later; exit 10."""
    seed_blue(world, 3)
    world.sim.inject("trickle", method="GET", path_regex="^/v2/apps$", delay_s=TRICKLE_GAP_S)
    code, _, err, elapsed_s = timed_run(world, app_path, "--request-timeout", "30", "--deadline", "1")
    assert code == zdd.ExitCode.DEADLINE, err
    assert "the --deadline passed while calling" in err
    assert elapsed_s < 10  # 1 s, then what the fake clock's backoffs leave of it
    assert writes(world) == []


def test_a_trickled_write_answer_is_a_write_without_a_clear_outcome(world, app_path):
    """The create is done but its answer trickles: zdd reads Marathon again, sees green, goes on."""
    seed_blue(world, 3)
    world.sim.inject("trickle", method="POST", path_regex="^/v2/apps$", delay_s=TRICKLE_GAP_S, count=1)
    code, _, err, _ = timed_run(world, app_path, "--request-timeout", "0.5")
    assert code == 0, err
    assert "no whole answer within the request timeout" in err
    assert writes(world) == SEQUENCE_3


def test_a_gzip_bomb_from_marathon_is_refused_at_the_cap_without_the_memory(world, app_path):
    """A 128 KB gzip answer that grows to 128 MiB stops at 64 MiB: an answer zdd could not read, waited for."""
    seed_blue(world, 3)
    world.sim.inject("bomb", method="GET", path_regex="^/v2/apps/nginx-green$", count=1,
                     size_bytes=BOMB_SIZE_BYTES)
    tracemalloc.start()
    try:
        code, _, err, _ = timed_run(world, app_path)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, err
    assert "an answer larger than 64 MiB" in err and "Marathon does not answer" in err
    assert world.sim.faults_injected["bomb"] == 1
    assert peak_bytes < zdd.MAX_ANSWER_BYTES + 16 * 2**20
    assert writes(world) == SEQUENCE_3
    assert settle(world) == {"/nginx-green": (3, 3)}


def test_a_gzip_bomb_before_the_first_write_stops_with_6(world, app_path):
    seed_blue(world, 3)
    world.sim.inject("bomb", method="GET", path_regex="^/v2/apps$", size_bytes=BOMB_SIZE_BYTES)
    code, _, err, _ = timed_run(world, app_path)
    assert code == zdd.ExitCode.MARATHON_FAILED, err
    assert "an answer larger than 64 MiB" in err and "Traceback" not in err
    assert writes(world) == []


@pytest.fixture(scope="module", autouse=True)
def bomb_made():
    """The bomb's bytes made once, before any test's timeout runs (the servers would make it per request)."""
    gzip_zeros(BOMB_SIZE_BYTES)


@pytest.mark.parametrize("failure, timeout_s, cause", [
    ("trickle", "0.5", "no whole answer within the request timeout (0.5 s)"),
    ("bomb", "10", "an answer larger than 64 MiB"),
])
def test_a_stats_page_zdd_cannot_read_is_a_marathon_lb_that_does_not_answer(world, app_path, failure, timeout_s,
                                                                             cause):
    seed_blue(world, 3)
    world.lb.stats_failure = failure
    world.lb.bomb_size_bytes = BOMB_SIZE_BYTES
    code, _, err = run(world, app_path, "--request-timeout", timeout_s)
    assert code == zdd.ExitCode.LB_FAILED, err
    assert "marathon-lb does not answer" in err and cause in err
    assert writes(world) == []


@pytest.mark.parametrize("failure, timeout_s, cause", [
    ("trickle", "0.5", f"failed after {zdd.GET_ATTEMPTS} attempts: no whole answer within the request timeout (0.5 s)"),
    ("bomb", "10", "failed: an answer larger than 64 MiB"),
], ids=["trickle", "bomb"])
def test_status_bounds_a_stats_page_as_a_deployment_does(world, app_path, failure, timeout_s, cause):
    """--status reads marathon-lb with the deployment's reader: the same bounds, its own GET_ATTEMPTS tries."""
    seed_blue(world, 3)
    world.lb.stats_failure = failure
    world.lb.bomb_size_bytes = BOMB_SIZE_BYTES
    code, out, err = run(world, app_path, "--status", "--request-timeout", timeout_s)
    assert code == zdd.ExitCode.LB_FAILED, err
    assert f"marathon-lb {world.lb.url}: did not answer: GET {world.lb.url}/haproxy?stats" in out
    assert f" {cause}\n" in out and "Traceback" not in err
    assert writes(world) == []


def test_a_stats_page_cut_at_the_timeout_mid_deployment_is_waited_out(world, app_path):
    """The stats page trickles for two polls after the create: marathon-lb does not answer, then does; finished."""
    seed_blue(world, 3)
    trickled_from = []  # the stats poll count when the trickle began

    def trickle_twice():  # after the create, the next two stats pages trickle
        if not trickled_from and any(record.path == "/v2/apps" for record in world.sim.writes()):
            trickled_from.append(world.lb.stats_polls)
            world.lb.stats_failure = "trickle"
        elif trickled_from and world.lb.stats_polls - trickled_from[0] >= 2:
            world.lb.stats_failure = None

    code, _, err = run(world, app_path, "--request-timeout", "0.5", clock=ActingClock(world.clock, trickle_twice))
    assert code == 0, err
    assert "no whole answer within the request timeout (0.5 s)" in err
    assert writes(world) == SEQUENCE_3


def test_an_answer_is_read_whole_within_the_cap():
    """read_body keeps a plain and a compressed answer's bytes as sent, and stops at the cap for either."""

    class Raw:
        def __init__(self, data):
            self.data = data

        def stream(self, amount, decode_content):
            assert decode_content is False
            for start in range(0, len(self.data), amount):
                yield self.data[start:start + amount]

    class Answer:
        def __init__(self, data, **headers):
            self.raw, self.headers = Raw(data), headers

    assert zdd.read_body(Answer(b"x" * 100), limit_bytes=100) == b"x" * 100
    assert zdd.read_body(Answer(gzip_zeros(1000), **{"Content-Encoding": "gzip"}), limit_bytes=1000) == bytes(1000)
    for answer in (Answer(b"x" * 101), Answer(gzip_zeros(1001), **{"Content-Encoding": "gzip"}),
                   Answer(b"x", **{"Content-Length": "101"})):
        with pytest.raises(zdd.UnreadableAnswer, match="larger than"):
            zdd.read_body(answer, limit_bytes=100)
    with pytest.raises(zdd.UnreadableAnswer, match="cut short"):
        zdd.read_body(Answer(gzip_zeros(1000)[:-20], **{"Content-Encoding": "gzip"}))
    with pytest.raises(zdd.UnreadableAnswer, match="encoding zdd does not read"):
        zdd.read_body(Answer(b"x", **{"Content-Encoding": "br"}))
