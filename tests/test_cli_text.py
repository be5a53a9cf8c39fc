"""What zdd prints for a person: --help, --longhelp, the progress line's counter, the definition line."""

import io
import json
import re

import pytest

import zdd
from tests import helpers
from tests.helpers import seed_blue
from tests.sandbox.world import load_fixture

COUNTER = re.compile(r"^.* zdd: step (\d+): .*, waiting: (.*) \(waited (\d+) s in this step\)$")


def run_with_labels(world, tmp_path, *args, labels=None):
    """tests/helpers.py's ``run`` with the nginx app JSON whose labels ``labels`` extends."""
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"].update(labels or {})
    path = tmp_path / "app.json"
    path.write_text(json.dumps(app))
    return helpers.run(world, str(path), *args)


def help_text():
    out = io.StringIO()
    parser = zdd.build_parser()
    parser.print_help(out)
    return out.getvalue()


# --- --help and --longhelp -----------------------------------------------------------------------


def test_help_shows_no_empty_defaults():
    text = help_text()
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 5)" in text and "(default: 0)" in text  # real defaults, 0 included, are still shown


def test_help_points_to_the_exit_codes():
    assert "Exit codes: see zdd --longhelp" in " ".join(help_text().split())


def test_longhelp_lists_every_exit_code():
    out = io.StringIO()
    assert zdd.main(["--longhelp"], stdout=out) == 0
    text = out.getvalue()
    assert text.startswith(zdd.__doc__)
    codes = text[text.index("\nExit codes:\n"):]
    listed = {int(match) for match in re.findall(r"^ *(\d+)  \S", codes, re.M)}
    assert listed == {int(code) for code in zdd.ExitCode}


def test_longhelp_says_the_resting_pid_count_as_the_code_uses_it():
    text = " ".join(zdd.__doc__.split())
    assert f"lists no more than {zdd.RESTING_PID_COUNT} PIDs" in text


# --- the progress line -------------------------------------------------------------------------


def counters(err):
    """(step, reason, seconds) of every waiting progress line."""
    return [(int(m[1]), m[2], int(m[3])) for m in map(COUNTER.match, err.splitlines()) if m]


def test_counter_keeps_counting_while_marathon_deploys(world, tmp_path):
    """New tasks that take 60 s to start: step 1's line counts up from 0 instead of showing 0 s for a minute."""
    seed_blue(world, 3)
    code, _, err = run_with_labels(world, tmp_path, "--step-delay", "5", labels={"SIM_START_DELAY_S": "60"})
    assert code == 0, err
    step_1 = [(reason, seconds) for step, reason, seconds in counters(err) if step == 1]
    deploying = [seconds for reason, seconds in step_1 if "Marathon deployment" in reason]
    assert deploying[0] == 0
    assert deploying == sorted(deploying) and deploying[-1] >= 55, step_1
    assert [seconds for _, seconds in step_1] == sorted(seconds for _, seconds in step_1)


def test_counter_starts_again_at_each_step(world, tmp_path):
    seed_blue(world, 3)
    code, _, err = run_with_labels(world, tmp_path, "--step-delay", "5", labels={"SIM_START_DELAY_S": "12"})
    assert code == 0, err
    firsts = {}
    for step, _, seconds in counters(err):
        firsts.setdefault(step, seconds)
    assert len(firsts) >= 2 and set(firsts.values()) == {0}, firsts
    assert max(seconds for _, _, seconds in counters(err)) >= 10


def test_waiting_event_carries_the_same_counter(world, tmp_path):
    seed_blue(world, 3)
    code, out, err = run_with_labels(world, tmp_path, "--step-delay", "5", "--output", "json",
                         labels={"SIM_START_DELAY_S": "30"})
    assert code == 0, err
    waited = [event["waited_s"] for event in map(json.loads, out.splitlines()) if event["event"] == "waiting"]
    assert max(waited) >= 25
    assert sorted(seconds for *_, seconds in counters(err)) == sorted(round(w) for w in waited)


# --- the definition line -----------------------------------------------------------------------


@pytest.mark.parametrize("output, where", [("text", "on standard output"),
                                           ("json", "on standard output (the app_prepared event)")])
def test_definition_line_says_where_the_definition_went(world, tmp_path, output, where):
    seed_blue(world, 3)
    code, out, err = run_with_labels(world, tmp_path, "--dry-run", "--output", output)
    assert code == 0, err
    lines = [line.split(" zdd: ", 1)[1] for line in err.splitlines() if "definition" in line]
    assert lines == [f"Final app definition of /nginx-green: {where}"]
    assert "Final app definition:" not in err
