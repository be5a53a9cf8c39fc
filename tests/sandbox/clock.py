"""Clocks shared by zdd, the Marathon simulator and the fake marathon-lb.

zdd only ever calls ``monotonic()``, ``sleep(seconds)`` and ``now()`` on the
clock it is given, so a test hands the same ``FakeClock`` to zdd and to the
simulator: when zdd sleeps, simulated time moves on and tasks come up, without
the test waiting for real.
"""

import datetime
import threading
import time


class RealClock:
    """The wall clock and the monotonic clock of this machine."""

    def monotonic(self):
        return time.monotonic()

    def sleep(self, seconds):
        time.sleep(max(0.0, seconds))

    def now(self):
        """Naive local time, as zdd writes it into HAPROXY_DEPLOYMENT_STARTED_AT."""
        return datetime.datetime.now()

    def utcnow(self):
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class FakeClock:
    """A clock that only moves when someone sleeps on it or advances it."""

    def __init__(self, start_wall=datetime.datetime(2026, 1, 1, 12, 0, 0), start_monotonic_s=1000.0):
        self._lock = threading.Lock()
        self._elapsed_s = 0.0
        self._start_wall = start_wall
        self._start_monotonic_s = start_monotonic_s
        self.slept_s = 0.0

    def monotonic(self):
        with self._lock:
            return self._start_monotonic_s + self._elapsed_s

    def advance(self, seconds):
        with self._lock:
            self._elapsed_s += max(0.0, seconds)

    def sleep(self, seconds):
        seconds = max(0.0, seconds)
        with self._lock:
            self._elapsed_s += seconds
            self.slept_s += seconds

    def now(self):
        with self._lock:
            return self._start_wall + datetime.timedelta(seconds=self._elapsed_s)

    def utcnow(self):
        return self.now()
