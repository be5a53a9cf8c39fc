"""--output json: every event of a deployment parses and matches the schema the README documents."""

import pytest

from tests.helpers import run_json, seed_blue, seed_half_done, unhealthy_app

NUMBER = (int, float)
OPTIONAL_STR = (str, type(None))

# event -> {field: type(s)}; every event also has event, time and elapsed_s
SCHEMA = {
    "start": {"version": str, "app": str, "group": str, "dry_run": bool},
    "app_prepared": {"app": dict},
    "plan": {"new_app": str, "old_app": OPTIONAL_STR, "target": int, "hybrid_goal": int, "new_schedule": list,
             "old_schedule": list, "summary": str, "changes": (list, type(None))},
    "created": {"app": str, "instances": int},
    "poll": {"step": int, "new_app": str, "new_instances": int, "old_app": str, "old_instances": int,
             "waiting": OPTIONAL_STR, "lbs": list},
    "waiting": {"reason": str, "waited_s": NUMBER, "next_poll_s": NUMBER},
    "killed": {"app": str, "tasks": list, "forced": bool},
    "scaled": {"app": str, "instances": int},
    "previous": {"file": str, "app": str, "id": str},
    "deleted": {"app": str},
    "analysis": {"step": int, "verdict": str, "reason": str, "colours": dict},
    "rollback": {"reason": str, "restore": str, "remove": str, "target": int},
    "rolled_back": {"app": str, "duration_s": NUMBER},
    "error": {"message": str, "exit_code": int},
    "finished": {"result": str, "exit_code": int, "duration_s": NUMBER, "steps": int, "new_app": OPTIONAL_STR,
                 "old_app": OPTIONAL_STR},
}
LB_FIELDS = {"url": str, "pids": (int, type(None))}
LB_COUNTS = {"up": int, "maint": int, "drained": int}
RESULTS = {"deployed", "dry_run", "declined", "failed", "rolled_back", "interrupted", "unchanged"}


def events_of(world, path, *args):
    """``run_json`` at zdd's default log level (DEBUG): every log line zdd can write goes along with the events."""
    return run_json(world, path, "--log-level", "DEBUG", *args)


def check_schema(events):
    assert events, "no events"
    previous_elapsed = 0.0
    for event in events:
        kind = event["event"]
        assert kind in SCHEMA, kind
        assert isinstance(event["time"], str) and event["time"].endswith("+00:00")
        assert isinstance(event["elapsed_s"], NUMBER) and event["elapsed_s"] >= previous_elapsed
        previous_elapsed = event["elapsed_s"]
        for field, kinds in SCHEMA[kind].items():
            assert field in event, (kind, field)
            assert isinstance(event[field], kinds), (kind, field, event[field])
        if kind == "plan":
            for change in event["changes"] or []:
                assert set(change) == {"path", "old", "new"} and isinstance(change["path"], str), change
        if kind == "poll":
            for lb in event["lbs"]:
                for field, kinds in LB_FIELDS.items():
                    assert isinstance(lb[field], kinds), lb
                if "error" not in lb:
                    for field, kinds in LB_COUNTS.items():
                        assert isinstance(lb[field], kinds), lb
    assert events[-1]["event"] == "finished"
    assert events[-1]["result"] in RESULTS
    assert [e["event"] for e in events].count("finished") == 1


def test_a_full_deployment_emits_valid_events(world, app_file):  # noqa: F811
    seed_blue(world, 10)
    code, events, _ = events_of(world, app_file())
    assert code == 0
    check_schema(events)
    kinds = [e["event"] for e in events]
    assert kinds[:4] == ["start", "app_prepared", "plan", "created"]
    assert kinds.count("killed") == 4 and kinds.count("scaled") == 4 and kinds.count("deleted") == 1
    plan = events[2]
    assert plan["new_schedule"] == [1, 2, 3, 5, 10] and plan["old_schedule"] == [10, 9, 8, 7, 5, 0]
    assert [e["instances"] for e in events if e["event"] == "scaled"] == [2, 3, 5, 10]
    final = events[-1]
    assert final["result"] == "deployed" and final["exit_code"] == 0 and final["steps"] == 5
    assert final["new_app"] == "/nginx-green" and final["old_app"] == "/nginx-blue"
    polls = [e for e in events if e["event"] == "poll" and e["lbs"]]
    assert polls and all(len(p["lbs"]) == 1 for p in polls)
    assert any(p["lbs"][0]["drained"] >= 1 for p in polls)


@pytest.mark.parametrize("setup, flags, result", [
    ("blue", ("--dry-run",), "dry_run"),
    ("blue", ("--skip-unchanged",), "unchanged"),
    ("half", ("--dry-run", "--resume"), "dry_run"),
    ("half", (), "failed"),
])
def test_other_paths_emit_valid_events(world, app_file, setup, flags, result):  # noqa: F811
    seed_blue(world, 3) if setup == "blue" else seed_half_done(world)
    code, events, _ = events_of(world, app_file(), *flags)
    check_schema(events)
    assert events[-1]["result"] == result
    if result == "failed":
        assert events[-2]["event"] == "error" and events[-2]["exit_code"] == code == 3


def test_a_stalled_deployment_reports_the_resume_command(world, app_file):  # noqa: F811
    seed_blue(world, 3)
    code, events, _ = events_of(world, app_file(unhealthy_app()), "--stall-timeout", "30")
    check_schema(events)
    assert code == 11
    assert events[-1]["result"] == "failed" and events[-1]["resume_command"].endswith("--resume")
    assert any(e["event"] == "waiting" and "deployment is in progress" in e["reason"] for e in events)


def test_a_rollback_emits_valid_events(world, app_file):  # noqa: F811
    seed_blue(world, 3)
    code, events, _ = events_of(world, app_file(unhealthy_app()), "--stall-timeout", "30", "--on-failure",
                                "rollback")
    check_schema(events)
    assert code == 13
    kinds = [e["event"] for e in events]
    assert "rollback" in kinds and "rolled_back" in kinds and events[-1]["result"] == "rolled_back"


def test_bad_input_still_ends_with_a_finished_event(world, tmp_path):
    path = tmp_path / "app.json"
    path.write_text("[1, 2]")
    code, events, _ = events_of(world, str(path))
    assert code == 4
    check_schema(events)
    assert [e["event"] for e in events] == ["error", "finished"]
