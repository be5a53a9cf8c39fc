"""The simulator's one fault list: what a fault is, how a request is matched and hit, and the faulty answers.

``FaultList`` is the mixin of ``MarathonSim`` that keeps the list (``inject``, ``fail_next``, ``clear_faults``);
``MarathonSim.handle`` asks it, for every API request, which fault that request suffers. The kinds and their
fields are described in tests/sandbox/marathon.py's docstring.
"""

import copy
import dataclasses
import functools
import math
import random
import re
import struct
import time
import zlib

# What a fault does to a request it hits (the module docstring says more).
FAULT_KINDS = ("answer", "error", "delay", "drop", "garble")
# Faults of the answer's body, sent by the HTTP server: a body sent slowly, a compressed body that grows huge.
FAULT_KINDS += ("trickle", "bomb")
TRICKLE_GAP_S = 0.05
BOMB_SIZE_BYTES = 2**30


def garbled(payload, edits):
    """A copy of the JSON ``payload`` with each edit of a "garble" fault made (the module docstring says how)."""
    payload = copy.deepcopy(payload)
    for edit in edits:
        parts = str(edit["path"]).split(".")
        holders = [payload]
        for part in parts[:-1]:
            holders = [child for holder in holders for child in _children(holder, part)]
        for holder in holders:
            for key in _keys(holder, parts[-1]):
                if edit.get("drop"):
                    del holder[key]
                else:
                    holder[key] = copy.deepcopy(edit.get("set"))
    return payload


def _keys(holder, part):
    """The keys (or indexes) of ``holder`` that a path part names: ``*`` all of them."""
    if isinstance(holder, dict):
        return list(holder) if part == "*" else [part] if part in holder else []
    if isinstance(holder, list):
        if part == "*":
            return list(range(len(holder)))[::-1]  # from the end: a drop keeps the indexes still to come
        return [int(part)] if part.lstrip("-").isdigit() and -len(holder) <= int(part) < len(holder) else []
    return []


def _children(holder, part):
    return [holder[key] for key in _keys(holder, part)]


class Dropped(Exception):
    """A "drop" fault hit this request: it is not served, and its connection closes without an answer."""


@dataclasses.dataclass(frozen=True)
class Trickled:
    """A "trickle" fault's answer: ``payload``, sent one byte every ``gap_s`` seconds."""
    payload: object
    gap_s: float


@dataclasses.dataclass(frozen=True)
class Bomb:
    """A "bomb" fault's answer: ``size_bytes`` zero bytes, gzip-compressed."""
    size_bytes: int


@functools.lru_cache(maxsize=4)
def gzip_zeros(size_bytes):
    """``size_bytes`` zero bytes as one gzip stream, never all in memory: one MiB compressed once, repeated."""
    block = bytes(min(size_bytes, 2**20)) or b"\0"
    whole, rest = divmod(size_bytes, len(block))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)  # refers to nothing before it
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    tail = compressor.compress(bytes(rest)) + compressor.flush()  # the final block
    crc = 0
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(bytes(rest), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + segment * whole + tail + struct.pack("<II", crc, size_bytes % 2**32)


def send_slowly(wfile, data, gap_s, stopped):
    """Write ``data`` one byte every ``gap_s`` seconds until done, the client hangs up, or ``stopped()``."""
    for index in range(len(data)):
        if stopped():
            return
        wfile.write(data[index:index + 1])
        wfile.flush()
        time.sleep(gap_s)


@dataclasses.dataclass
class _Fault:
    """One fault of the simulator's list (``MarathonSim.inject``, ``MarathonSim.fail_next``)."""
    kind: str
    rate: float
    remaining: object
    until: object
    method: object
    path_re: object
    client_re: object
    statuses: list
    delay_s: float
    rng: object
    body: object = None
    garble: list = None
    size_bytes: int = BOMB_SIZE_BYTES
    seen: int = 0
    injected: int = 0

    def live(self, now):
        return (self.remaining is None or self.remaining > 0) and (self.until is None or now < self.until)

    def matches(self, method, path, client):
        return ((self.method is None or self.method.fullmatch(method))
                and (self.path_re is None or self.path_re.search(path))
                and (self.client_re is None or self.client_re.search(client or "")))

    def hits(self):
        """Count one matching request; True when this one is hit."""
        self.seen += 1
        if self.rng is not None:
            hit = self.rng.random() < self.rate
        else:
            hit = math.floor(self.seen * self.rate + 1e-9) > math.floor((self.seen - 1) * self.rate + 1e-9)
        if hit:
            self.injected += 1
            if self.remaining is not None:
                self.remaining -= 1
        return hit

    def status(self):
        """The status of the latest hit: ``statuses`` taken in turn."""
        return self.statuses[(self.injected - 1) % len(self.statuses)]


class FaultList:
    """The fault list of a ``MarathonSim`` (a mixin: uses its ``_lock``, ``_faults`` and ``faults_injected``)."""

    def inject(self, kind, rate=1.0, count=None, for_s=None, method=None, path_regex=None, client_regex=None,
               status=(500, 503), delay_s=0.0, seed=None, body=None, garble=None,
               size_bytes=BOMB_SIZE_BYTES):
        """Add a fault to the list (see the module docstring); returns it."""
        if kind not in FAULT_KINDS:
            raise ValueError("unknown fault kind %r" % kind)
        statuses = [int(status)] if isinstance(status, (int, str)) else [int(code) for code in status]
        fault = _Fault(kind=kind, rate=float(rate), remaining=None if count is None else int(count),
                       until=None if for_s is None else time.monotonic() + float(for_s),
                       method=re.compile(method.upper()) if method else None,
                       path_re=re.compile(path_regex) if path_regex else None,
                       client_re=re.compile(client_regex) if client_regex else None,
                       statuses=statuses, delay_s=float(delay_s),
                       rng=random.Random(seed) if seed is not None else None,
                       body=body if body is not None else {"message": "injected failure"},
                       garble=[garble] if isinstance(garble, dict) else list(garble or ()),
                       size_bytes=int(size_bytes))
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next(self, method, path_regex, status, count=1, body=None):
        """Answer the next ``count`` matching requests with ``status`` and ``body``, logged (an "answer" fault)."""
        return self.inject("answer", method=method, path_regex=path_regex, status=status, count=count, body=body)

    def clear_faults(self):
        """Remove every fault (the counts in ``faults_injected`` stay)."""
        with self._lock:
            self._faults.clear()

    def _fault_for(self, method, path, client):
        """The fault this request suffers, counted as a hit, or None."""
        with self._lock:
            now = time.monotonic()
            self._faults = [fault for fault in self._faults if fault.live(now)]
            for fault in self._faults:
                if not fault.matches(method, path, client):
                    continue
                if not fault.hits():
                    return None
                self.faults_injected[fault.kind] += 1
                return fault
            return None
