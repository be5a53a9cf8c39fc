"""--save-previous (docs/behaviour.rst, 'The previous release kept'): the app zdd deletes, kept as an app JSON first."""

import json
import os

import pytest

import zdd
from tests.helpers import SEQUENCE_3, run, run_json, seed_blue, settle, unhealthy_app, writes, zdd_labels
from tests.test_events import check_schema

USER_LABELS = {"HAPROXY_DEPLOYMENT_GROUP": "nginx", "HAPROXY_DEPLOYMENT_ALT_PORT": "10001", "HAPROXY_GROUP": "external"}


def service_ports(app):
    """Every service port the saved JSON carries, in whichever shape."""
    container = app.get("container") or {}
    mappings = container.get("portMappings") or (container.get("docker") or {}).get("portMappings") or []
    return ([m["servicePort"] for m in mappings] + [d["port"] for d in app.get("portDefinitions") or []]
            + list(app.get("ports") or []))


def assert_deployable_again(saved, port, instances):
    assert saved["id"] == "nginx"
    assert saved["labels"] == USER_LABELS | {k: v for k, v in saved["labels"].items() if k.startswith("SIM_")}
    assert not set(saved) & set(zdd.READ_ONLY_FIELDS)
    assert None not in saved.values()
    assert service_ports(saved) == [port]
    assert saved["instances"] == instances


@pytest.mark.parametrize("version, fixture", [("1.5", "1-nginx-marathon1.5.json"), ("1.4", "1-nginx.json")])
def test_the_old_app_is_saved_before_its_delete_and_deploys_back(world, world14, app_file, tmp_path, version,
                                                                 fixture):
    world = world14 if version == "1.4" else world
    seed_blue(world, 3, fixture=fixture)
    saved_path = tmp_path / "previous.json"
    code, events, err = run_json(world, app_file(fixture), "--save-previous", str(saved_path))
    assert code == zdd.ExitCode.OK, err
    assert writes(world) == SEQUENCE_3
    check_schema(events)
    names = [event["event"] for event in events]
    assert names.index("previous") < names.index("deleted")
    assert next(e for e in events if e["event"] == "previous") | {"time": 0, "elapsed_s": 0} == {
        "event": "previous", "file": str(saved_path), "app": "/nginx-blue", "id": "nginx", "time": 0, "elapsed_s": 0}
    saved = json.loads(saved_path.read_text())
    assert_deployable_again(saved, port=10000, instances=3)
    if version == "1.4":  # the answer's derived lists are gone, the user's docker port mappings kept
        assert "ports" not in saved and "portDefinitions" not in saved and "ipAddress" not in saved
        assert saved["container"]["docker"]["network"] == "BRIDGE"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert oct(saved_path.stat().st_mode & 0o777) == "0o600"

    # The undo: zdd -j FILE swaps the previous release back in, on the user's own service port.
    world.sim.clear_log()
    code, _, err = run(world, str(saved_path))
    assert code == zdd.ExitCode.OK, err
    assert writes(world) == [step if step[0] != "create" and step[0] != "scale" else (step[0], "/nginx-blue", step[2])
                             for step in SEQUENCE_3[:-1]] + [("delete", "/nginx-green")]
    blue = world.sim.api_apps()[0]
    assert blue["id"] == "/nginx-blue" and service_ports(blue)[0] == 10000


def test_a_rollback_saves_the_failed_app_before_deleting_it(world, app_file, tmp_path):
    seed_blue(world, 3)
    saved_path = tmp_path / "failed.json"
    code, _, err = run(world, app_file(unhealthy_app()), "--on-failure", "rollback", "--stall-timeout", "120",
                       "--save-previous", str(saved_path))
    assert code == zdd.ExitCode.ROLLED_BACK, err
    assert writes(world) == [("create", "/nginx-green", 1), ("delete", "/nginx-green")]
    saved = json.loads(saved_path.read_text())
    # green ran on the alternate port 10001: the file has the port of the JSON it came from
    assert_deployable_again(saved, port=10000, instances=3)
    assert saved["labels"]["SIM_HEALTHY"] == "false"
    assert f"Saved /nginx-green as nginx to {saved_path}" in err


def test_a_file_that_cannot_be_written_stops_zdd_before_the_delete(world, app_path, tmp_path):
    """FILE names a directory: the rename fails, even for root. Nothing is deleted, nothing more is written."""
    seed_blue(world, 3)
    blocked = tmp_path / "a-directory"
    blocked.mkdir()
    code, _, err = run(world, app_path, "--save-previous", str(blocked))
    assert code == zdd.ExitCode.SAVE_FAILED == 16
    assert writes(world) == SEQUENCE_3[:-1]
    assert settle(world)["/nginx-blue"] == (1, 1)  # the delete would have taken its last task
    assert f"--save-previous: cannot write {blocked}" in err and "/nginx-blue was not deleted" in err
    assert "to finish: " in err
    assert sorted(os.listdir(tmp_path)) == ["a-directory", "app.json"]  # no temporary file left


def test_in_a_rollback_an_unwritable_file_keeps_the_failed_app(world, app_file, tmp_path):
    seed_blue(world, 3)
    blocked = tmp_path / "a-directory"
    blocked.mkdir()
    code, _, err = run(world, app_file(unhealthy_app()), "--on-failure", "rollback", "--stall-timeout", "120",
                       "--save-previous", str(blocked))
    assert code == zdd.ExitCode.SAVE_FAILED, err
    assert writes(world) == [("create", "/nginx-green", 1)]
    assert "the rollback stopped" in err and "/nginx-green was not deleted" in err


def test_a_file_in_a_directory_that_does_not_exist_is_refused_at_the_start(world, app_path, tmp_path):
    seed_blue(world, 3)
    code, _, err = run(world, app_path, "--save-previous", str(tmp_path / "missing" / "previous.json"))
    assert code == zdd.ExitCode.INVALID_ARGS
    assert world.sim.requests == []


def test_previous_definition_of_a_14_host_app_answer():
    """Marathon 1.4 answers a host-networking app with nulls, ``ports`` and ``portDefinitions``: one list stays."""
    answer = {"id": "/web-green", "cmd": "serve", "container": None, "ipAddress": None, "instances": 4,
              "ports": [10001], "portDefinitions": [{"port": 10001, "protocol": "tcp", "labels": {}}],
              "labels": {**USER_LABELS, **zdd_labels("green", 10000, 4, "2025-06-01T10"), "HAPROXY_APP_ID": "web"},
              "version": "2017-07-14T15:13:34.402Z", "versionInfo": {}, "tasksStaged": 0, "tasksRunning": 4,
              "tasksHealthy": 4, "tasksUnhealthy": 0, "deployments": [], "tasks": [], "lastTaskFailure": {}}
    saved = zdd.previous_definition(answer, 4)
    assert saved["id"] == "web"
    assert saved["portDefinitions"] == [{"port": 10000, "protocol": "tcp", "labels": {}}]
    assert "ports" not in saved and "container" not in saved and "ipAddress" not in saved
    assert not set(saved["labels"]) & set(zdd.ZDD_LABELS)
    assert not set(saved) & set(zdd.READ_ONLY_FIELDS)
    assert answer["labels"]["HAPROXY_APP_ID"] == "web"  # the answer itself is left alone
