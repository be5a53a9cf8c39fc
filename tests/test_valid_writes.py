"""Every app body zdd writes is one Marathon accepts: label values are strings, no field Marathon only returns.

The simulator checks each POST /v2/apps and PUT /v2/apps/<id> body against
Marathon's app schema (tests/sandbox/appschema.py) and refuses an invalid one
as Marathon does; conftest's ``zdd_writes_valid_apps`` fails any test in
which zdd wrote one.
"""

import datetime

import pytest

import zdd
from tests.helpers import SEQUENCE_3, options, run, seed_blue, writes
from tests.sandbox import appschema
from tests.sandbox.world import load_fixture

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5)
# What a GET of the app answers besides its definition (Marathon 1.5, apps.counts, tasks, lastTaskFailure ...)
GET_ANSWER_FIELDS = {
    "version": "2026-01-01T10:00:00.000Z",
    "versionInfo": {"lastScalingAt": "2026-01-01T10:00:00.000Z", "lastConfigChangeAt": "2026-01-01T10:00:00.000Z"},
    "deployments": [], "tasksStaged": 0, "tasksRunning": 3, "tasksHealthy": 3, "tasksUnhealthy": 0,
    "tasks": [{"id": "nginx.1", "appId": "/nginx", "host": "10.0.0.1", "ports": [31000], "state": "TASK_RUNNING"}],
    "lastTaskFailure": {"appId": "/nginx", "message": "Killed", "state": "TASK_KILLED"},
    "taskStats": {"totalSummary": {"stats": {"counts": {"running": 3}}}},
    "readinessCheckResults": [],
}


def created_app(world):
    """The body of zdd's POST /v2/apps."""
    return next(record.body for record in world.sim.writes() if record.path == "/v2/apps")


# --- label values are strings ----------------------------------------------------------------------


def test_a_number_given_for_a_label_is_written_as_its_string(world, app_file):
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"]["HAPROXY_DEPLOYMENT_ALT_PORT"] = 10001
    app["labels"]["TEAM_SIZE"] = 2.5
    seed_blue(world, 3)
    code, _, err = run(world, app_file(app))
    assert code == 0, err
    labels = created_app(world)["labels"]
    assert labels["HAPROXY_DEPLOYMENT_ALT_PORT"] == "10001" and labels["TEAM_SIZE"] == "2.5"
    assert writes(world) == SEQUENCE_3


@pytest.mark.parametrize("value, kind", [(True, "true or false"), ([1], "a list"), ({"a": "b"}, "an object")])
def test_a_label_that_is_not_a_string_or_a_number_is_refused_with_4(world, app_file, value, kind):
    app = load_fixture("1-nginx-marathon1.5.json")
    app["labels"]["CANARY"] = value
    seed_blue(world, 3)
    code, _, err = run(world, app_file(app))
    assert code == zdd.ExitCode.BAD_APP, err
    assert f"label CANARY must be a string (or a number, written as its string), not {kind}" in err
    assert "Traceback" not in err and writes(world) == []


# --- read-only fields of a GET answer ----------------------------------------------------------------


@pytest.mark.parametrize("first", [True, False], ids=["first-deployment", "swap"])
def test_an_app_saved_from_a_get_answer_is_written_without_its_read_only_fields(world, app_file, first):
    app = dict(load_fixture("1-nginx-marathon1.5.json"), **GET_ANSWER_FIELDS)
    if not first:
        seed_blue(world, 3)
    code, _, err = run(world, app_file(app))
    assert code == 0, err
    assert not set(created_app(world)) & set(zdd.READ_ONLY_FIELDS)
    assert err.count("Left out of the new app") == 1
    assert ("Left out of the new app: deployments, tasks, tasksRunning, tasksStaged, tasksHealthy, "
            "tasksUnhealthy, version, versionInfo, lastTaskFailure, taskStats, readinessCheckResults") in err
    assert writes(world) == ([("create", "/nginx-blue", app["instances"])] if first else SEQUENCE_3)


def test_prepare_app_drops_read_only_fields_and_writes_label_strings():
    app = dict(load_fixture("1-nginx-marathon1.5.json"), **GET_ANSWER_FIELDS)
    app["labels"]["HAPROXY_DEPLOYMENT_ALT_PORT"] = 10001
    new_app = zdd.prepare_app(app, None, options(), NOW)
    assert appschema.violations(new_app) == []
    assert not set(new_app) & set(zdd.READ_ONLY_FIELDS)
    assert zdd.read_only_fields(app) == list(zdd.READ_ONLY_FIELDS)
    assert all(isinstance(value, str) for value in new_app["labels"].values())


def test_every_read_only_field_is_one_the_app_schema_refuses_or_marathon_only_sets():
    """READ_ONLY_FIELDS: refused by the schema, except version/versionInfo, which only Marathon sets."""
    refused = {problem.split(":")[0].lstrip("/") for problem in appschema.violations(dict(GET_ANSWER_FIELDS, id="/a"))}
    assert refused == set(zdd.READ_ONLY_FIELDS) - {"version", "versionInfo"}
    assert set(GET_ANSWER_FIELDS) == set(zdd.READ_ONLY_FIELDS)
