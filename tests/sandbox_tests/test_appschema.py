"""Marathon's app schema (tests/sandbox/appschema.py), and the simulator refusing a body as Marathon does.

What zdd writes is checked against the same schema in tests/test_valid_writes.py.
"""

import pytest

from tests.sandbox import appschema
from tests.sandbox.marathon import SCHEMA_VIOLATIONS
from tests.sandbox.world import load_fixture


@pytest.mark.parametrize("body, partial, problems", [
    (load_fixture("1-nginx-marathon1.5.json"), False, []),
    (load_fixture("1-nginx.json"), False, []),
    ({"instances": 2}, True, []),
    ({"instances": 2}, False, ["/id: required"]),
    ({"id": "/a", "labels": {"PORT": 10001}}, False, ["/labels/PORT: expected string, got int"]),
    ({"id": "/a", "tasksRunning": 3}, False, ["/tasksRunning: not a property of an app"]),
    ({"id": "/a", "instances": -1}, False, ["/instances: -1 is below 0"]),
    ({"id": "/a", "portDefinitions": [{"port": 70000}]}, False, ["/portDefinitions/0/port: 70000 is above 65535"]),
])
def test_the_app_schema(body, partial, problems):
    assert appschema.violations(body, partial=partial) == problems


def test_the_simulator_refuses_an_invalid_app_body_with_422_and_notes_it(world):
    import requests

    body = dict(load_fixture("1-nginx-marathon1.5.json"), id="/other", tasksRunning=3)
    answer = requests.post(world.sim.url + "/v2/apps", json=body, timeout=5, headers={"User-Agent": "a-test"})
    assert answer.status_code == 422
    assert answer.json() == {"message": "Object is not valid",
                             "details": [{"path": "/tasksRunning", "errors": ["not a property of an app"]}]}
    assert [(v.client, v.method, v.path) for v in SCHEMA_VIOLATIONS] == [("a-test", "POST", "/v2/apps")]
    SCHEMA_VIOLATIONS.clear()  # a test client's body: not zdd's (conftest checks zdd's)
    assert world.sim.api_apps() == []
