"""What a launcher and the simulator tell each other: where a task runs, how its health check went, and the
label and default that decide a check.

Apart from tests/sandbox/sim/tasklife.py so that a task process, which imports tests/sandbox/tasks.py, does not
import the simulator too.
"""

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a launched task runs: agent host, host ports, container IP (or None)."""
    host: str
    ports: list
    ip: object = None


@dataclasses.dataclass(frozen=True)
class Check:
    """One health check's outcome; ``cause``: why it failed, in a few words (Marathon's ``lastFailureCause``)."""
    healthy: bool
    cause: Optional[str] = None


PASSED = Check(True)

# The simulator's own label: "false" fails every health check of the app's tasks (both launchers)
LABEL_HEALTHY = "SIM_HEALTHY"
FAILED_BY_LABEL = Check(False, LABEL_HEALTHY + " is false")

DEFAULT_CHECK_TIMEOUT_S = 20  # Marathon's default timeoutSeconds of a health check


def failed_by_label(app):
    """Whether the app's label fails every health check of its tasks."""
    return str((app.get("labels") or {}).get(LABEL_HEALTHY, "true")).lower() == "false"
