"""5xx answers from Marathon: GETs are retried, a write answered 5xx is ambiguous (read again, decide again)."""

import pytest

import zdd
from tests.helpers import SEQUENCE_3, run, seed_blue, settle, writes


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_get_answered_5xx_is_retried(world, app_file, status):
    seed_blue(world, 3)
    world.sim.fail_next("GET", r"^/v2/apps/nginx-green$", status, count=3)
    code, _, err = run(world, app_file())
    assert code == 0, err
    assert writes(world) == SEQUENCE_3


@pytest.mark.parametrize("method, path", [
    ("POST", r"^/v2/apps$"),
    ("POST", r"^/v2/tasks/delete$"),
    ("PUT", r"^/v2/apps/nginx-green$"),
    ("DELETE", r"^/v2/apps/nginx-blue$"),
])
@pytest.mark.parametrize("status", [500, 503])
def test_a_write_answered_5xx_is_read_again_and_sent_again(world, app_file, method, path, status):
    seed_blue(world, 3)
    world.sim.fail_next(method, path, status, count=2)
    code, _, err = run(world, app_file())
    assert code == 0, err
    assert "reading Marathon again" in err or "creating it again" in err
    # the failed attempts changed nothing; without them, the sequence is the usual one, except that
    # a scale decided again after its kill went through jumps to the target (old app 2: 2 >= 2)
    failed = [record for record in world.sim.writes() if record.status >= 500]
    assert len(failed) == 2
    world.sim.requests[:] = [record for record in world.sim.requests if record.status < 500]
    expected = SEQUENCE_3 if method != "PUT" else [
        ("create", "/nginx-green", 1), ("kill", 1), ("scale", "/nginx-green", 3), ("delete", "/nginx-blue")]
    assert writes(world) == expected, writes(world)
    assert settle(world) == {"/nginx-green": (3, 3)}


@pytest.mark.parametrize("method, path, code", [
    ("POST", r"^/v2/apps$", zdd.ExitCode.CREATE_FAILED),
    ("PUT", r"^/v2/apps/nginx-green$", zdd.ExitCode.SCALE_FAILED),
    ("DELETE", r"^/v2/apps/nginx-blue$", zdd.ExitCode.DELETE_FAILED),
])
def test_a_write_that_keeps_failing_ends_with_its_exit_code(world, app_file, method, path, code):
    """A create stops after 3 re-sends (nothing is half done yet); later writes after --stall-timeout of failing."""
    seed_blue(world, 3)
    world.sim.fail_next(method, path, 500, count=1000)
    exit_code, _, err = run(world, app_file(), "--stall-timeout", "60")
    assert exit_code == code, err
    assert "HTTP 500" in err and "Traceback" not in err
    failed = [record for record in world.sim.writes() if record.status == 500]
    if method == "POST" and path == r"^/v2/apps$":
        assert len(failed) == zdd.AMBIGUOUS_WRITES_TOLERATED + 1
    else:
        assert "writes in a row failed" in err
        # 3 at once, then one every --step-delay (5 s) for the 60 s of --stall-timeout
        assert zdd.AMBIGUOUS_WRITES_TOLERATED + 60 / 5 <= len(failed) <= zdd.AMBIGUOUS_WRITES_TOLERATED + 60 / 5 + 2


def test_a_write_failing_4_times_in_a_row_is_sent_again_after_a_pause(world, app_file):
    """The random 20% case: one write answered 5xx four times in a row no longer ends the deployment halfway."""
    seed_blue(world, 3)
    world.sim.fail_next("PUT", r"^/v2/apps/nginx-green$", 503, count=zdd.AMBIGUOUS_WRITES_TOLERATED + 1)
    code, _, err = run(world, app_file())
    assert code == 0, err
    assert err.count("writes in a row failed") == 1
    assert settle(world) == {"/nginx-green": (3, 3)}
