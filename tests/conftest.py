"""Shared fixtures: ``world`` is a fake clock, a Marathon simulator and a fake marathon-lb.

The helpers that tests call (seed, run zdd, read the writes) are in tests/helpers.py.
"""

import json

import pytest

from tests.sandbox.clock import RealClock
from tests.sandbox.fakelb import FakeMarathonLB
from tests.sandbox.marathon import SCHEMA_VIOLATIONS, MarathonSim, RecordLauncher
from tests.sandbox.world import World, load_fixture


def pytest_collection_modifyitems(items):
    """Tests marked ``long`` first, the rest in their order: side by side (pytest -n), none of them starts last
    and keeps the run waiting while the other workers are idle."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True)
def zdd_writes_valid_apps():
    """Fail any test in which zdd wrote an app body Marathon's app schema refuses (the simulator notes them)."""
    SCHEMA_VIOLATIONS.clear()
    yield
    refused = [violation for violation in SCHEMA_VIOLATIONS if violation.client.startswith("zdd/")]
    SCHEMA_VIOLATIONS.clear()
    if refused:
        pytest.fail("zdd wrote app bodies Marathon refuses: " + "; ".join(
            f"{violation.method} {violation.path}: {', '.join(violation.problems)}" for violation in refused))


@pytest.fixture
def world():
    """A started World (Marathon 1.5 shapes); stopped at teardown, even when the test fails."""
    created = World()
    try:
        yield created
    finally:
        created.close()


@pytest.fixture
def world14():
    """A started World answering in Marathon 1.4 shapes."""
    created = World(marathon_version="1.4")
    try:
        yield created
    finally:
        created.close()


@pytest.fixture
def app_file(tmp_path):
    """Write an app JSON (a dict or a fixture name) to a file; returns its path."""

    def write(app="1-nginx-marathon1.5.json", **changes):
        app = load_fixture(app) if isinstance(app, str) else app
        app.update(changes)
        path = tmp_path / "app.json"
        path.write_text(json.dumps(app))
        return str(path)

    return write


@pytest.fixture
def app_path(app_file):
    """The nginx app JSON (Marathon 1.5 shape) written to a file; returns its path."""
    return app_file()


@pytest.fixture
def real_world():
    """(simulator, fake marathon-lb) on the real clock, for zdd run as a real process; stopped at teardown."""
    clock = RealClock()
    sim = MarathonSim(clock=clock, launcher=RecordLauncher(clock)).start()
    lb = FakeMarathonLB(sim).start()
    try:
        yield sim, lb
    finally:
        lb.stop()
        sim.stop()
