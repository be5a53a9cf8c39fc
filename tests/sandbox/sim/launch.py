"""What a launcher and the simulator tell each other: where a task runs, and how its health check went.

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
