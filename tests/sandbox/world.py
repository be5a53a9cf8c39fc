"""A unit-test world: one fake clock, one Marathon simulator, one fake marathon-lb."""

import copy
import json
import pathlib

from tests.sandbox.clock import FakeClock
from tests.sandbox.fakelb import FakeMarathonLB
from tests.sandbox.marathon import MarathonSim, RecordLauncher

FIXTURES_DIR = pathlib.Path(__file__).resolve().parent.parent / "fixtures"


def load_fixture(name):
    """A JSON file of tests/fixtures, parsed."""
    return json.loads((FIXTURES_DIR / name).read_text())


class World:
    """FakeClock + MarathonSim(RecordLauncher) + FakeMarathonLB, started together, stopped by close()."""

    def __init__(self, marathon_version="1.5", task_host="127.0.0.1", lb_host="127.0.0.1"):
        self.clock = FakeClock()
        self.sim = MarathonSim(clock=self.clock, launcher=RecordLauncher(self.clock, task_host),
                               marathon_version=marathon_version, task_host=task_host)
        self.lb = FakeMarathonLB(self.sim, host=lb_host)
        self.sim.start()
        try:
            self.lb.start()
        except Exception:
            self.sim.stop()
            raise

    def close(self):
        try:
            self.lb.stop()
        finally:
            self.sim.stop()

    def seed_app(self, app_json, ready=True, **changes):
        """Add an app (dict, or a tests/fixtures file name) as if deployed earlier; returns it as GET shows it.

        ``changes`` are set on a copy of the JSON first (e.g. ``id="/nginx-blue"``, ``instances=3``);
        ``labels`` given there are merged into the JSON's labels.
        """
        app = load_fixture(app_json) if isinstance(app_json, str) else copy.deepcopy(app_json)
        labels = changes.pop("labels", None)
        app.update(changes)
        if labels:
            app["labels"] = dict(app.get("labels") or {}, **labels)
        return self.sim.add_app(app, ready=ready)

    def argv(self, *extra):
        """zdd's ``-m``/``-l`` arguments for this world plus ``extra``."""
        return ["-m", self.sim.url, "-l", self.lb.url] + list(extra)
