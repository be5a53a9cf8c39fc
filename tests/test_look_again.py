"""When zdd looks again: soon after its own write or a change it waits on, backing off to --step-delay.

The schedule itself is a table of the pure ``look_again_s``; the loop's use of
it is read from the JSON events of real runs against the simulator and the
fake marathon-lb on the fake clock (``elapsed_s`` is that clock, to the ms).
"""

import json

import pytest

import zdd
from tests.helpers import SEQUENCE_10, run_json, seed_blue, writes
from tests.sandbox.world import load_fixture

WRITE_EVENTS = ("created", "killed", "scaled", "deleted")


@pytest.mark.parametrize("looks, step_delay_s, expected_s", [
    (0, 5, 0.25),
    (1, 5, 0.375),
    (2, 5, 0.5625),
    (3, 5, 0.84375),
    (6, 5, 2.84765625),
    (7, 5, 4.271484375),
    (8, 5, 5),  # capped: --step-delay stays the longest wait
    (10 ** 6, 5, 5),  # no overflow however long the wait
    (0, 1, 0.25),
    (3, 1, 0.84375),
    (4, 1, 1),
    (0, 0.1, 0.1),  # a step delay shorter than the first wait is the wait
    (0, 0, 0),
    (5, 0, 0),
])
def test_look_again_s(looks, step_delay_s, expected_s):
    assert zdd.look_again_s(looks, step_delay_s) == pytest.approx(expected_s)


@pytest.fixture
def app_path(tmp_path):
    """Write the nginx app JSON (its tasks starting in ``start_delay_s`` in the simulator); returns its path."""

    def write(start_delay_s=None):
        app = load_fixture("1-nginx-marathon1.5.json")
        if start_delay_s is not None:
            app["labels"] = dict(app["labels"], SIM_START_DELAY_S=str(start_delay_s))
        path = tmp_path / "app.json"
        path.write_text(json.dumps(app))
        return str(path)

    return write


def looks_after(events, write_event):
    """[(seconds after the write, waiting reason)] of the polls after ``write_event``, up to the next write."""
    start = events.index(write_event)
    looks = []
    for event in events[start + 1:]:
        if event["event"] in WRITE_EVENTS:
            break
        if event["event"] == "poll":
            looks.append((round(event["elapsed_s"] - write_event["elapsed_s"], 3), event["waiting"]))
    return looks


def gaps(times):
    return [round(later - earlier, 3) for earlier, later in zip([0.0] + times, times)]


def test_polls_after_a_scale_back_off_to_the_step_delay(world, app_path):
    """New tasks take 20 s to start: after the scale, zdd looks after 0.25 s, then 1.5 times later each time."""
    seed_blue(world, 3)
    code, events, err = run_json(world, app_path(20), "--reload-check", "getpids")  # no grace wait after the looks
    assert code == 0, err
    first_scale = next(e for e in events if e["event"] == "scaled")
    looks = looks_after(events, first_scale)
    assert {reason for _, reason in looks[:-1]} == {"the new app's Marathon deployment is in progress"}
    assert looks[-1][1] is None  # the last look found the next step possible
    assert gaps([seconds for seconds, _ in looks]) == pytest.approx(
        [0.25, 0.375, 0.5625, 0.84375, 1.266, 1.898, 2.848, 4.271, 5, 5, 5][:len(looks)], abs=0.002)
    # 20 s to start, then a health check 3 s later: 11 looks over 27 s, where one look every 5 s makes 6
    assert len(looks) == 11 and looks[-1][0] == pytest.approx(27.3, abs=0.02)


def test_a_change_of_what_zdd_waits_for_starts_the_schedule_again(world, app_path):
    """When Marathon's deployment ends and marathon-lb still lags, the next look comes 0.25 s later."""
    seed_blue(world, 3)
    world.lb.lag = 3  # the stats show the view of 3 polls ago
    code, events, err = run_json(world, app_path(), "--step-delay", "5")
    assert code == 0, err
    first_scale = next(e for e in events if e["event"] == "scaled")
    looks = looks_after(events, first_scale)
    changed = next(index for index, (_, reason) in enumerate(looks) if reason and "has not caught up" in reason)
    assert changed > 0 and looks[changed - 1][1] == "the new app's Marathon deployment is in progress"
    times = [seconds for seconds, _ in looks]
    assert gaps(times)[changed + 1:changed + 3] == pytest.approx([0.25, 0.375], abs=0.002)
    assert gaps(times)[changed] > 0.25  # the look that saw the change came on the older, longer schedule


def test_every_wait_is_at_most_the_step_delay(world, app_path):
    seed_blue(world, 3)
    code, events, err = run_json(world, app_path(20), "--step-delay", "1")
    assert code == 0, err
    waits = [e["next_poll_s"] for e in events if e["event"] == "waiting"]
    assert max(waits) == 1 and waits.count(1) >= 10  # 20 s of starting: mostly at the step delay
    times = [e["elapsed_s"] for e in events if e["event"] == "poll"]
    assert max(gaps(times)[1:]) <= 1.001


def step_times(events):
    """The elapsed time of each step's first write (a kill and the scale after it are one step)."""
    times, previous = [], None
    for event in events:
        if event["event"] in WRITE_EVENTS and previous not in ("killed",):
            times.append(event["elapsed_s"])
        if event["event"] in WRITE_EVENTS + ("poll",):
            previous = event["event"]
    return times


def test_min_step_interval_paces_the_steps_with_the_same_writes(world, app_path):
    seed_blue(world, 10)
    code, events, err = run_json(world, app_path(), "--min-step-interval", "30")
    assert code == 0, err
    assert writes(world) == SEQUENCE_10
    times = step_times(events)
    assert len(times) == 6  # create, four kill + scale steps, delete
    assert min(gaps(times)[1:]) >= 30
    paced = [e for e in events if e["event"] == "waiting" and e["reason"] == "--min-step-interval"]
    assert [e["next_poll_s"] for e in paced] == [30] * 5


def test_without_min_step_interval_steps_follow_each_other_sooner(world, app_path):
    seed_blue(world, 10)
    code, events, err = run_json(world, app_path())
    assert code == 0, err
    assert writes(world) == SEQUENCE_10
    assert max(gaps(step_times(events))[1:]) < 30
    assert not [e for e in events if e["event"] == "waiting" and e["reason"] == "--min-step-interval"]


def test_negative_min_step_interval_is_a_usage_error(world, app_path):
    seed_blue(world, 3)
    code, events, err = run_json(world, app_path(), "--min-step-interval", "-1")
    assert code == zdd.UsageError.exit_code == 2
    assert len(err.strip().splitlines()) == 1 and "--min-step-interval" in err
    assert writes(world) == []
