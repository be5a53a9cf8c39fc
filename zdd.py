"""Zero-downtime blue/green deployment of a Marathon app behind marathon-lb.

zdd reads an app definition, asks Marathon which colour of the app's
deployment group runs now, and starts the other colour next to it with a few
instances. It then watches every marathon-lb (HAProxy) instance: as the new
tasks come up, marathon-lb marks old tasks as draining; once HAProxy has
drained them, zdd kills them and scales the new app up, step by step, until
the new app runs the target number of instances and the old app is deleted.

The app JSON must carry two labels:

  HAPROXY_DEPLOYMENT_GROUP     names the blue/green pair (one HAProxy backend)
  HAPROXY_DEPLOYMENT_ALT_PORT  a second service port: the colours alternate
                               between the app's own service port and this one

zdd adds HAPROXY_APP_ID, HAPROXY_0_PORT, HAPROXY_DEPLOYMENT_COLOUR,
HAPROXY_DEPLOYMENT_STARTED_AT, HAPROXY_DEPLOYMENT_TARGET_INSTANCES and
HAPROXY_DEPLOYMENT_NEW_INSTANCES, which marathon-lb reads to merge the two
colours into one backend and to choose which old tasks to drain.

Each step polls the stats of every marathon-lb and waits until:
  - every marathon-lb routes exactly the running, healthy tasks of both apps;
  - at least the target number of listeners are UP;
  - at least one old listener is drained (MAINT, no sessions, no queue);
  - before a kill or a delete, no old HAProxy worker can still send
    requests to the tasks going away (--reload-check): for an HTTP backend,
    every marathon-lb's stats came from a worker that zdd has seen serving,
    with those tasks drained or gone, for --reload-grace seconds (2 s, the
    longest request it allows for), so every older worker stopped taking
    requests at least that long ago; for a TCP backend (or --reload-check
    getpids), read after the stats, no marathon-lb is reloading (its
    /_haproxy_getpids, which forks inside marathon-lb's HAProxy, lists no
    more than 2 PIDs).
It then kills the old tasks drained on every marathon-lb and scales the new
app up by half again (1, 2, 3, 5, 8, ...; --linear-increase to add a fixed
number), jumping to the target once it reaches the old app's size. If
draining takes longer than --max-wait seconds, the old tasks in MAINT on every
marathon-lb are killed anyway.

zdd --status reads the group without changing anything: each colour's
instances, each marathon-lb's listeners per colour, where a deployment stands
in its schedule, and the command that finishes it; --watch refreshes it.
While it waits, zdd looks again 0.25 s after its own writes and after each
change of what it waits for, then 1.5 times later each time, at most every
--step-delay seconds; --min-step-interval sets a least time between steps.
With --max-error-rate (or --max-response-time), before each scale-up and
before the delete zdd judges the step by the HAProxy counters of every
marathon-lb: when the new colour's failure rate since the previous step is
above the limit and above the old colour's, with at least
--analysis-min-requests requests seen, the release fails (exit 15; rolled
back with --on-failure rollback). --step-check runs a gate of your own there.

The plan lists the fields in which the new definition differs from the
running colour's (what zdd sets, what Marathon adds to its answers and
Marathon's defaults left out); with --skip-unchanged, when nothing differs
and no Marathon deployment runs on it, zdd says so and exits 0 with no write.

--new-instances N leaves a hybrid group (N new, target - N old instances);
--complete-cur or --complete-prev later converges it to one colour. When a run
stops halfway (deadline, stall, Ctrl-C, a crash), run the same command again
with --resume to finish, or with --complete-prev to go back.

-m takes several Marathon masters (comma-separated or repeated): a request
that gets no answer from one goes to the next, and zdd keeps asking the one
that answered. A write goes to the next master only when it certainly never
reached the first (refused, name not resolved, connect timeout).
--save-previous FILE writes the app zdd is about to delete (the old colour;
in a rollback, the failed new one) as an app JSON first: zdd -j FILE deploys
it back.
"""

# Code map, for engineers (the docstring above is the user's --longhelp). The sections below, each under a
# banner, come in dependency order: a section uses only those above it, so a reader meets a thing's parts first
# (inside a section, a function may come before the helpers it calls).
#   Constants        labels (LABEL_*), tunables with their units (DEFAULT_*_S, ...), protocol facts (paths,
#                    HAProxy's columns, retried statuses, flags); the logger
#   Errors           ExitCode, EXIT_CODES_HELP, ZddError and one subclass per failure
#   Value types      Options, Listener, LbView, Plan, Observation, Step
#   Pure core        no I/O, no clock: the app definition (prepare_app, plan_swap, scale_schedule, look_again);
#                    what differs (definition_changes); listeners and the next step (parse_stats, assess_drain,
#                    decide_swap, decide_rollback); judging traffic (tally_traffic, judge_traffic, traffic_gate)
#   Time             SystemClock, Deadline, Interrupts (SIGINT/SIGTERM and the sleep they stop)
#   I/O              HttpClient (bounded answers), MarathonClient, MarathonLbClient (observe, with_pids)
#   Reporting        Reporter (each happening's text line and JSON event, TEXT_LINES); TerminalBlock, LiveHandler
#   The loop         Deployer (roles, writes, converge: the one loop), LoopSteps with SwapSteps and
#                    RollbackSteps, StepTools, StallWatch
#   Status           --status/--watch: read_group, group_status, render_status, show_status
#   Live view        LiveDeployer: a deployment's progress redrawn on a terminal
#   Command line     build_parser, parse_options, setup_logging, main (the error boundary), execute
# Rules: tunables and protocol facts live in Constants; a table, pattern or sentinel that one piece of code reads
# (APP_SHAPES, MARATHON_DEFAULTS, TEXT_LINES, RESULTS, ...) sits right above that code. Every line that tells a
# happening with a JSON event goes through the Reporter; a line with no event of its own, or logged where no
# Reporter exists, is a plain logger call (see Reporter). Every function is 45 lines or fewer.

__version__ = "1.0.0"

import argparse
import contextlib
import dataclasses
import datetime
import enum
import http.client
import ipaddress
import itertools
import json
import logging
import logging.handlers
import math
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import typing
import urllib.parse
import zlib

import dateutil.parser
import requests
import urllib3

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

LABEL_GROUP = "HAPROXY_DEPLOYMENT_GROUP"
LABEL_ALT_PORT = "HAPROXY_DEPLOYMENT_ALT_PORT"
LABEL_APP_ID = "HAPROXY_APP_ID"
LABEL_PORT = "HAPROXY_0_PORT"
LABEL_COLOUR = "HAPROXY_DEPLOYMENT_COLOUR"
LABEL_STARTED_AT = "HAPROXY_DEPLOYMENT_STARTED_AT"
LABEL_TARGET = "HAPROXY_DEPLOYMENT_TARGET_INSTANCES"
LABEL_NEW_INSTANCES = "HAPROXY_DEPLOYMENT_NEW_INSTANCES"

ZDD_LABELS = (LABEL_APP_ID, LABEL_PORT, LABEL_COLOUR, LABEL_STARTED_AT, LABEL_TARGET, LABEL_NEW_INSTANCES)

BLUE, GREEN = "blue", "green"

DEFAULT_STEP_DELAY_S = 5
DEFAULT_MAX_WAIT_S = 300
DEFAULT_REQUEST_TIMEOUT_S = 10
DEFAULT_STALL_TIMEOUT_S = 600
DEFAULT_DEADLINE_S = 0  # 0: no deadline for the whole run
HOOK_TIMEOUT_S = 600
GET_ATTEMPTS = 4
RETRY_BACKOFF_S = (0.5, 1.0, 2.0)
# The most an answer's body may hold, decompressed: 18 times a marathon-lb stats page of 12,000 servers (3.4 MB),
# and more than /v2/apps of 20,000 apps; a bigger (or bigger-growing) answer is one zdd could not read.
MAX_ANSWER_BYTES = 64 * 2**20
ANSWER_CHUNK_BYTES = 64 * 2**10  # read (and decompress) an answer this much at a time
ACCEPTED_ENCODINGS = "gzip, deflate"  # what zdd decompresses itself, within MAX_ANSWER_BYTES
RESTING_PID_COUNT = 2  # master + one worker: marathon-lb runs HAProxy in master-worker mode
SLEEP_SLICE_S = 0.2  # how often a sleep looks for SIGINT/SIGTERM
AMBIGUOUS_WRITES_TOLERATED = 3
DCOS_REFRESH_MARGIN_S = 60
DCOS_FALLBACK_TOKEN_LIFETIME_S = 300
FIRST_LOOK_AGAIN_S = 0.25  # the first wait after zdd's own write, or after what it waits for changed
LOOK_AGAIN_GROWTH = 1.5  # each further wait for the same thing is this many times longer, up to --step-delay
DEFAULT_ANALYSIS_MIN_REQUESTS = 100  # a rate from 100 requests moves in steps of 1 percentage point
INCONCLUSIVE_CHOICES = ("continue", "wait", "fail")
RELOAD_CHECKS = ("auto", "grace", "getpids")  # --reload-check (docs/behaviour.rst, 'Old HAProxy workers')
DEFAULT_RELOAD_GRACE_S = 2.0
SAME_WORKER_SLACK_S = 1.5  # HAProxy's lastchg is in whole seconds: the worker's age may look up to 1 s off each read

STATS_PATH = "/haproxy?stats;csv"
STATS_SCOPE_MAX = 20  # HAProxy 2.6 reads at most this many characters of a stats scope
PIDS_PATH = "/_haproxy_getpids"
DEFAULT_SYSLOG_SOCKET = "/var/run/syslog" if sys.platform == "darwin" else "/dev/log"
DEFAULT_LOG_FORMAT = "%(asctime)-15s %(name)s: %(message)s"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
SECRET_FLAGS = ("--auth-credentials", "--dcos-auth-credentials")

# Fields of a GET answer that a POST must not carry: Marathon fills them in itself.
READ_ONLY_FIELDS = ("deployments", "tasks", "tasksRunning", "tasksStaged", "tasksHealthy", "tasksUnhealthy",
                    "version", "versionInfo", "lastTaskFailure", "taskStats", "readinessCheckResults")

DIFF_VALUE_CHARS = 200  # a value longer than this is cut in the plan's text line (the event has it whole)

STATS_COLUMNS = ("pxname", "svname", "status", "scur", "qcur")
COUNTER_COLUMNS = ("stot", "lbtot", "hrsp_5xx", "eresp", "econ", "srv_abrt", "cli_abrt", "rtime")

CUMULATIVE_COUNTERS = ("stot", "lbtot", "hrsp_5xx", "eresp", "econ", "srv_abrt", "cli_abrt")

ROLLBACK_SHARE = 1 / 3  # of --deadline, kept for the way back with --on-failure rollback

RETRIED_STATUSES = (500, 502, 503, 504)

STATUS_FLAGS = ("--status", "--watch")  # left out of the commands a status prints
DEFAULT_TERMINAL_COLUMNS = 80
DEFAULT_TERMINAL_LINES = 24

ENV_PREFIX = "ZDD_"

ROLE_FLAGS = ("--dry-run", "-d", "--resume", "-r", "--complete-cur", "-c", "--complete-prev", "-p")

logger = logging.getLogger("zdd")


# ---------------------------------------------------------------------------
# Errors and exit codes
# ---------------------------------------------------------------------------

class ExitCode(enum.IntEnum):
    OK = 0
    DECLINED = 1
    INTERNAL = 2
    INVALID_ARGS = 3
    BAD_APP = 4
    LB_FAILED = 5
    MARATHON_FAILED = 6
    CREATE_FAILED = 7
    DELETE_FAILED = 8
    SCALE_FAILED = 9
    DEADLINE = 10
    STALLED = 11
    HOOK_REFUSED = 12
    ROLLED_BACK = 13
    ROLLBACK_FAILED = 14
    CHECK_FAILED = 15
    SAVE_FAILED = 16
    INTERRUPTED = 130
    TERMINATED = 143


EXIT_CODES_HELP = """
Exit codes:
    0  deployed (or the dry run is done, or with --skip-unchanged nothing
       differed)
    1  the operator answered no
    2  usage error (an unknown or malformed flag), or an unexpected internal
       error (with a traceback)
    3  invalid arguments: a bad URL, credentials or hook, conflicting flags,
       --complete-* on a group that is not hybrid, an unfinished deployment
       without --resume, prompts without a terminal, a bad --format-json,
       a --save-previous file in a directory that does not exist
    4  the app JSON is unusable: unreadable, not a JSON object, or a required
       field missing or wrong
    5  a marathon-lb endpoint failed (does not resolve or answer before the
       first write, also in a dry run, or kept failing, or answering
       doubtful stats or PIDs, for --stall-timeout)
    6  a Marathon request failed: before the first write, a read after its
       retries or a doubtful answer for an app of the group; from then on,
       Marathon did not answer (or answered doubtfully) for --stall-timeout;
       at any time, an answer waiting cannot fix (401, 403, not JSON)
    7  creating the new app failed
    8  deleting the old app failed
    9  scaling the new app or killing old tasks failed
   10  the --deadline passed
   11  stalled: no progress for --stall-timeout seconds
   12  the pre-kill hook failed: no task was killed
   13  the deployment failed and was rolled back (--on-failure rollback)
   14  the rollback failed too
   15  the release failed its checks: --max-error-rate, --max-response-time
       or --step-check (the analysis stopped it)
   16  --save-previous could not write its file: the app it holds was not
       deleted (run the command shown to finish once the file can be written)
  130  interrupted by SIGINT (Ctrl-C), at a safe point
  143  stopped by SIGTERM, at a safe point
Codes 2, 3 and 4 come before anything is written to Marathon.
"""


class ZddError(Exception):
    """An expected failure: one line for the operator, and an exit code."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


class Declined(ZddError):
    exit_code = ExitCode.DECLINED


class UsageError(ZddError):
    exit_code = ExitCode.INTERNAL


class InvalidArgs(ZddError):
    exit_code = ExitCode.INVALID_ARGS


class BadApp(ZddError):
    exit_code = ExitCode.BAD_APP


class LbFailed(ZddError):
    exit_code = ExitCode.LB_FAILED


class MarathonFailed(ZddError):
    exit_code = ExitCode.MARATHON_FAILED


class MarathonUnavailable(MarathonFailed):
    """Marathon did not answer, or answered 5xx: once the new app exists, zdd waits for it."""


class MarathonDoubtful(MarathonUnavailable):
    """Marathon's answer for an app of the group is malformed or another app's: waited on as an outage.

    docs/behaviour.rst, 'Doubtful answers'.
    """


class WriteOutcome(enum.Enum):
    """Whether a failed Marathon write may have been acted on (``WriteFailed.outcome``)."""

    MAYBE = "maybe"  # no answer after sending, or a 5xx: read the state again and decide again
    UNSENT = "unsent"  # it never reached Marathon
    FAILED = "failed"  # Marathon refused it (a clear 4xx), or asking again cannot help (the name, TLS)


class WriteFailed(ZddError):
    """A Marathon write that failed; ``outcome`` (a WriteOutcome) says whether Marathon may have acted on it."""

    def __init__(self, message, hint=None, outcome=WriteOutcome.FAILED):
        super().__init__(message, hint)
        self.outcome = outcome


class CreateFailed(WriteFailed):
    exit_code = ExitCode.CREATE_FAILED


class DeleteFailed(WriteFailed):
    exit_code = ExitCode.DELETE_FAILED


class ScaleFailed(WriteFailed):
    exit_code = ExitCode.SCALE_FAILED


class DeadlineExceeded(ZddError):
    exit_code = ExitCode.DEADLINE


class Stalled(ZddError):
    exit_code = ExitCode.STALLED


class HookRefused(ZddError):
    exit_code = ExitCode.HOOK_REFUSED


class RolledBack(ZddError):
    exit_code = ExitCode.ROLLED_BACK


class RollbackFailed(ZddError):
    exit_code = ExitCode.ROLLBACK_FAILED


class CheckFailed(ZddError):
    """The new colour's traffic or the --step-check judged the release bad."""

    exit_code = ExitCode.CHECK_FAILED


class SaveFailed(ZddError):
    """--save-previous could not write the definition about to be deleted: nothing was deleted."""

    exit_code = ExitCode.SAVE_FAILED


class Interrupted(ZddError):
    def __init__(self, signum):
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}")
        self.exit_code = ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED


class Locked(Exception):
    """Marathon answered 409: the app is locked by a running deployment."""


# ---------------------------------------------------------------------------
# Value types
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Options:
    marathon: tuple  # the masters' URLs, in the order given
    marathon_lb: tuple
    json: str
    dry_run: bool = False
    force: bool = False
    step_delay: float = DEFAULT_STEP_DELAY_S
    initial_instances: int = 1
    linear_increase: int = 0
    resume: bool = False
    max_wait: float = DEFAULT_MAX_WAIT_S
    new_instances: int = 0
    complete_cur: bool = False
    complete_prev: bool = False
    pre_kill_hook: str = None
    syslog_socket: str = DEFAULT_SYSLOG_SOCKET
    log_format: str = DEFAULT_LOG_FORMAT
    log_level: str = "DEBUG"
    auth: tuple = None
    dcos_credentials: dict = None
    marathon_ca_cert: str = None
    format_json: str = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S  # for a whole answer: connecting, headers, body
    deadline: float = DEFAULT_DEADLINE_S  # for the whole run, requests in flight included
    stall_timeout: float = DEFAULT_STALL_TIMEOUT_S
    output: str = "text"
    on_failure: str = "stop"
    argv: tuple = ()
    status: bool = False
    watch: bool = False
    min_step_interval: float = 0.0
    max_error_rate: float = None  # None: the error-rate check is off
    analysis_min_requests: int = DEFAULT_ANALYSIS_MIN_REQUESTS
    max_response_time: float = None  # milliseconds; None: the latency check is off
    analysis_inconclusive: str = "continue"
    step_check: str = None
    skip_unchanged: bool = False
    save_previous: str = None  # the file the app zdd deletes is written to first
    reload_check: str = "auto"
    reload_grace: float = DEFAULT_RELOAD_GRACE_S

    @property
    def analysing(self):
        return self.max_error_rate is not None or self.max_response_time is not None


@dataclasses.dataclass(frozen=True)
class Listener:
    """One server row of a marathon-lb's HAProxy stats."""

    svname: str
    status: str  # "": unknown (docs/behaviour.rst, 'Doubtful answers')
    scur: int  # None: unknown, never 0
    qcur: int  # None: unknown, never 0
    # cumulative counters of the HAProxy worker that served the page (they restart at 0 on a reload);
    # None: unknown (missing, "-" or garbage), which the traffic analysis never reads as 0
    stot: int = 0
    lbtot: int = 0
    hrsp_5xx: int = 0
    eresp: int = 0
    econ: int = 0
    srv_abrt: int = 0
    cli_abrt: int = 0
    rtime: int = 0  # ms: mean time to the response headers over the worker's last 1024 requests
    check_status: str = ""
    mode: str = ""  # the backend's proxy mode: "http", "tcp" ("": the column is missing)

    @property
    def up(self):
        return self.status.split(" ")[0] == "UP" or self.status == "no check"

    @property
    def maint(self):
        return self.status.startswith("MAINT")

    @property
    def drained(self):
        return self.maint and self.scur == 0 and self.qcur == 0

    @property
    def doubt(self):
        """What about this row is unknown (docs/behaviour.rst, 'Doubtful answers'), or None."""
        unknown = [name for name in ("status", "scur", "qcur") if getattr(self, name) in ("", None)]
        return f"server {self.svname}: no {'/'.join(unknown)}" if unknown else None


@dataclasses.dataclass(frozen=True)
class LbView:
    """What one marathon-lb instance showed in one read (``MarathonLbClient``): a deployment's poll, or --status."""

    url: str
    pids: tuple = None  # its HAProxy PIDs; None: not read (only when asked, see with_pids), or the request failed
    listeners: tuple = None  # None: the stats (or, but for --status, the PID request after them) failed
    error: str = None  # why the stats or the PIDs were not read
    source: str = dataclasses.field(default=None, repr=False)  # the URL read, credentials and all
    # When and from which worker the stats came (docs/behaviour.rst, 'Old HAProxy workers'):
    read_at: float = None  # zdd's monotonic clock once the stats had come: the worker serving them was taking requests
    worker_age_s: int = None  # the serving worker's age as the stats show it (whole seconds); None: not shown
    serving_since: float = None  # the first of zdd's reads in a row served by this same worker (track_reads)
    # server name -> the first of zdd's reads in a row that showed it drained or not listed (track_reads)
    quiet_since: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def reloading(self):
        """Whether more HAProxy processes run than at rest (an old worker still serves); None: PIDs not read."""
        return None if self.pids is None else len(self.pids) > RESTING_PID_COUNT


@dataclasses.dataclass(frozen=True)
class Plan:
    """The roles and numbers a swap converges to."""

    new_id: str
    old_id: str
    target: int
    hybrid_goal: int = 0  # new instances to end with in a hybrid deployment, 0 otherwise
    linear_increase: int = 0

    @property
    def goal(self):
        return self.hybrid_goal or self.target


@dataclasses.dataclass(frozen=True)
class Observation:
    """One poll: both apps as Marathon showed them, every marathon-lb's view, the tasks' server names.

    ``names`` maps each task id of both apps to its HAProxy server name (None:
    it cannot have one), resolved once when observing: the decisions do no DNS.
    """

    new_app: dict
    old_app: dict
    lbs: tuple = ()
    marathon_wait_s: float = 0.0  # how long reading Marathon for it waited out an outage
    names: dict = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class Step:
    """What to do after one observation, in a swap or in a rollback.

    In a rollback the observation's new app is the one restored and its old
    app the failed one: ``scale_to`` scales the restored app, ``delete_old``
    deletes the failed one.
    """

    wait: str = None
    draining: bool = False  # the wait is only for HAProxy to drain sessions (bounded by --max-wait)
    lb_failed: bool = False  # the wait is for a marathon-lb that does not answer
    bounded: bool = True  # the wait counts towards --max-wait (False: it starts again after it)
    read_lbs: bool = False  # decided without marathon-lb's view, which it needs (the loop reads it first: *_reads_lbs)
    kill: tuple = ()
    scale_to: int = None  # the new (or restored) app's instances
    hand_over: bool = False  # rollback: scale the restored app up one and back (RollbackSteps.hand_over)
    delete_old: bool = False  # delete the old (or failed) app
    done: bool = False
    forced: bool = False  # --max-wait passed: killing tasks that are MAINT but maybe not drained
    look_again_s: float = None  # the wait ends by itself after this many seconds: look again then


# ---------------------------------------------------------------------------
# Pure core: the app definition
# ---------------------------------------------------------------------------

_FIELD = re.compile(r"\{([^{}\s\"':,]+)\}")


def format_app_text(text, variables):
    """Substitute plain ``{name}`` fields of ``variables`` into the app JSON text.

    JSON objects keep their braces: only a brace pair holding a bare token is
    a field. Attribute and index lookups are refused, as are unknown names.
    """

    def substitute(match):
        name = match.group(1)
        if not name.isidentifier():
            raise InvalidArgs(f"--format-json: field {{{name}}} is not a plain variable name")
        if name not in variables:
            raise InvalidArgs(f"--format-json: variable '{name}' is not defined in the variables file")
        value = variables[name]
        return value if isinstance(value, str) else json.dumps(value)

    return _FIELD.sub(substitute, text)


def parse_app(text):
    """The app definition as a dict, with null fields dropped."""
    try:
        app = json.loads(text)
    except ValueError as exc:
        raise BadApp(f"the app JSON is not valid JSON: {exc}") from None
    if not isinstance(app, dict):
        kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null", int: "a number",
                 float: "a number"}
        raise BadApp(f"the app JSON must be an object, not {kinds[type(app)]}")
    return _drop_nulls(app)


def _drop_nulls(value):
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _port_lists(app):
    """The lists that hold an app's service ports, by shape, as (list, key) pairs.

    ``key`` is the field holding the port in each entry, or None for the
    legacy ``ports`` list of plain numbers.
    """
    container = app.get("container") or {}
    docker = container.get("docker") or {}
    shapes = (
        (docker.get("portMappings"), "servicePort"),
        (container.get("portMappings"), "servicePort"),
        (app.get("portDefinitions"), "port"),
        (app.get("ports"), None),
    )
    return [(entries, key) for entries, key in shapes if isinstance(entries, list) and entries]


def _port_of(entry, key):
    value = entry if key is None else (entry.get(key) if isinstance(entry, dict) else None)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def service_port(app):
    """The app's first service port, read from whichever shape it has, or None."""
    for entries, key in _port_lists(app):
        return _port_of(entries[0], key)
    return None


def set_service_port(app, port):
    """Write ``port`` as the service port into every shape the app carries."""
    for entries, key in _port_lists(app):
        if key is None:
            entries[0] = port
        else:
            entries[0][key] = port


def deployment_group(app):
    """The app's group label; None for anything else, e.g. another team's app whose labels are not an object."""
    labels = app.get("labels") if isinstance(app, dict) else None
    return labels.get(LABEL_GROUP) if isinstance(labels, dict) else None


OBJECTS = "a list of objects"
# The fields of Marathon's apps and tasks that zdd reads, each with what it must be when present and not null
APP_SHAPES = (
    (("labels",), dict), (("tasks",), OBJECTS), (("deployments",), list), (("healthChecks",), list),
    (("versionInfo",), dict), (("container",), dict), (("container", "docker"), dict),
    (("container", "portMappings"), OBJECTS), (("container", "docker", "portMappings"), OBJECTS),
    (("portDefinitions",), OBJECTS), (("ports",), list), (("ipAddress",), dict), (("ipAddress", "discovery"), dict),
    (("ipAddress", "discovery", "ports"), OBJECTS), (("networks",), OBJECTS),
)
TASK_SHAPES = ((("state",), str), (("host",), str), (("ports",), list), (("ipAddresses",), OBJECTS),
               (("healthCheckResults",), OBJECTS))
COUNT_LABELS = (LABEL_TARGET, LABEL_NEW_INSTANCES)  # whole numbers, 0 or more, when an app carries them


def _shape_problem(value, shapes):
    """The first field of ``value`` that is not what ``shapes`` says, as a phrase, or None."""
    for path, kind in shapes:
        field = value
        for key in path:
            field = field.get(key) if isinstance(field, dict) else None
        if field is None:
            continue
        objects = kind == OBJECTS and isinstance(field, list) and all(isinstance(item, dict) for item in field)
        if not (objects or kind != OBJECTS and isinstance(field, kind)):
            what = kind if kind == OBJECTS else {dict: "an object", list: "a list", str: "a string"}[kind]
            return f"{'.'.join(path)} is not {what}"
    return None


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def app_problem(app, app_id=None, embedded=False):
    """What makes Marathon's answer for an app doubtful, as a phrase, or None (docs/behaviour.rst, 'Doubtful answers').

    ``app_id``: the app asked for, which the answer must be; ``embedded``: a
    GET of one app, which always carries its tasks, labels and deployments.
    Unknown is never read as 0 or empty: a missing ``tasks`` is not "no tasks".
    """
    if not isinstance(app, dict):
        return "not an object"
    if not isinstance(app.get("id"), str):
        return "its id is not a string"
    if app_id is not None and app["id"].strip("/") != app_id.strip("/"):
        return f"it is the app {app['id']}, not {app_id}"
    if not _is_count(app.get("instances")):
        return f"instances is {app.get('instances')!r}, not a whole number"
    for key in ("tasks", "labels", "deployments") if embedded else ():
        if app.get(key) is None:
            return f"it has no {key}"
    problem = _shape_problem(app, APP_SHAPES)
    if problem is not None:
        return problem
    labels = app.get("labels") or {}
    for key in COUNT_LABELS:
        if key in labels and (_int_or_none(labels[key]) is None or _int_or_none(labels[key]) < 0):
            return f"label {key} is {labels[key]!r}, not a whole number"
    for task in app.get("tasks") or []:
        problem = "a task has no id" if not isinstance(task.get("id"), str) else _shape_problem(task, TASK_SHAPES)
        if problem is not None:
            return problem if problem.startswith("a task") else f"task {task['id']}: {problem}"
    return None


def group_apps(apps, group):
    """The apps of ``group`` in Marathon's list of apps; the others are someone else's and never stop zdd.

    One of the group that zdd cannot read stops it (MarathonFailed, exit 6): it would plan from it.
    """
    found = [app for app in apps if deployment_group(app) == group]
    for app in found:
        problem = app_problem(app)
        if problem is not None:
            raise MarathonFailed(f"Marathon's answer for {app.get('id')!r} of group {group} is doubtful: {problem}")
    return found


def validate_app(app):
    """Refuse an app JSON zdd cannot deploy, with the reason."""
    app_id = app.get("id")
    if not isinstance(app_id, str) or not app_id.strip("/"):
        raise BadApp("the app JSON has no valid \"id\"")
    labels = app.get("labels")
    if not isinstance(labels, dict):
        raise BadApp(f"the app JSON has no labels: define {LABEL_GROUP} and {LABEL_ALT_PORT}")
    for key, value in labels.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            kind = "true or false" if isinstance(value, bool) else "an object" if isinstance(value, dict) else "a list"
            raise BadApp(f"label {key} must be a string (or a number, written as its string), not {kind}")
    group = labels.get(LABEL_GROUP)
    if not isinstance(group, str) or not group.strip("/"):
        raise BadApp(f"the app JSON has no {LABEL_GROUP} label")
    if LABEL_ALT_PORT not in labels:
        raise BadApp(f"the app JSON has no {LABEL_ALT_PORT} label")
    alt_port = _int_or_none(labels[LABEL_ALT_PORT])
    if alt_port is None or not 1 <= alt_port <= 65535:
        raise BadApp(f"{LABEL_ALT_PORT} must be a port number from 1 to 65535, not {labels[LABEL_ALT_PORT]!r}")
    port_lists = _port_lists(app)
    if not port_lists:
        raise BadApp("the app JSON has no service port (container.portMappings, portDefinitions or ports)")
    entries, key = port_lists[0]
    if len(entries) > 1:
        raise BadApp(f"the app has {len(entries)} service ports; zdd supports exactly one")
    port = _port_of(entries[0], key)
    if port is None or not 1 <= port <= 65535:
        raise BadApp("the app's service port must be a fixed port from 1 to 65535 (0 lets Marathon choose one)")
    if port == alt_port:
        raise BadApp(f"{LABEL_ALT_PORT} must differ from the service port {port}")
    instances = app.get("instances", 1)
    if not isinstance(instances, int) or isinstance(instances, bool) or instances < 0:
        raise BadApp("\"instances\" must be a whole number, 0 or more")


def _int_or_none(value):
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def read_only_fields(app):
    """The READ_ONLY_FIELDS ``app`` carries, in that order."""
    return [field for field in READ_ONLY_FIELDS if field in app]


def _label_text(value):
    """A label's value as Marathon takes it: a string; a number as its JSON text (10001 -> "10001")."""
    return value if isinstance(value, str) else json.dumps(value)


def colour_of(app):
    return (app.get("labels") or {}).get(LABEL_COLOUR)


def started_at(app):
    """When the app's colour was deployed; apps without the label sort oldest."""
    value = (app.get("labels") or {}).get(LABEL_STARTED_AT)
    try:
        moment = dateutil.parser.parse(value)
    except (TypeError, ValueError, OverflowError):
        return datetime.datetime.min
    return moment.replace(tzinfo=None) if moment.tzinfo is None else _naive_utc(moment)


def _naive_utc(moment):
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def sort_deploys(apps):
    """Apps of one group, oldest deployment first."""
    return sorted(apps, key=started_at)


def deployment_target(app):
    return _int_or_none((app.get("labels") or {}).get(LABEL_TARGET, app.get("instances", 0))) or 0


def hybrid_goal_of(app):
    return _int_or_none((app.get("labels") or {}).get(LABEL_NEW_INSTANCES, 0)) or 0


def prepare_app(app, previous, options, now):
    """The definition of the new colour, given the one app of the group running now (or None).

    A valid Marathon app: without READ_ONLY_FIELDS, every label value a string.
    """
    app = {key: value for key, value in json.loads(json.dumps(app)).items() if key not in READ_ONLY_FIELDS}
    labels = app["labels"] = {key: _label_text(value) for key, value in app["labels"].items()}
    if previous is None:
        colour = BLUE
        port = service_port(app)
        target = app.get("instances", 1)
        new_instances = 0
    else:
        colour = GREEN if colour_of(previous) == BLUE else BLUE
        alt_port = int(labels[LABEL_ALT_PORT])
        port = service_port(app) if service_port(previous) == alt_port else alt_port
        target = previous.get("instances", 0)
        new_instances = min(options.new_instances, target)
        cap = new_instances if new_instances > 0 else target
        app["instances"] = min(options.initial_instances, cap)
    labels[LABEL_APP_ID] = app["id"]
    labels[LABEL_PORT] = str(service_port(app))
    labels[LABEL_COLOUR] = colour
    labels[LABEL_STARTED_AT] = now.isoformat()
    labels[LABEL_TARGET] = str(target)
    labels[LABEL_NEW_INSTANCES] = str(new_instances)
    app["id"] = "/" + app["id"].strip("/") + "-" + colour
    set_service_port(app, port)
    return app


def previous_definition(app, instances):
    """The app JSON that deploys ``app``, one colour as Marathon answers it, again with zdd (the undo).

    What the user gave for that release: the base id and service port zdd
    kept in its labels, the labels without zdd's own, ``instances``; no
    read-only field of the answer, no null, and no port list Marathon 1.4
    derives from another (``ports`` next to ``portDefinitions``, both next
    to port mappings), which a POST must not repeat.
    """
    saved = _drop_nulls(json.loads(json.dumps(app)))
    for field in READ_ONLY_FIELDS:
        saved.pop(field, None)
    labels = saved.get("labels") or {}
    saved["id"] = labels.get(LABEL_APP_ID) or saved["id"]
    port = _int_or_none(labels.get(LABEL_PORT))
    saved["labels"] = {key: value for key, value in labels.items() if key not in ZDD_LABELS}
    container = saved.get("container") or {}
    if container.get("portMappings") or (container.get("docker") or {}).get("portMappings"):
        saved.pop("portDefinitions", None)
        saved.pop("ports", None)
    elif saved.get("portDefinitions"):
        saved.pop("ports", None)
    if port is not None:
        set_service_port(saved, port)
    saved["instances"] = instances
    return saved


def plan_swap(new_app, old_app, options, hybrid):
    return Plan(
        new_id=new_app["id"],
        old_id=old_app["id"],
        target=deployment_target(new_app),
        hybrid_goal=hybrid_goal_of(new_app) if hybrid else 0,
        linear_increase=options.linear_increase,
    )


def next_instances(current, old_instances, plan):
    """The new app's next instance count: half again (or +k), capped at the goal."""
    if plan.linear_increase > 0:
        return min(current + plan.linear_increase, plan.goal)
    grown = max(current + 1, math.floor(current + (current + 1) / 2))
    if plan.hybrid_goal:
        return min(grown, plan.hybrid_goal)
    return plan.target if grown >= old_instances else grown


def scale_schedule(plan, new_instances, old_instances):
    """The instance counts each colour passes through if every step converges.

    Each step kills the old tasks marathon-lb drains and grows the new app as
    ``decide_swap`` would: ``([1, 2, 3, 5, 10], [10, 9, 8, 7, 5, 0])``.
    """
    new, old = new_instances, old_instances
    news, olds = [new], [old]
    for _ in range(plan.goal + old_instances + 2):
        if plan.hybrid_goal and new == plan.hybrid_goal and old == plan.target - plan.hybrid_goal:
            break
        kill = expected_draining(new, old, old, plan.target)
        if not plan.hybrid_goal and new == plan.target and kill == old:
            olds.append(0)
            break
        grow = next_instances(new, old, plan) if new < plan.goal else None
        if not kill and grow is None:
            break
        if kill:
            old -= kill
            olds.append(old)
        if grow is not None:
            new = grow
            news.append(new)
    return news, olds


def expected_draining(healthy_new, old_tasks, old_instances, target):
    """How many old tasks marathon-lb marks as draining (its group-merge rule)."""
    return min(old_tasks, healthy_new, max(0, healthy_new + old_instances - target))


def look_again_s(looks, step_delay_s):
    """Seconds to wait before the next look, after ``looks`` waits for the same thing; at most step_delay_s."""
    return min(step_delay_s, FIRST_LOOK_AGAIN_S * LOOK_AGAIN_GROWTH ** min(looks, 64))


@dataclasses.dataclass(frozen=True)
class Looks:
    """The loop's looks at one wait: how many so far, and the wait they were for (None: after a write)."""

    count: int = 0
    wait: str = None


def look_again(looks, step, step_delay_s):
    """(seconds until the next poll, the Looks after it) for a poll whose ``step`` waits.

    A new wait is a consequence of zdd's write arriving (a deployment ending,
    a reload): look again soon. A marathon-lb that does not answer is not
    one. A wait that ends by itself (``step.look_again_s``): look again right
    then, within ``step_delay_s``.
    """
    count = 0 if looks.wait not in (None, step.wait) and not step.lb_failed else looks.count
    pause_s = look_again_s(count, step_delay_s)
    if step.look_again_s is not None:
        pause_s = min(step.look_again_s, step_delay_s)
    return pause_s, Looks(count + 1, step.wait)


class AfterFailedWrite(enum.Enum):
    """What follows a write without a clear outcome (docs/behaviour.rst, 'Writes that fail')."""

    AT_ONCE = "at once"  # read Marathon again and decide again now
    LATER = "later"  # the same, after --step-delay
    GIVE_UP = "give up"  # the write's failure stops zdd


def after_failed_write(in_a_row, failing_s, swapping, stall_timeout_s):
    """After ``in_a_row`` writes in a row without a clear outcome, failing for ``failing_s`` seconds.

    At once up to AMBIGUOUS_WRITES_TOLERATED times in a row, then every
    --step-delay, until such failures have lasted --stall-timeout (0: no
    bound). Before anything is half done (not ``swapping``: the create),
    zdd gives up after those at once.
    """
    if in_a_row <= AMBIGUOUS_WRITES_TOLERATED:
        return AfterFailedWrite.AT_ONCE
    if not swapping or stall_timeout_s and failing_s >= stall_timeout_s:
        return AfterFailedWrite.GIVE_UP
    return AfterFailedWrite.LATER


# ---------------------------------------------------------------------------
# Pure core: what differs from the running colour's definition
# ---------------------------------------------------------------------------

# Fields of a GET answer that are Marathon's record of the app (its state, versions, counts), not its definition.
# Broader than the fields a POST must not carry: the comparison also leaves out what zdd and Marathon's defaults set.
NOT_COMPARED_FIELDS = ("id", "instances", "version", "versionInfo", "tasks", "deployments", "tasksStaged",
                       "tasksRunning", "tasksHealthy", "tasksUnhealthy", "lastTaskFailure", "taskStats",
                       "readinessCheckResults")
# zdd's labels that change with every deployment (its colour, time and counts); HAPROXY_APP_ID and HAPROXY_0_PORT
# are compared: they hold the JSON's own id and service port.
PER_DEPLOYMENT_LABELS = (LABEL_COLOUR, LABEL_STARTED_AT, LABEL_TARGET, LABEL_NEW_INSTANCES)
# Marathon's defaults, by path ("[]": every entry of a list) -> the values Marathon 1.4 and 1.5 fill in for a field
# the definition leaves out (docs/marathon-api.rst, 'Defaults'). A field holding one of them counts as left out.
MARATHON_DEFAULTS = {
    "cpus": (1,), "mem": (128,), "disk": (0,), "gpus": (0,), "executor": ("",),
    "backoffSeconds": (1,), "backoffFactor": (1.15,), "maxLaunchDelaySeconds": (3600,),
    "requirePorts": (False,), "killSelection": ("YOUNGEST_FIRST",), "tty": (False,),
    "upgradeStrategy.minimumHealthCapacity": (1,), "upgradeStrategy.maximumOverCapacity": (1,),
    # 300 and 600 s in the captured 1.5 answers; 0 and 0 in later 1.4 and 1.5 releases
    "unreachableStrategy.inactiveAfterSeconds": (300, 0), "unreachableStrategy.expungeAfterSeconds": (600, 0),
    "residency.relaunchEscalationTimeoutSeconds": (3600,), "residency.taskLostBehavior": ("WAIT_FOREVER",),
    "networks": ([{"mode": "host"}],),
    "container.type": ("DOCKER",),
    "container.docker.forcePullImage": (False,), "container.docker.privileged": (False,),
    "container.portMappings[].containerPort": (0,), "container.portMappings[].protocol": ("tcp",),
    "container.portMappings[].servicePort": (0,),
    "portDefinitions[].port": (0,), "portDefinitions[].protocol": ("tcp",),
    "healthChecks[].protocol": ("HTTP",), "healthChecks[].portIndex": (0,),
    "healthChecks[].gracePeriodSeconds": (300,), "healthChecks[].intervalSeconds": (60,),
    "healthChecks[].timeoutSeconds": (20,), "healthChecks[].maxConsecutiveFailures": (3,),
    "healthChecks[].delaySeconds": (15,), "healthChecks[].ignoreHttp1xx": (False,),
    "fetch[].extract": (True,), "fetch[].executable": (False,), "fetch[].cache": (False,),
}
DOCKER_NETWORKS = {"BRIDGE": "container/bridge", "HOST": "host", "USER": "container"}

ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip")  # uris Marathon extracts
_ABSENT = object()


@dataclasses.dataclass(frozen=True)
class Change:
    """One field that differs: its dotted path, the running colour's value and the new one (None: left out)."""

    path: str
    old: object
    new: object


def _comparable(app):
    """The parts of a definition a deployment changes, in one shape whichever Marathon version wrote it.

    1.4's Docker networking and port mappings become 1.5's ``networks`` and
    ``container.portMappings``; ``ports`` and ``uris`` become
    ``portDefinitions`` and ``fetch``; port lists Marathon ignores for the
    network mode are dropped, and so is the first service port (zdd
    alternates it); then Marathon's defaults and empty values are left out.
    """
    app = {key: value for key, value in _drop_nulls(app).items() if key not in NOT_COMPARED_FIELDS}  # a copy
    app["labels"] = {key: value for key, value in (app.get("labels") or {}).items()
                     if key not in PER_DEPLOYMENT_LABELS}
    if app.get("uris") and not app.get("fetch"):
        app["fetch"] = [{"uri": uri, "extract": str(uri).endswith(ARCHIVE_SUFFIXES)} for uri in app["uris"]]
    app.pop("uris", None)
    container = app.get("container") if isinstance(app.get("container"), dict) else {}
    docker = container.get("docker") if isinstance(container.get("docker"), dict) else {}
    mode = _network_mode(app, container, docker)
    ports = app.pop("ports", None)
    if mode == "host":
        container.pop("portMappings", None)
        if isinstance(ports, list) and ports and not app.get("portDefinitions"):
            app["portDefinitions"] = [{"port": port} for port in ports]
        entries, key = app.get("portDefinitions"), "port"
    else:
        app.pop("portDefinitions", None)
        app.pop("requirePorts", None)  # host networking only
        entries, key = container.get("portMappings"), "servicePort"
        for mapping in entries if isinstance(entries, list) else []:
            if mode == "container/bridge" and isinstance(mapping, dict) and mapping.get("hostPort") == 0:
                del mapping["hostPort"]  # Marathon's default in bridge mode
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        entries[0].pop(key, None)  # the service port zdd alternates; HAPROXY_0_PORT holds the JSON's own
    return _without_defaults(app, "")


def _network_mode(app, container, docker):
    """The network mode of a definition, once its 1.4 networking is rewritten as 1.5's (for ``_comparable``).

    In place: Docker's ``network`` and ``ipAddress`` become ``networks``, Docker's port mappings the container's.
    """
    ip_address = app.pop("ipAddress", None)
    network = docker.pop("network", None)
    if not app.get("networks"):
        if network in DOCKER_NETWORKS:
            app["networks"] = [{"mode": DOCKER_NETWORKS[network]}]
        elif isinstance(ip_address, dict) or network == "USER":
            app["networks"] = [{"mode": "container"}]
        if isinstance(ip_address, dict) and ip_address.get("networkName"):
            app["networks"][0]["name"] = ip_address["networkName"]
    mappings = docker.pop("portMappings", None)
    if mappings and not container.get("portMappings"):
        container["portMappings"] = mappings
    networks = app.get("networks") if isinstance(app.get("networks"), list) else []
    for entry in networks:
        if isinstance(entry, dict):
            entry.setdefault("mode", "container")  # Marathon's default network mode
    return networks[0].get("mode") if networks and isinstance(networks[0], dict) else "host"


def _without_defaults(value, pattern):
    """``value`` without Marathon's defaults and empty fields, at every depth; ``pattern``: its path."""
    if isinstance(value, list):
        return [_without_defaults(entry, pattern + "[]") for entry in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, entry in value.items():
        path = f"{pattern}.{key}" if pattern else key
        entry = _without_defaults(entry, path)
        if entry in ([], {}) or entry in MARATHON_DEFAULTS.get(path, ()):
            continue
        kept[key] = entry
    return kept


def definition_changes(running, new):
    """The fields whose values differ between the running colour's definition and the new one, by path.

    Both may be what Marathon answers for an app or what zdd prepares: the
    comparison leaves out what zdd sets, what Marathon adds to a GET answer
    and its defaults (``_comparable``). Objects are compared key by key and
    lists of the same length entry by entry; a list whose length changed is
    one change. A field left out shows as Marathon's default, or None
    (docs/behaviour.rst, 'What differs, and --skip-unchanged').
    """
    changes = []
    _collect_changes(_comparable(running), _comparable(new), "", changes)
    return tuple(changes)


def _collect_changes(old, new, path, changes):
    if old is _ABSENT and isinstance(new, dict) or new is _ABSENT and isinstance(old, dict):
        old, new = ({} if old is _ABSENT else old), ({} if new is _ABSENT else new)  # each field on its own line
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _collect_changes(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}.{key}" if path else key, changes)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (old_entry, new_entry) in enumerate(zip(old, new)):
            _collect_changes(old_entry, new_entry, f"{path}[{index}]", changes)
    elif old != new:
        default = MARATHON_DEFAULTS.get(re.sub(r"\[\d+\]", "[]", path), (None,))[0]
        changes.append(Change(path, default if old is _ABSENT else old, default if new is _ABSENT else new))


# ---------------------------------------------------------------------------
# Pure core: tasks, listeners and the next step
# ---------------------------------------------------------------------------

def is_ip_per_task(app):
    if app.get("ipAddress"):
        return True
    return any((network or {}).get("mode") == "container" for network in app.get("networks") or [])


def _container_port(app):
    container = app.get("container") or {}
    for mappings in ((container.get("docker") or {}).get("portMappings"), container.get("portMappings")):
        if mappings:
            return _port_of(mappings[0], "containerPort")
    discovery = ((app.get("ipAddress") or {}).get("discovery") or {}).get("ports") or []
    if discovery:
        return _port_of(discovery[0], "number")
    return None


def server_name(host, ip, port):
    """The HAProxy server name marathon-lb gives a task."""
    raw = f"{ip}_{port}" if host == ip else f"{host}_{ip}_{port}"
    return re.sub(r"[^a-zA-Z0-9-]", "_", raw)


def task_server_name(app, task, resolve):
    """The name a task's listener has in HAProxy, or None when it cannot have one."""
    host = task.get("host") or ""
    if is_ip_per_task(app):
        addresses = task.get("ipAddresses") or []
        ip = addresses[0].get("ipAddress") if addresses else None
        port = _container_port(app)
    else:
        ports = task.get("ports") or []
        port = ports[0] if ports else None
        ip = resolve(host)
    if not ip or port is None:
        return None
    return server_name(host, ip, port)


def name_tasks(apps, resolve):
    """{task id: server name or None} for every task of ``apps``; each host name is resolved once."""
    addresses = {}

    def once(host):
        if host not in addresses:
            addresses[host] = resolve(host)
        return addresses[host]

    return {task["id"]: task_server_name(app, task, once) for app in apps if app for task in app.get("tasks") or []}


def named(observation, resolve):
    """``observation`` with its tasks' server names (docs/marathon-lb.rst, 'Names')."""
    names = name_tasks((observation.new_app, observation.old_app), resolve)
    return dataclasses.replace(observation, names=names)


def is_routable(app, task):
    """Whether marathon-lb puts this task in HAProxy: running and, with health checks, alive."""
    if task.get("state", "TASK_RUNNING") != "TASK_RUNNING":
        return False
    if app.get("healthChecks"):
        return any(result.get("alive") for result in task.get("healthCheckResults") or [])
    return True


def backend_name(group, port):
    return group.strip("/").replace("/", "_") + f"_{port}"


def stats_path(backend):
    """The stats CSV path of ``backend``: the page scoped to it (docs/marathon-lb.rst, 'The stats scope').

    HAProxy keeps the proxies whose name contains the scope, ignoring case,
    reads at most its first 20 characters, does not decode it, and drops a
    scope with a character that cannot be in a proxy name. So the scope is the
    longest tail of the name, up to 20 characters, that needs no encoding: it
    ends in the service port, which marathon-lb gives one app only. Other
    proxies may still match (``nginx_10000`` is in ``nginx_100000``) and an
    old HAProxy may ignore the scope: ``parse_stats`` keeps filtering exactly.
    """
    scope = re.search(r"[A-Za-z0-9._-]{1,%d}$" % STATS_SCOPE_MAX, backend)
    return STATS_PATH + (";scope=" + urllib.parse.quote(scope.group(), safe="") if scope else "")


def parse_stats(text, backend):
    """The server rows of ``backend`` in HAProxy stats CSV, columns found by name.

    Each ``#`` header line sets the columns for the rows after it, so the
    pages of several HAProxy versions may be concatenated; blank lines and
    short rows are skipped. A ``status``, ``scur`` or ``qcur`` that is
    missing, empty or not a whole number is unknown (docs/behaviour.rst,
    'Doubtful answers'); so is a counter that is missing or not a whole
    number, but an empty counter is 0 (HAProxy leaves the ones that do not
    apply empty: ``hrsp_5xx`` in TCP mode). A server listed more than once
    is one row, the most cautious (``merge_rows``).
    """
    wanted = STATS_COLUMNS + COUNTER_COLUMNS + ("check_status", "mode")
    columns = None
    listeners = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            names = [name.strip() for name in line.lstrip("#").strip().split(",")]
            if "pxname" not in names or "svname" not in names:
                raise ValueError("stats CSV header without pxname/svname columns")
            columns = [names.index(name) if name in names else None for name in wanted]
            continue
        if columns is None:
            raise ValueError("stats rows before the CSV header")
        fields = line.split(",")
        row = dict(zip(wanted, (fields[i] if i is not None and i < len(fields) else None for i in columns)))
        if row["pxname"] != backend or row["svname"] in ("FRONTEND", "BACKEND", None, ""):
            continue
        counters = {name: _counter_or_none(row[name]) for name in COUNTER_COLUMNS}
        row = {name: "" if value is None else value for name, value in row.items()}
        listeners.append(Listener(svname=row["svname"], status=row["status"].strip(), check_status=row["check_status"],
                                  scur=_count_or_none(row["scur"]), qcur=_count_or_none(row["qcur"]), mode=row["mode"],
                                  **counters))
    if columns is None:
        raise ValueError("no CSV header in the stats")
    return merge_rows(listeners)


def _count_or_none(text):
    """A whole number of 0 or more written in digits, or None (unknown): never 0 for "", "-" or garbage."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _counter_or_none(text):
    """A stats counter: 0 when HAProxy left it empty, None (unknown) when missing (``None``), "-" or garbage."""
    if text is None:
        return None
    return 0 if not text.strip() else _count_or_none(text)


def merge_rows(listeners):
    """One row per server, in the order first seen: a server listed twice counts as its most cautious row.

    Its status is kept only when every row shows the same one (otherwise it is
    neither UP nor MAINT: not counted UP, never killed); its sessions and
    queue are the highest (unknown if any row's is); its counters the highest.
    """
    rows = {}
    for listener in listeners:
        rows.setdefault(listener.svname, []).append(listener)
    return tuple(same[0] if len(same) == 1 else _most_cautious(same) for same in rows.values())


def _most_cautious(rows):
    statuses = list(dict.fromkeys(row.status for row in rows))
    status = statuses[0] if len(statuses) == 1 else "listed twice: " + ", ".join(statuses)

    def highest(field):
        values = [getattr(row, field) for row in rows]
        return None if None in values else max(values)

    modes = {row.mode for row in rows}
    mode = modes.pop() if len(modes) == 1 else ""  # rows that disagree: no mode, so no grace rule (getpids)
    return dataclasses.replace(rows[0], status=status, scur=highest("scur"), qcur=highest("qcur"), mode=mode,
                               **{field: highest(field) for field in COUNTER_COLUMNS})


def parse_pids(text):
    """The PIDs in a ``/_haproxy_getpids`` answer: a whitespace-separated list of at least one number.

    Anything else (an HTML page, an empty body) raises ValueError: it is not
    counted as any number of PIDs (docs/behaviour.rst, 'Doubtful answers').
    """
    words = text.split()
    if not words or not all(word.isascii() and word.isdigit() and int(word) > 0 for word in words):
        raise ValueError(f"not a list of PIDs: {text.strip()[:40]!r}")
    return tuple(int(word) for word in words)


def _routable_names(app, server_names):
    """{server name: task id} of the tasks marathon-lb routes to, and the count of unnamed ones."""
    names, unnamed = {}, 0
    for task in app.get("tasks") or []:
        if not is_routable(app, task):
            continue
        name = server_names.get(task["id"])
        if name is None:
            unnamed += 1
        else:
            names[name] = task["id"]
    return names, unnamed


@dataclasses.dataclass(frozen=True)
class Drain:
    """Whether old tasks can be killed now, and which."""

    reason: str = None  # why not yet; None: the drained ones can go
    draining: bool = False  # the reason is only HAProxy still draining sessions
    lb_failed: bool = False  # the reason is a marathon-lb that did not answer
    drained_ids: tuple = ()  # old tasks drained on every marathon-lb
    maint_ids: tuple = ()  # old tasks in MAINT on every marathon-lb, drained or not


def assess_drain(observation, plan):
    """Check the marathon-lb instances against Marathon (docs/behaviour.rst, 'The swap loop', step 2)."""
    new_app, old_app = observation.new_app, observation.old_app
    new_names, new_unnamed = _routable_names(new_app, observation.names)
    old_names, old_unnamed = _routable_names(old_app, observation.names)
    expected = set(new_names) | set(old_names)
    lbs = observation.lbs
    answered = all(lb.listeners is not None and not any(listener.doubt for listener in lb.listeners) for lb in lbs)
    maint = _on_every_lb(lbs, lambda listener: listener.maint) if answered else set()
    maint_ids = tuple(sorted(old_names[name] for name in maint if name in old_names))

    def blocked(reason, **flags):
        return Drain(reason=reason, maint_ids=maint_ids, **flags)

    problem = _lb_problem(lbs)
    if problem is not None:
        return blocked(problem[0], lb_failed=problem[1])
    if new_unnamed or old_unnamed:
        return blocked(f"{new_unnamed + old_unnamed} task(s) have no address to match in HAProxy")
    wanted = new_app.get("instances", 0) + old_app.get("instances", 0)
    if len(expected) != wanted:
        return blocked(f"{len(expected)} of {wanted} instances running and healthy")
    for lb in lbs:
        seen = {listener.svname for listener in lb.listeners}
        if seen != expected:
            missing, stale = len(expected - seen), len(seen - expected)
            return blocked(f"marathon-lb {lb.url} has not caught up ({missing} missing, {stale} stale)")
    up = min(sum(1 for listener in lb.listeners if listener.up) for lb in lbs) if lbs else 0
    if up < plan.target:
        return blocked(f"{up} listener(s) UP, waiting for {plan.target}")
    drained = _on_every_lb(lbs, lambda listener: listener.drained)
    drained_ids = tuple(sorted(old_names[name] for name in drained if name in old_names))
    healthy_new = len(new_names) if new_app.get("healthChecks") else new_app.get("instances", 0)
    if not drained_ids and expected_draining(healthy_new, len(old_names), old_app.get("instances", 0), plan.target):
        in_maint = len(set(old_names) & maint)
        return blocked(f"waiting for HAProxy to drain ({in_maint} old listener(s) in MAINT)", draining=True)
    return Drain(drained_ids=drained_ids, maint_ids=maint_ids)


def old_app_unrouted(observation, plan):
    """Whether the old app can be deleted at once: no marathon-lb routes any of its tasks.

    That is when none of them ever became healthy (e.g. --complete-prev after
    a new app that never did), once the new app runs its target and every
    marathon-lb has it UP.
    """
    new_app, old_app, lbs = observation.new_app, observation.old_app, observation.lbs
    if plan.hybrid_goal or new_app.get("instances", 0) != plan.target or not lbs or _lb_problem(lbs) is not None:
        return False
    new_names, new_unnamed = _routable_names(new_app, observation.names)
    old_routable, old_unnamed = _routable_names(old_app, observation.names)
    if new_unnamed or old_unnamed or old_routable or len(new_names) < plan.target:
        return False
    old_names = {observation.names.get(task["id"]) for task in old_app.get("tasks") or []}
    for lb in lbs:
        listed = {listener.svname for listener in lb.listeners}
        up = {listener.svname for listener in lb.listeners if listener.up}
        if not set(new_names) <= up or listed & old_names:
            return False
    return True


def _lb_problem(lbs):
    """Why the marathon-lb views cannot be trusted now, as (reason, {"lb_failed": ...}), or None.

    A row of the group's backend with something unknown is waited on as a
    marathon-lb that does not answer (docs/behaviour.rst, 'Doubtful answers').
    """
    for lb in lbs:
        if lb.listeners is None:
            return f"marathon-lb {lb.url} did not answer ({lb.error})", True
        if lb.reloading:
            return f"marathon-lb {lb.url} is reloading ({len(lb.pids)} HAProxy PIDs)", False
        doubt = next((listener.doubt for listener in lb.listeners if listener.doubt), None)
        if doubt is not None:
            return f"marathon-lb {lb.url} gave a doubtful stats row ({doubt})", True
    return None


def parse_worker_age(text):
    """How long the HAProxy worker that served a stats CSV page has been running, in whole seconds; None: not shown.

    A backend's ``lastchg`` counts from the worker's start (HAProxy 2.0 and
    2.6 set it when the configuration is loaded, and the server-state file
    does not carry it over a reload) until all its servers go down at once:
    the largest of them is the worker's age, or less. Only what tells one
    worker from the next (``track_reads``) rests on it, not the grace itself.
    """
    columns, ages = None, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            names = [name.strip() for name in line.lstrip("#").strip().split(",")]
            columns = (names.index("svname"), names.index("lastchg")) if {"svname", "lastchg"} <= set(names) else None
        elif line and columns:
            fields = line.split(",")
            if len(fields) > max(columns) and fields[columns[0]] == "BACKEND":
                ages.append(_int_or_none(fields[columns[1]]))
    ages = [age for age in ages if age is not None and age >= 0]
    return max(ages, default=None)


def _same_worker(previous, view):
    """Whether two reads of one marathon-lb came from the same HAProxy worker: its age grew as zdd's clock did."""
    if previous is None or previous.listeners is None or previous.worker_age_s is None or view.worker_age_s is None:
        return False
    grew = view.worker_age_s - previous.worker_age_s
    return abs(grew - (view.read_at - previous.read_at)) <= SAME_WORKER_SLACK_S


def track_reads(previous, views, names):
    """``views`` with ``serving_since`` and ``quiet_since`` carried on from ``previous`` ({url: LbView}).

    ``serving_since``: the first read of a run of reads served by the same
    worker (a new worker, or no previous read: this read). ``quiet_since``:
    for each server name of ``names``, the first read of the run of reads
    that showed it drained or not listed at all, restarting with the worker
    (docs/behaviour.rst, 'Old HAProxy workers').
    """
    tracked = []
    for view in views:
        if view.listeners is None or view.read_at is None:
            tracked.append(view)
            continue
        before = previous.get(view.url)
        same = _same_worker(before, view)
        routed = {listener.svname for listener in view.listeners if not listener.drained}
        quiet = {}
        for name in names:
            if name is not None and name not in routed:
                quiet[name] = before.quiet_since.get(name, view.read_at) if same else view.read_at
        tracked.append(dataclasses.replace(view, serving_since=before.serving_since if same else view.read_at,
                                           quiet_since=quiet))
    return tuple(tracked)


def reload_check_of(lbs, choice):
    """"getpids" or "grace": how to make sure no old HAProxy worker still routes to a task before it goes.

    ``auto`` takes the grace only where it is safe: the backend is in HTTP
    mode on every marathon-lb, and each stats page shows its worker's age
    (docs/behaviour.rst, 'Old HAProxy workers').
    """
    if choice != "auto":
        return choice
    for lb in lbs:
        if lb.worker_age_s is None or not lb.listeners or any(listener.mode != "http" for listener in lb.listeners):
            return "getpids"
    return "grace"


def reload_wait(observation, step, grace_s):
    """Before ``step``'s kill or delete: (why wait, seconds left) while an old worker may still route to them; or None.

    Safe once every marathon-lb's stats come from a worker zdd has seen
    serving for ``grace_s``, which shows each task going away drained or not
    at all for as long: every older worker stopped taking requests when it
    began serving (docs/behaviour.rst, 'Old HAProxy workers').
    """
    going = step.kill if not step.delete_old else [task["id"] for task in observation.old_app.get("tasks") or []]
    going = [observation.names.get(task_id) for task_id in going]
    waits = []
    for lb in observation.lbs:
        if lb.serving_since is None or lb.worker_age_s is None:
            return f"marathon-lb {lb.url} shows no HAProxy worker age (BACKEND lastchg) to count the grace by", grace_s
        since = max([lb.serving_since] + [lb.quiet_since.get(name, lb.read_at) for name in going if name])
        if lb.read_at - since < grace_s:
            waits.append((grace_s - (lb.read_at - since), lb.url))
    if not waits:
        return None
    left_s, url = max(waits)
    return (f"marathon-lb {url} changed less than --reload-grace ({grace_s:g} s) ago: "
            "an old HAProxy worker may still send requests to the tasks going away"), left_s


def graced_step(observation, step, grace_s, waited_s, max_wait_s):
    """``step`` (a kill or the delete) once the grace is over, a wait until it is, or ``step`` forced past --max-wait.

    A step already forced (--max-wait passed on the drain) is not held again.
    """
    if step.forced:
        return step
    waiting = reload_wait(observation, step, grace_s)
    if waiting is None:
        return step
    if waited_s < max_wait_s:
        return Step(wait=waiting[0], look_again_s=waiting[1])
    return dataclasses.replace(step, forced=True)


def assess_restore(observation, target):
    """During a rollback: why the failed app cannot be deleted yet, as (reason, draining), or (None, False).

    ``observation.new_app`` is the app being restored, ``old_app`` the failed
    one. The restored app must run ``target`` healthy tasks that every
    marathon-lb lists, and every task of the failed app that a marathon-lb
    lists must be drained there first (MAINT, no sessions): deleting a task
    HAProxy still sends requests to loses the ones it has accepted. marathon-lb
    drains them once it sees the restored app as the new one (``lb_roles``).
    """
    restored_app, failed_app = observation.new_app, observation.old_app
    if restored_app.get("deployments"):
        return "the restored app's Marathon deployment is in progress", False
    problem = _lb_problem(observation.lbs)
    if problem is not None:
        return problem[0], False
    restored, _ = _routable_names(restored_app, observation.names)
    if len(restored) < target:
        return f"{len(restored)} of {target} restored instances running and healthy", False
    for lb in observation.lbs:
        if not set(restored) <= {listener.svname for listener in lb.listeners}:
            return f"marathon-lb {lb.url} does not list every restored task yet", False
    failed, _ = _routable_names(failed_app, observation.names)
    listed = {listener.svname for lb in observation.lbs for listener in lb.listeners}
    drained = _on_every_lb(observation.lbs, lambda listener: listener.drained)
    draining = (set(failed) & listed) - drained
    if draining:
        return f"waiting for HAProxy to drain {len(draining)} task(s) of the failed app", True
    return None, False


def _rollback_marathon_step(observation, target, handed_over):
    """The rollback's step that Marathon's answers alone decide, or None: marathon-lb's view decides it."""
    restored, failed = observation.new_app, observation.old_app
    doubt = _apps_doubt(observation)
    if doubt is not None:
        return Step(wait=doubt, bounded=False)
    if restored.get("instances", 0) < target:
        return Step(scale_to=target)
    if failed is None:
        return Step(done=True)
    if not handed_over and not restored.get("deployments") and needs_handover(observation):
        return Step(hand_over=True)
    return None


def rollback_reads_lbs(observation, target, handed_over):
    """Whether the rollback's decision on ``observation`` needs every marathon-lb read: the poll reads them first."""
    return _rollback_marathon_step(observation, target, handed_over) is None and not (
        observation.new_app.get("deployments"))


def decide_rollback(observation, target, waited_s, max_wait_s, handed_over):
    """The next step of a rollback (docs/behaviour.rst, 'Rolling back'), from one observation.

    ``observation.new_app`` is the app restored, ``old_app`` the failed one
    (None: gone, the rollback is done). ``waited_s``: how long the failed app
    has been draining; ``handed_over``: the hand-over scale was made.
    """
    step = _rollback_marathon_step(observation, target, handed_over)
    if step is not None:
        return step
    if observation.lbs is None and rollback_reads_lbs(observation, target, handed_over):
        return Step(read_lbs=True)
    reason, draining = assess_restore(observation, target)
    if reason is None:
        return Step(delete_old=True)
    if draining and waited_s >= max_wait_s:
        return Step(delete_old=True, forced=True)
    return Step(wait=reason, draining=draining, bounded=draining)


def lb_roles(first, second):
    """(old, new): which of two apps of one group marathon-lb treats as the old one, and which as the new.

    The later HAPROXY_DEPLOYMENT_STARTED_AT is new, unless the new one carries
    HAPROXY_DEPLOYMENT_NEW_INSTANCES and the other was scaled later
    (``versionInfo.lastScalingAt``): then they swap. marathon-lb drains only
    the old app's tasks.
    """
    old, new = sort_deploys([first, second])
    if LABEL_NEW_INSTANCES in (new.get("labels") or {}):
        if _last_scaling_at(old) > _last_scaling_at(new):
            old, new = new, old
    return old, new


def _last_scaling_at(app):
    value = (app.get("versionInfo") or {}).get("lastScalingAt")
    try:
        return _naive_utc(dateutil.parser.parse(value))
    except (TypeError, ValueError, OverflowError):
        return datetime.datetime.min


def needs_handover(observation):
    """During a rollback: whether marathon-lb routes the failed app's tasks as the new app's (never draining them).

    ``observation.new_app`` is the app being restored, ``old_app`` the failed one.
    """
    restored_app, failed_app = observation.new_app, observation.old_app
    failed, _ = _routable_names(failed_app, observation.names)
    return bool(failed) and lb_roles(restored_app, failed_app)[1] is failed_app


def _apps_doubt(observation):
    """Why the apps observed cannot be decided on (docs/behaviour.rst, 'Doubtful answers'), or None.

    The Marathon client refuses such answers already; a decision checks again
    what it reads, so that no kill or delete ever comes from an app whose
    count or tasks are unknown.
    """
    for app in (observation.new_app, observation.old_app):
        if app is None:
            continue
        problem = app_problem(app) or (None if isinstance(app.get("tasks"), list) else "it has no tasks")
        if problem is not None:
            name = app.get("id") if isinstance(app, dict) else None
            return f"Marathon's answer for {name or 'an app'} is doubtful: {problem}"
    return None


def _on_every_lb(lbs, predicate):
    sets = [{listener.svname for listener in lb.listeners if predicate(listener)} for lb in lbs]
    return set.intersection(*sets) if sets else set()


def _swap_marathon_wait(observation):
    """The swap's wait that Marathon's answers alone decide (in doubt, a deployment of the new app), or None."""
    doubt = _apps_doubt(observation)
    if doubt is not None:
        return Step(wait=doubt, bounded=False)
    if observation.new_app.get("deployments"):
        return Step(wait="the new app's Marathon deployment is in progress", bounded=False)
    return None


def swap_reads_lbs(observation):
    """Whether the swap's decision on ``observation`` needs every marathon-lb read: the poll reads them first."""
    return _swap_marathon_wait(observation) is None


def decide_swap(observation, plan, waited_s, max_wait_s):
    """The next step of a swap, from one observation of Marathon and every marathon-lb."""
    new_app, old_app = observation.new_app, observation.old_app
    step = _swap_marathon_wait(observation)
    if step is not None:
        return step
    if observation.lbs is None:
        return Step(read_lbs=True)
    new_count, old_count = new_app.get("instances", 0), old_app.get("instances", 0)
    if plan.hybrid_goal and new_count == plan.hybrid_goal and old_count == plan.target - plan.hybrid_goal:
        return Step(done=True)
    if old_app_unrouted(observation, plan):
        return Step(delete_old=True)
    drain = assess_drain(observation, plan)
    kill, forced = drain.drained_ids, False
    if drain.reason is not None:
        # --max-wait bounds a drain, not a view zdd cannot read (docs/behaviour.rst, 'Doubtful answers')
        if waited_s < max_wait_s or drain.lb_failed:
            return Step(wait=drain.reason, draining=drain.draining, lb_failed=drain.lb_failed)
        kill, forced = drain.maint_ids, True
    old_ids = {task["id"] for task in old_app.get("tasks") or []}
    if not plan.hybrid_goal and new_count == plan.target and len(kill) == old_count and old_ids <= set(kill):
        return Step(delete_old=True, forced=forced)
    scale_to = next_instances(new_count, old_count, plan) if new_count < plan.goal else None
    if not kill and scale_to is None:
        return Step(wait=drain.reason or "nothing to kill or scale yet", lb_failed=drain.lb_failed, forced=forced)
    return Step(kill=tuple(kill), scale_to=scale_to, forced=forced)


# ---------------------------------------------------------------------------
# Pure core: judging the new colour by its traffic
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Traffic:
    """What one colour's servers served in a window, summed over servers and marathon-lbs."""

    requests: int = 0
    failures: int = 0  # 5xx answers, response errors (server aborts among them), connection errors
    rtime_weight_ms: float = 0.0  # each server's rtime times its requests, for a request-weighted mean
    timed_requests: int = 0  # the requests of servers with an rtime (0 ms: no answer completed yet)
    unreadable: int = 0  # server rows left out: a counter was unknown (parse_stats), so what they served is too

    def __add__(self, other):
        return Traffic(*(mine + theirs for mine, theirs in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    @property
    def rate(self):
        return self.failures / self.requests if self.requests else 0.0

    @property
    def rtime_ms(self):
        """HAProxy's mean response time, weighted by requests; None without a server that has one."""
        return self.rtime_weight_ms / self.timed_requests if self.timed_requests else None


TRAFFIC_COUNTERS = ("stot", "hrsp_5xx", "eresp", "econ", "rtime")


def server_traffic(previous, listener):
    """What one server served since ``previous``, its row in the marathon-lb's last poll (None: count from 0).

    A counter unknown in either row makes the whole row unreadable: never a 0.
    """
    if any(getattr(row, name) is None for row in (previous, listener) if row is not None for name in TRAFFIC_COUNTERS):
        return Traffic(unreadable=1)

    def served(name):
        return getattr(listener, name) - (getattr(previous, name) if previous is not None else 0)

    requests = served("stot")
    failures = min(requests, served("hrsp_5xx") + served("eresp") + served("econ"))
    # stot counts a request when it is sent, rtime once its answer came: a new worker whose first answers
    # are still on their way shows 0 ms, which would pull the mean down
    timed = requests if listener.rtime > 0 else 0
    return Traffic(requests, failures, listener.rtime * timed, timed)


def worker_restarted(previous, listeners):
    """Whether a marathon-lb's stats now come from a new HAProxy worker: some counter went down since the last poll."""
    for listener in listeners:
        before = previous.get(listener.svname)
        if before is not None and any(getattr(listener, c) < getattr(before, c) for c in CUMULATIVE_COUNTERS
                                      if None not in (getattr(listener, c), getattr(before, c))):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class Tally:
    """The traffic of each colour since the step's window began, and the rows last seen on each marathon-lb."""

    new: Traffic = Traffic()
    old: Traffic = Traffic()
    last_seen: dict = dataclasses.field(default_factory=dict)  # lb url -> {server name: Listener}
    roles: dict = dataclasses.field(default_factory=dict)  # server name -> "new" or "old", from Marathon's tasks
    old_before: Traffic = Traffic()  # the old colour's traffic in the last earlier window that had any

    @property
    def baseline(self):
        """The old colour's traffic to compare with: this window's, or the last one's that had requests."""
        return self.old if self.old.requests or self.old.unreadable else self.old_before


def tally_traffic(tally, observation):
    """The tally after one more poll: what each server served since the last one, added to its colour.

    The first poll of a marathon-lb is only a baseline. Counters are per
    HAProxy worker and restart at 0 on each reload: after a reload (a counter
    went down) or for a server that was not listed before, the values count
    from 0. A server of neither app (a task Marathon no longer lists and
    zdd never saw) is not counted.
    """
    roles = dict(tally.roles)
    for role, app in (("old", observation.old_app), ("new", observation.new_app)):
        for task in app.get("tasks") or []:
            name = observation.names.get(task["id"])
            if name is not None:
                roles[name] = role
    totals = {"new": tally.new, "old": tally.old}
    last_seen = dict(tally.last_seen)
    for lb in observation.lbs:
        if lb.listeners is None:
            continue
        previous = last_seen.get(lb.url)
        if previous is not None:
            restarted = worker_restarted(previous, lb.listeners)
            for listener in lb.listeners:
                if listener.svname in roles:
                    before = None if restarted else previous.get(listener.svname)
                    totals[roles[listener.svname]] += server_traffic(before, listener)
        last_seen[lb.url] = {listener.svname: listener for listener in lb.listeners}
    return dataclasses.replace(tally, new=totals["new"], old=totals["old"], last_seen=last_seen, roles=roles)


def new_window(tally):
    """The tally for the next step: no traffic counted yet, the rows last seen kept to count from."""
    return dataclasses.replace(tally, new=Traffic(), old=Traffic(), old_before=tally.baseline)


@dataclasses.dataclass(frozen=True)
class Verdict:
    outcome: str  # "pass", "fail" or "inconclusive"
    reason: str


class Gate(enum.Enum):
    """What a step's traffic verdict means for the scale-up or the delete that follows it."""

    CONTINUE = "continue"
    WAIT = "wait"  # poll again, for more traffic to judge
    FAIL = "fail"  # the release stops (CheckFailed)


def traffic_gate(outcome, inconclusive, waited_s, max_wait_s):
    """The gate for a verdict ``outcome`` ("pass", "fail", "inconclusive") after ``waited_s`` s of waiting for it.

    ``inconclusive`` is --analysis-inconclusive: an inconclusive verdict
    continues, fails, or waits for more traffic up to --max-wait, then continues.
    """
    if outcome == "fail" or outcome == "inconclusive" and inconclusive == "fail":
        return Gate.FAIL
    if outcome == "inconclusive" and inconclusive == "wait" and waited_s < max_wait_s:
        return Gate.WAIT
    return Gate.CONTINUE


def judge_traffic(new, old, min_requests, max_error_rate=None, max_response_time_ms=None, names=("new", "old")):
    """The verdict on one step's traffic of the new colour, with the old colour's as the baseline."""
    new_name, old_name = names
    unreadable = [f"{traffic.unreadable} of {name}'s" for name, traffic in ((new_name, new), (old_name, old))
                  if traffic.unreadable]
    if unreadable:
        return Verdict("inconclusive", f"the stats counters of {' and '.join(unreadable)} server rows were unreadable "
                                       "(missing, '-' or garbage): their traffic is unknown")
    if new.requests < max(min_requests, 1):
        return Verdict("inconclusive", f"{new.requests} request(s) to {new_name}, fewer than the {min_requests} "
                                       "needed to judge it")
    if max_error_rate is not None and new.rate > max_error_rate and new.rate > old.rate:
        return Verdict("fail", f"{new_name}'s error rate {new.rate:.1%} ({new.failures} of {new.requests} requests) "
                               f"is above --max-error-rate {max_error_rate:.1%} and {old_name}'s {old.rate:.1%} "
                               f"({old.failures} of {old.requests})")
    timed = max_response_time_ms is not None and new.rtime_ms is not None
    if timed and new.rtime_ms > max_response_time_ms and (old.rtime_ms is None or new.rtime_ms > old.rtime_ms):
        baseline = "no requests" if old.rtime_ms is None else f"{old.rtime_ms:.0f} ms"
        return Verdict("fail", f"{new_name}'s mean response time {new.rtime_ms:.0f} ms is above "
                               f"--max-response-time {max_response_time_ms:g} ms and {old_name}'s ({baseline})")
    return Verdict("pass", f"{new_name} within the limits over {new.requests} request(s)")


# ---------------------------------------------------------------------------
# Time: the clock, the deadline, signals
# ---------------------------------------------------------------------------

class SystemClock:
    def monotonic(self):
        return time.monotonic()

    def sleep(self, seconds):
        time.sleep(seconds)

    def now(self):
        """Naive local time, as HAPROXY_DEPLOYMENT_STARTED_AT holds it."""
        return datetime.datetime.now()

    def utcnow(self):
        """Naive UTC time: event times and token expiry."""
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def deadline_rollback_share(options):
    """The share of --deadline the deployment leaves for a rollback (none for --status: nothing is deployed)."""
    return ROLLBACK_SHARE if options.on_failure == "rollback" and not options.status else 0.0


class Deadline:
    """The run's --deadline on the injected monotonic clock, in two phases.

    The deployment's phase ends ``rollback_share`` of the deadline early
    (with --on-failure rollback, ROLLBACK_SHARE: kept for the way back); the
    rollback's phase, entered by ``enter_rollback``, ends at the deadline.
    Every wait and every request checks the phase it is in.
    """

    def __init__(self, clock, seconds, rollback_share=0.0):
        self.clock = clock
        started = clock.monotonic()
        self.final_at = started + seconds if seconds else None
        self.ends_at = started + seconds - seconds * rollback_share if seconds else None

    def enter_rollback(self):
        self.ends_at = self.final_at

    def remaining(self):
        return None if self.ends_at is None else self.ends_at - self.clock.monotonic()

    def check(self, doing):
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded(f"the --deadline passed while {doing}")

    def bound(self, seconds):
        remaining = self.remaining()
        return seconds if remaining is None else max(0.0, min(seconds, remaining))


class Interrupts:
    """SIGINT and SIGTERM set a flag; zdd stops at the next safe point."""

    def __init__(self, clock):
        self.clock = clock
        self.signum = None
        self.previous = {}

    def install(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        self.signum = signum

    def check(self):
        if self.signum is not None:
            raise Interrupted(self.signum)

    def ask(self, ask, question):
        """Ask the operator; Ctrl-C at the prompt stops zdd at once (nothing is pending then)."""
        self.check()
        handler = signal.getsignal(signal.SIGINT)
        if handler == self._handle:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return ask(question)
        except KeyboardInterrupt:
            raise Interrupted(signal.SIGINT) from None
        finally:
            if handler == self._handle:
                signal.signal(signal.SIGINT, handler)

    def sleep(self, seconds):
        """Sleep, waking early to stop when a signal came."""
        end = self.clock.monotonic() + seconds
        while True:
            self.check()
            left = end - self.clock.monotonic()
            if left <= 0:
                return
            self.clock.sleep(min(SLEEP_SLICE_S, left))


# ---------------------------------------------------------------------------
# I/O: HTTP clients for Marathon and marathon-lb
# ---------------------------------------------------------------------------

def redact_url(url):
    """The URL without any user:password part."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _causes(exc):
    """``exc`` and every exception behind it: ``__cause__``, ``__context__``, urllib3's ``reason``, wrapped args."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])


def _caused_by(exc, *types):
    return any(isinstance(cause, types) for cause in _causes(exc))


def _describe(exc):
    """A short cause for a transport error, without URLs or credentials, from the exception types behind it."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer within the request timeout"
    if _tls_failed(exc):
        return "TLS verification failed"
    if isinstance(exc, requests.exceptions.ConnectionError):
        lookup = _lookup_failure(exc)
        if lookup is not None:
            return "host name lookup failed" if lookup.errno == socket.EAI_AGAIN else "host name does not resolve"
        if _caused_by(exc, ConnectionRefusedError):
            return "connection refused"
        if _caused_by(exc, ConnectionResetError):
            return "connection reset"
        return "connection failed"
    return type(exc).__name__


def _tls_failed(exc):
    return isinstance(exc, requests.exceptions.SSLError) or _caused_by(exc, ssl.SSLError)


def _lookup_failure(exc):
    """The ``socket.gaierror`` behind a failed connection, or None."""
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return None
    return next((cause for cause in _causes(exc) if isinstance(cause, socket.gaierror)), None)


def _permanent(exc):
    """Whether asking again cannot help: TLS verification failed, or the host name has no address.

    Decided by the exception types behind ``exc``, as ``_describe`` names
    them: a lookup that failed with EAI_AGAIN (the resolver could not answer
    now) is not permanent, any other ``socket.gaierror`` (the name has no
    address) is; a timeout never is.
    """
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout)):
        return False
    if _tls_failed(exc):
        return True
    lookup = _lookup_failure(exc)
    return lookup is not None and lookup.errno != socket.EAI_AGAIN


def _nothing_sent(exc):
    """Whether a failed request certainly never reached the server (safe to send again).

    Decided by the exception types behind it (a refused connection, a connect
    timeout), never by their text, whose wording differs between platforms.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    return isinstance(exc, requests.exceptions.ConnectionError) and _caused_by(exc, ConnectionRefusedError)


class DcosAuth(requests.auth.AuthBase):
    """DC/OS service-account login: one token, refreshed shortly before it expires."""

    def __init__(self, credentials, verify, timeout_s, clock):
        self.credentials = credentials
        self.verify = verify
        self.timeout_s = timeout_s
        self.clock = clock
        self.token = None
        self.refresh_at = 0.0
        self.session = requests.Session()

    def __call__(self, request):
        if self.token is None or self.clock.monotonic() >= self.refresh_at:
            self.login()
        request.headers["Authorization"] = f"token={self.token}"
        request.register_hook("response", self._again_after_401)
        return request

    def _again_after_401(self, response, **send_options):
        """A revoked token: log in again and send the request once more (a 401 changed nothing)."""
        if response.status_code != 401 or response.request.headers.get("X-Zdd-Relogin"):
            return response
        self.login()
        retry = response.request.copy()
        retry.headers["Authorization"] = f"token={self.token}"
        retry.headers["X-Zdd-Relogin"] = "1"
        response.close()
        again = response.connection.send(retry, **send_options)
        again.history.append(response)
        again.request = retry
        return again

    def login(self):
        try:
            import jwt
        except ImportError:
            raise InvalidArgs("DC/OS credentials need PyJWT: pip install 'zdd[dcos]'") from None
        uid = self.credentials["uid"]
        expires = int(_epoch_s(self.clock)) + 60
        try:
            signed = jwt.encode({"uid": uid, "exp": expires}, self.credentials["private_key"], algorithm="RS256")
        except Exception as exc:  # PyJWT and cryptography raise several types for a bad key
            raise InvalidArgs(f"the DC/OS private key cannot sign a login token ({type(exc).__name__})") from None
        endpoint = self.credentials["login_endpoint"]
        try:
            response = self.session.post(
                endpoint, json={"uid": uid, "token": signed, "exp": expires}, timeout=self.timeout_s, verify=self.verify
            )
        except requests.exceptions.RequestException as exc:
            error = MarathonFailed if _permanent(exc) else MarathonUnavailable
            raise error(f"DC/OS login at {redact_url(endpoint)} failed: {_describe(exc)}") from None
        if response.status_code != 200:
            error = MarathonUnavailable if response.status_code in RETRIED_STATUSES else MarathonFailed
            raise error(f"DC/OS login at {redact_url(endpoint)} failed: HTTP {response.status_code}")
        try:
            self.token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise MarathonFailed(f"DC/OS login at {redact_url(endpoint)} answered without a token") from None
        lifetime_s = _token_lifetime_s(self.token, _epoch_s(self.clock))
        self.refresh_at = self.clock.monotonic() + lifetime_s - min(DCOS_REFRESH_MARGIN_S, lifetime_s / 2)


def _epoch_s(clock):
    """The clock's wall time as seconds since the Unix epoch (UTC)."""
    return clock.utcnow().replace(tzinfo=datetime.timezone.utc).timestamp()


def _token_lifetime_s(token, now_s):
    """Seconds from ``now_s`` (epoch) until an ACS token (a JWT) expires, read without verifying it."""
    try:
        import jwt

        claims = jwt.decode(token, options={"verify_signature": False})
        return max(1.0, float(claims["exp"]) - now_s)
    except Exception:  # an opaque token: refresh it regularly
        return DCOS_FALLBACK_TOKEN_LIFETIME_S


def _may_try_again(method, exc, attempt, attempts):
    """After a transport error: a GET within its attempts, any request once more if nothing was sent."""
    if _permanent(exc):
        return False
    if _nothing_sent(exc):
        return attempt + 1 < max(attempts, 2)
    return method == "GET" and attempt + 1 < attempts


_IN_FLIGHT = threading.local()  # .watch: the AnswerWatch of the request this thread is sending, or None


class AnswerWatch:
    """A whole answer's time: when ``seconds`` are up, the sockets of the request are shut down.

    Socket timeouts bound each read, so an answer sent a byte at a time would
    never trip them; shutting the socket down ends any read in progress at once.
    """

    def __init__(self, seconds):
        self.seconds = seconds
        self.expired = False
        self._done = False
        self._sockets = []
        self._lock = threading.Lock()
        self._timer = None

    def __enter__(self):
        _IN_FLIGHT.watch = self
        self._arm(self.seconds)
        return self

    def __exit__(self, *exc_info):
        _IN_FLIGHT.watch = None
        with self._lock:
            self._done = True
            self._timer.cancel()

    def _arm(self, seconds):
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def add(self, sock):
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._cut(sock)

    def _expire(self):
        with self._lock:
            if not self._done:
                self.expired = True
                for sock in self._sockets:
                    self._cut(sock)

    @staticmethod
    def _cut(sock):
        try:  # socket.socket's own shutdown: a TLS socket's would also drop its TLS state under a reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def _watch(sock):
    """Hand ``sock`` to the AnswerWatch of the request this thread is sending, if any."""
    watch = getattr(_IN_FLIGHT, "watch", None)
    if watch is not None and sock is not None:
        watch.add(sock)


class _WatchedConnection:
    """A urllib3 connection whose socket, once connected, the request's AnswerWatch can shut down."""

    def connect(self):
        super().connect()
        _watch(self.sock)


class _WatchedHTTPConnection(_WatchedConnection, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, urllib3.connection.HTTPSConnection):
    pass


def _get_watched_conn(pool, timeout=None):
    """A connection from ``pool``; one kept alive, connected already, is handed to the watch now."""
    connection = urllib3.HTTPConnectionPool._get_conn(pool, timeout)
    _watch(connection.sock)
    return connection


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection
    _get_conn = _get_watched_conn


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
    _get_conn = _get_watched_conn


def _watch_pools(manager):
    """Make ``manager`` (a urllib3 PoolManager or ProxyManager, not a SOCKS one) use the watched pools."""
    if manager.pool_classes_by_scheme == {"http": urllib3.HTTPConnectionPool, "https": urllib3.HTTPSConnectionPool}:
        manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return manager


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with connections an AnswerWatch can cut."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


class UnreadableAnswer(Exception):
    """An answer zdd could not read whole; ``transient`` when asking again may get a whole one."""

    def __init__(self, message, transient):
        super().__init__(message)
        self.transient = transient


def _decoder(response):
    """A zlib decompressor for the answer's Content-Encoding, or None for a plain one."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # a gzip or a zlib header, told apart by zlib
    raise UnreadableAnswer(f"an answer in an encoding zdd does not read ({encoding[:40]})", transient=False)


def read_body(response, limit_bytes=MAX_ANSWER_BYTES):
    """The answer's whole body, decompressed, never more than ``limit_bytes`` in memory.

    Decompression is capped as it goes: a small compressed answer that grows
    past the limit stops there. Raises UnreadableAnswer for a body that is too
    big, compressed wrongly, or cut.
    """
    too_big = UnreadableAnswer(f"an answer larger than {limit_bytes / 2**20:g} MiB", transient=False)
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise too_big
    decoder = _decoder(response)
    body = bytearray()
    try:
        for data in response.raw.stream(ANSWER_CHUNK_BYTES, decode_content=False):
            while data:
                if decoder is None:
                    body += data
                    data = b""
                else:
                    # a chunk at a time: one call's output is a copy too
                    body += decoder.decompress(data, min(ANSWER_CHUNK_BYTES, limit_bytes + 1 - len(body)))
                    data = decoder.unconsumed_tail
                if len(body) > limit_bytes:
                    raise too_big
        if decoder is not None:
            if not decoder.eof:
                raise UnreadableAnswer("a compressed answer cut short", transient=True)
            if decoder.unused_data:
                raise UnreadableAnswer("a compressed answer with bytes after its end", transient=False)
    except zlib.error:
        raise UnreadableAnswer("an answer whose compression is broken", transient=False) from None
    return bytes(body)


class HttpClient:
    """One session to one kind of endpoint: every answer bounded in time and size, retries only where safe."""

    def __init__(self, session, timeout_s, deadline, clock, interrupts):
        self.session = session
        for prefix in ("http://", "https://"):
            session.mount(prefix, WatchedAdapter())
        self.timeout_s = timeout_s
        self.deadline = deadline
        self.clock = clock
        self.interrupts = interrupts

    def request(self, method, url, *, json_body=None, attempts=1):
        """Send one request and read its whole answer, trying again only where that is safe.

        The whole answer (connection, headers, body) gets --request-timeout,
        or what is left of --deadline if that is less; its body at most
        MAX_ANSWER_BYTES, decompressed (see
        docs/behaviour.rst, 'Answers zdd could not read'). A GET is tried up
        to ``attempts`` times after transport errors, answers that came cut
        or late, and 5xx answers (500, 502, 503, 504). Any request is sent again after a
        refused connection or a connect timeout (nothing reached the server);
        a write that may have reached it is never repeated here: the caller
        re-reads the state.
        """
        for attempt in itertools.count():
            self.deadline.check(f"calling {redact_url(url)}")
            budget_s = self.deadline.bound(self.timeout_s) or 0.001
            tries = f" after {attempt + 1} attempts" if attempt else ""
            try:
                response = self._answer(method, url, json_body, budget_s)
            except requests.exceptions.RequestException as exc:
                if _may_try_again(method, exc, attempt, attempts):
                    self._backoff(attempt)
                    continue
                raise RequestFailed(f"{method} {redact_url(url)} failed{tries}: {_describe(exc)}",
                                    ambiguous=not _nothing_sent(exc),
                                    permanent=_permanent(exc)) from None
            except UnreadableAnswer as exc:
                if method == "GET" and exc.transient and attempt + 1 < attempts:
                    self._backoff(attempt)
                    continue
                raise RequestFailed(f"{method} {redact_url(url)} failed{tries}: {exc}", ambiguous=True) from None
            if method == "GET" and response.status_code in RETRIED_STATUSES and attempt + 1 < attempts:
                self._backoff(attempt)
                continue
            return response

    def _answer(self, method, url, json_body, budget_s):
        """The response with its whole body read, within ``budget_s`` seconds of the machine's clock."""
        with AnswerWatch(budget_s) as watch:
            response = None
            try:
                # verify passed per request: requests lets REQUESTS_CA_BUNDLE replace a session's CA bundle
                response = self.session.request(method, url, json=json_body, timeout=budget_s, stream=True,
                                                verify=self.session.verify,
                                                headers={"Accept-Encoding": ACCEPTED_ENCODINGS})
                response._content = read_body(response)  # what response.json() and .text read
                response._content_consumed = True  # close() then hands the connection back for keep-alive
            except (requests.exceptions.RequestException, UnreadableAnswer, urllib3.exceptions.HTTPError,
                    http.client.HTTPException, OSError) as exc:
                # a read timeout is the same time running out, seen first by the socket
                if watch.expired or isinstance(exc, requests.exceptions.ReadTimeout):
                    limit = (f"the request timeout ({self.timeout_s:g} s)" if budget_s >= self.timeout_s
                             else "the --deadline")
                    raise UnreadableAnswer(f"no whole answer within {limit}", transient=True) from None
                if response is None or isinstance(exc, UnreadableAnswer):
                    raise
                raise UnreadableAnswer("the answer was cut short", transient=True) from None
            finally:
                if response is not None:
                    response.close()
        return response

    def _backoff(self, attempt):
        """Wait before the next attempt; the final failure, if any, says how many there were."""
        delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
        self.interrupts.sleep(self.deadline.bound(delay))


class RequestFailed(Exception):
    """A request that got no usable answer; ``ambiguous`` when it may have reached the server.

    ``permanent``: asking again cannot help (the name does not resolve, TLS verification failed).
    """

    def __init__(self, message, ambiguous=False, permanent=False):
        super().__init__(message)
        self.ambiguous = ambiguous
        self.permanent = permanent


def _read_failed(exc):
    """The error for a Marathon read without an answer: waited for (transient) or not (permanent)."""
    return (MarathonFailed if exc.permanent else MarathonUnavailable)(str(exc))


def _read_refused(response, url):
    """The error for a Marathon read answered ``response.status_code``: a 5xx is waited for, 401, 403 ... are not."""
    error = MarathonUnavailable if response.status_code in RETRIED_STATUSES else MarathonFailed
    return error(f"GET {redact_url(url)} answered HTTP {response.status_code}: {_message(response)}")


def _json_of(response, url):
    try:
        return response.json()
    except ValueError:
        raise MarathonFailed(f"{redact_url(url)} answered with something that is not JSON (is it Marathon?)") from None


def _may_ask_another(method, exc):
    """Whether a request that failed on one Marathon master (``exc``, a RequestFailed) may go to the next.

    A read always may: it got no answer, and asking again changes nothing.
    A write only when it certainly never reached the master (refused, a
    connect timeout, a name that does not resolve), decided by the exception
    types behind ``exc`` as ``_nothing_sent`` decides: a write that may have
    arrived is never sent to a second master.
    """
    return method == "GET" or not exc.ambiguous or _caused_by(exc, socket.gaierror)


class MarathonClient:
    """Marathon's API at one or more masters: each request starts at the master that answered last.

    Every master proxies to the leader, so any master that answers will do
    (docs/behaviour.rst, 'Several Marathon masters').
    """

    def __init__(self, base_urls, http):
        base_urls = (base_urls,) if isinstance(base_urls, str) else tuple(base_urls)
        self.base_urls = tuple(url.rstrip("/") for url in base_urls)
        self.current = 0  # the index of the master that answered last
        self.http = http

    def _send(self, method, path, body=None, attempts=1):
        """``(response, url)`` from the first master, from the current one on, that answers ``path``.

        A master that gives no answer is left for the next as ``_may_ask_another``
        allows, and so is a 5xx answer to a read while another master is
        left to ask. Only the last master asked gets the read's ``attempts``
        (and so the retries a single master gets): a master that is down costs
        one attempt, not all of them.
        """
        count = len(self.base_urls)
        for tried in range(count):
            index = (self.current + tried) % count
            url = self.base_urls[index] + path
            last = tried == count - 1
            try:
                response = self.http.request(method, url, json_body=body, attempts=attempts if last else 1)
            except RequestFailed as exc:
                if last or not _may_ask_another(method, exc):
                    raise
                logger.warning("%s; asking the next Marathon master, %s", exc,
                               redact_url(self.base_urls[(index + 1) % count]))
                continue
            if not last and method == "GET" and response.status_code in RETRIED_STATUSES:
                logger.warning("GET %s answered HTTP %d; asking the next Marathon master, %s", redact_url(url),
                               response.status_code, redact_url(self.base_urls[(index + 1) % count]))
                continue
            self.current = index
            return response, url

    def _get(self, path):
        try:
            response, url = self._send("GET", path, attempts=GET_ATTEMPTS)
        except RequestFailed as exc:
            raise _read_failed(exc) from None
        if response.status_code != 200:
            raise _read_refused(response, url)
        return _json_of(response, url), url

    def list_apps(self):
        body, url = self._get("/v2/apps")
        if not isinstance(body, dict) or not isinstance(body.get("apps"), list):
            raise MarathonFailed(f"{redact_url(url)} did not answer a list of apps (is it Marathon?)")
        return body["apps"]

    def get_app(self, app_id, missing_ok=False):
        try:
            response, url = self._send("GET", "/v2/apps" + app_id, attempts=GET_ATTEMPTS)
        except RequestFailed as exc:
            raise _read_failed(exc) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code != 200:
            raise _read_refused(response, url)
        body = _json_of(response, url)
        if not isinstance(body, dict) or not isinstance(body.get("app"), dict):
            raise MarathonFailed(f"{redact_url(url)} did not answer an app")
        problem = app_problem(body["app"], app_id, embedded=True)
        if problem is not None:
            raise MarathonDoubtful(f"GET {redact_url(url)} gave a doubtful answer: {problem}")
        return body["app"]

    def write(self, method, path, body, failure):
        """One write; raises ``Locked`` on 409 locked, ``failure`` otherwise, never repeats blindly."""
        try:
            response, url = self._send(method, path, body)
        except RequestFailed as exc:
            # "unsent": refused twice, not done; after the first write, read again and decide again all the same
            outcome = (WriteOutcome.MAYBE if exc.ambiguous else WriteOutcome.FAILED if exc.permanent
                       else WriteOutcome.UNSENT)
            raise failure(str(exc), outcome=outcome) from None
        if response.status_code == 409 and "locked" in _message(response).lower():
            raise Locked(_message(response))
        if response.status_code >= 400:
            # a 5xx may come after Marathon (or a proxy before it) acted: read the state again
            outcome = WriteOutcome.MAYBE if response.status_code >= 500 else WriteOutcome.FAILED
            raise failure(f"{method} {redact_url(url)} answered HTTP {response.status_code}: {_message(response)}",
                          outcome=outcome)
        return response

    def create_app(self, app):
        return self.write("POST", "/v2/apps", app, CreateFailed)

    def scale_app(self, app_id, instances, force=False):
        query = "?force=true" if force else ""
        return self.write("PUT", "/v2/apps" + app_id + query, {"instances": instances}, ScaleFailed)

    def kill_tasks(self, task_ids):
        return self.write("POST", "/v2/tasks/delete?scale=true", {"ids": list(task_ids)}, ScaleFailed)

    def delete_app(self, app_id):
        return self.write("DELETE", "/v2/apps" + app_id, None, DeleteFailed)


def _message(response):
    try:
        body = response.json()
        return str(body.get("message", body)) if isinstance(body, dict) else str(body)[:200]
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else "(empty body)"


def resolve_host(host, lookup=socket.getaddrinfo):
    """The IPv4 address of a host name (the IP itself for a literal), or None.

    IPv4 only, as marathon-lb resolves an agent's name for its server names:
    an IPv6 address first in the answer would name no server HAProxy has.
    """
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return lookup(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError, UnicodeError):
        return None


def lb_urls(given, resolve_all):
    """The marathon-lb instances to poll.

    One plain-HTTP URL with a host name stands for every address that name
    resolves to (IPv4 and IPv6), as marathon-lb's zdd.py did; URLs named one
    by one, and HTTPS ones, are polled as given so TLS checks the name.
    """
    if len(given) != 1:
        return list(given)
    url = given[0]
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
        return [url]
    except ValueError:
        pass
    if parts.scheme == "https":
        return [url]
    addresses = resolve_all(host)
    if not addresses:
        raise LbFailed(f"the marathon-lb host name {host} does not resolve")
    port = f":{parts.port}" if parts.port else ""
    urls = []
    for address in addresses:
        netloc = (f"[{address}]" if ":" in address else address) + port
        urls.append(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
    return urls


def resolve_all_addresses(host):
    """Every IPv4 and IPv6 address of a host name, in the resolver's order, without repeats."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


class MarathonLbClient:
    def __init__(self, urls, http, resolve_all=resolve_all_addresses):
        self.given = tuple(urls)
        self.http = http
        self.resolve_all = resolve_all

    def instances(self):
        return lb_urls(self.given, self.resolve_all)

    def preflight(self, backend):
        """Check, before anything is written, that every marathon-lb answers on its stats page (of ``backend``).

        Any HTTP answer will do here (a bad stats page is waited on, like one in a poll); not
        /_haproxy_getpids, whose forking Lua in marathon-lb can cut the requests HAProxy serves.
        """
        try:
            for url in self.instances():
                try:
                    self.http.request("GET", url.rstrip("/") + stats_path(backend), attempts=GET_ATTEMPTS)
                except RequestFailed as exc:
                    raise LbFailed(f"marathon-lb does not answer: {exc}") from None
        finally:
            self.http.session.close()

    def observe(self, backend, attempts=1, for_status=False):
        """One LbView per marathon-lb instance; a failing instance shows as such, it does not raise.

        The stats page is asked up to ``attempts`` times: a deployment asks
        once, its next poll asks again; --status, which has no next poll,
        asks more. ``for_status``: a page that is not stats CSV is reported
        with the request it answered, as --status has always shown it.
        """
        try:
            urls = self.instances()
        except LbFailed as exc:
            return (LbView(url=redact_url(self.given[0]), error=str(exc)),)
        try:
            return tuple(self._observe_one(url.rstrip("/"), backend, attempts, for_status) for url in urls)
        finally:
            # No idle connection between polls: HAProxy keeps an old worker alive for an idle
            # keep-alive connection after a reload, and zdd would then wait on its own connection.
            self.http.session.close()

    def _observe_one(self, url, backend, attempts, for_status):
        shown = redact_url(url)  # LbView.url is printed in progress lines and JSON events
        stats_url = url + stats_path(backend)
        try:
            text = self._get(stats_url, attempts)
            return LbView(url=shown, listeners=parse_stats(text, backend), source=url,
                          read_at=self.http.clock.monotonic(), worker_age_s=parse_worker_age(text))
        except RequestFailed as exc:
            return LbView(url=shown, error=str(exc), source=url)
        except ValueError as exc:
            error = f"GET {redact_url(stats_url)} is not HAProxy's stats CSV ({exc})" if for_status else str(exc)
            return LbView(url=shown, error=error, source=url)

    def with_pids(self, views, skip=(), for_status=False):
        """``views`` (from ``observe``) with each marathon-lb's HAProxy PIDs, read now, after its stats, once.

        Read only when needed (before a kill or a delete; by --status, once per
        marathon-lb, never for the URLs in ``skip``): marathon-lb's getpids
        forks inside HAProxy's worker, which can cut requests it serves; so it
        is never retried either. Read after the stats, a reload in progress at
        any moment of the stats read still shows (more than 2 PIDs) unless its
        old worker has finished every connection. A failed read, or an answer
        that is not a list of PIDs (``parse_pids``), shows as a marathon-lb
        that did not answer; ``for_status``: as one whose stats were read and
        whose PIDs are unknown (``error`` set, ``listeners`` kept).
        """
        try:
            return tuple(view if view.url in skip else self._with_pids_one(view, for_status) for view in views)
        finally:
            self.http.session.close()

    def _with_pids_one(self, view, for_status):
        if view.listeners is None:
            return view
        url = view.source + PIDS_PATH
        try:
            return dataclasses.replace(view, pids=parse_pids(self._get(url)))
        except RequestFailed as exc:
            error = str(exc)
        except ValueError as exc:
            error = f"GET {redact_url(url)} " + ("did not answer a list of PIDs" if for_status else f"answered {exc}")
        return dataclasses.replace(view, listeners=view.listeners if for_status else None, error=error)

    def _get(self, url, attempts=1):
        response = self.http.request("GET", url, attempts=attempts)
        if response.status_code != 200:
            raise RequestFailed(f"GET {redact_url(url)} answered HTTP {response.status_code}")
        return response.text


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file in its directory: a reader sees the old file or the new."""
    directory, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# ---------------------------------------------------------------------------
# Reporting: each happening's text line and JSON event; the terminal block
# ---------------------------------------------------------------------------

class Reporter:
    """What zdd tells the operator, each happening written once: its text log line and its JSON event.

    ``event(name, **fields)`` logs the line(s) that ``TEXT_LINES[name]`` makes
    of the fields (no line for a name without an entry) and, with
    --output json, writes the fields as one JSON line on stdout. A name may
    carry a variant after a dot, "waiting.locked": the variant picks the text
    line, the event is "waiting". A field whose name begins with "_" is for
    the text line only: the event never shows it.

    Which log lines go through here: every line that tells a happening with a
    JSON event is that event's text (its TEXT_LINES entry, from the same
    fields), never a logger call beside it. A line with no event of its own
    (a note on a choice, a retry or a conclusion) is a plain ``logger`` call,
    and so is every line logged where no Reporter exists: the Marathon
    client's failover, loading the app, setting up logging.
    """

    def __init__(self, enabled, out, clock):
        self.enabled = enabled  # --output json
        self.out = out
        self.clock = clock
        self.started = clock.monotonic()

    def event(self, name, **fields):
        self._log(name, fields)
        event, json_fields = _event_of(name, fields)
        self.emit(event, **json_fields)

    def before(self, name, **fields):
        """For a write: its text line now; ``done()`` on what this returns: its event, once the write succeeded."""
        self._log(name, fields)
        return _Pending(self, *_event_of(name, fields))

    def emit(self, event, **fields):
        """The JSON event alone, no text line."""
        if not self.enabled:
            return
        record = {
            "event": event,
            "time": self.clock.utcnow().replace(tzinfo=datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "elapsed_s": round(self.clock.monotonic() - self.started, 3),
        }
        record.update(fields)
        self.out.write(json.dumps(record, sort_keys=True) + "\n")
        self.out.flush()

    def _log(self, name, fields):
        lines = TEXT_LINES.get(name)
        for line in lines(fields, self.enabled) if lines else ():
            # stacklevel: the record names the function that reported, as a logger call there would
            logger.log(line.level, line.message, *line.args, exc_info=line.exc_info, stacklevel=3)


def _event_of(name, fields):
    """The event's name (without the text line's variant) and its fields (without the text line's own)."""
    return name.split(".", 1)[0], {key: value for key, value in fields.items() if not key.startswith("_")}


@dataclasses.dataclass
class _Pending:
    reporter: Reporter
    event: str
    fields: dict

    def done(self):
        self.reporter.emit(self.event, **self.fields)


class TextLine(typing.NamedTuple):
    level: int
    message: str  # a logging format: %-style, with ``args``
    args: tuple = ()
    exc_info: BaseException = None


def _analysis_line(fields, json_output):
    figures = ", ".join(f"{name} {c['requests']} requests {c['failures']} failed ({c['rate']:.1%})"
                        + ("" if c["rtime_ms"] is None else f" {c['rtime_ms']:.0f} ms")
                        for name, c in fields["colours"].items())
    return [TextLine(logging.WARNING if fields["verdict"] != "pass" else logging.INFO, "step %d analysis: %s: %s (%s)",
                     (fields["step"], figures, fields["verdict"], fields["reason"]))]


def _error_lines(fields, json_output):
    """The failure report: the error, and while both apps exist what Marathon last showed and the ways on."""
    hint = fields.get("_hint")
    lines = [TextLine(logging.ERROR, "%s", (f"{fields['message']} ({hint})" if hint else fields["message"],))]
    if "_state" in fields:
        lines += [TextLine(logging.ERROR, "state: %s", (fields["_state"],)),
                  TextLine(logging.ERROR, "to finish: %s", (fields["_finish"],)),
                  TextLine(logging.ERROR, "to go back: %s", (fields["_back"],))]
    return lines


def _labels_lines(fields):
    """The plan's labels zdd set on the new app (a run that creates one), before its summary."""
    labels = fields.get("_labels")
    return [TextLine(logging.INFO, "plan: labels set on %s: %s", (fields["new_app"], labels))] if labels else []


def _changes_lines(fields):
    """The plan's diff from the running colour: one line per field that differs (none for a first deployment)."""
    changes, old_app = fields["changes"], fields["old_app"]
    if changes is None:
        return []
    if not changes:
        return [TextLine(logging.INFO, "plan: nothing differs from %s (fields zdd sets and Marathon's "
                                       "defaults left out)", (old_app,))]
    return [TextLine(logging.INFO, "plan: %d field(s) differ from %s:\n  %s",
                     (len(changes), old_app, "\n  ".join(f"{c['path']}: {_shown(c['old'])} -> {_shown(c['new'])}"
                                                         for c in changes)))]


def _shown(value, limit=DIFF_VALUE_CHARS):
    """A value of the diff as JSON on one line, cut at ``limit`` characters; a field left out without a default."""
    text = "(none)" if value is None else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


TEXT_LINES = {
    # event name (with its variant) -> the text line(s) of its fields; the second argument: --output json
    "app_prepared": lambda f, json_output: [TextLine(
        logging.INFO, "Final app definition of %s: on standard output%s",
        (f["app"]["id"], " (the app_prepared event)" if json_output else ""))],
    "plan": lambda f, json_output: _labels_lines(f) + [TextLine(logging.INFO, "plan: %s", (f["summary"],))]
    + _changes_lines(f),
    "created": lambda f, json_output: [TextLine(logging.INFO, "Created %s with %s instance(s)",
                                                (f["app"], f["instances"]))],
    "waiting.locked": lambda f, json_output: [TextLine(logging.INFO, "Marathon is busy (%s) while %s; waiting %s s",
                                                       (f["_busy"], f["_doing"], f["_delay_s"]))],
    "waiting.marathon": lambda f, json_output: [TextLine(
        logging.WARNING, "Marathon does not answer (%s); waited %.0f s, looking again in %g s",
        (f["_exc"], f["_waited_s"], f["_next_poll_s"]))],
    "waiting.min_step_interval": lambda f, json_output: [TextLine(
        logging.INFO, "Waiting %g s before looking again (--min-step-interval)", (f["next_poll_s"],))],
    "scaled.up": lambda f, json_output: [TextLine(logging.INFO, "Scaling %s up to %d instance(s)",
                                                  (f["app"], f["instances"]))],
    "rollback": lambda f, json_output: [TextLine(logging.ERROR, "%s", (f["reason"],)), TextLine(
        logging.WARNING, "Rolling back: restoring %s to %d instance(s), then deleting %s",
        (f["restore"], f["target"], f["remove"]))],
    "scaled.back": lambda f, json_output: [TextLine(logging.INFO, "Scaling %s back to %d instance(s)",
                                                    (f["app"], f["instances"]))],
    "scaled.hand_over": lambda f, json_output: [TextLine(
        logging.INFO, "Scaling %s to %d and back, so that marathon-lb drains %s before it is deleted",
        (f["app"], f["instances"], f["_drains"]))],
    "killed": lambda f, json_output: [TextLine(logging.INFO, "Killing %d drained old task(s) of %s:\n  - %s",
                                               (len(f["tasks"]), f["app"], "\n  - ".join(f["tasks"])))],
    "analysis": _analysis_line,
    "poll": lambda f, json_output: [TextLine(
        logging.INFO, "step %d: %s up, %s %d draining %d, %s",
        (f["step"], f["_new"], f["_old"], f["old_instances"],
         max((lb.get("maint", 0) for lb in f["lbs"]), default=0), f["_doing"]))],
    "previous": lambda f, json_output: [TextLine(logging.INFO, "Saved %s as %s to %s: zdd -j %s deploys it again",
                                                 (f["app"], f["id"], f["file"], f["file"]))],
    "error": _error_lines,
    "error.unexpected": lambda f, json_output: [TextLine(logging.ERROR, "unexpected error", exc_info=f["_exc"])],
}


def summarise(app):
    """'green 5/10' style: running-and-healthy tasks over instances."""
    if app is None:
        return "gone"
    healthy = sum(1 for task in app.get("tasks") or [] if is_routable(app, task))
    return f"{colour_of(app) or app.get('id')} {healthy}/{app.get('instances', 0)}"


def is_terminal(stream):
    """Whether ``stream`` is a terminal that understands cursor movement."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


class TerminalBlock:
    """Lines at the bottom of a terminal, redrawn in place; other text is printed above them.

    Plain ANSI escapes do it (cursor up N lines, erase to the end of the
    screen), which every terminal emulator in use understands; curses would
    take over the whole screen. Lines are cut at the terminal's width, and the
    block at its height, so that the block's height is known and on screen.
    """

    def __init__(self, stream):
        self.stream = stream
        self.lines = []
        self.rows = 0  # terminal rows the block occupies now

    def size(self):
        """(columns, lines) of the terminal; 80 x 24 when it does not say."""
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, OSError, ValueError):
            return DEFAULT_TERMINAL_COLUMNS, DEFAULT_TERMINAL_LINES
        return size.columns or DEFAULT_TERMINAL_COLUMNS, size.lines or DEFAULT_TERMINAL_LINES

    def draw(self, lines):
        self._erase()
        self.lines = list(lines)
        self._write()

    def above(self, text):
        """Print ``text`` for good, then the block again under it."""
        self._erase()
        self.stream.write(text + "\n")
        self._write()

    def clear(self):
        self._erase()
        self.lines = []
        self.stream.flush()

    def _erase(self):
        if self.rows:
            self.stream.write(f"\r\x1b[{self.rows}A\x1b[J")
            self.rows = 0

    def _write(self):
        columns, lines = self.size()
        width = max(10, columns - 1)  # one spare column: no terminal wraps early
        rows = [line[start:start + width] for line in self.lines for start in range(0, max(len(line), 1), width)]
        if len(rows) >= lines:  # the cursor cannot go up past the top of the screen: keep the block on it
            kept = max(1, lines - 2)
            rows = rows[:kept] + [f"({len(rows) - kept} more lines: a taller terminal shows them)"[:width]]
        self.stream.write("".join(row + "\n" for row in rows))
        self.rows = len(rows)
        self.stream.flush()


class LiveHandler(logging.Handler):
    """zdd's log on a terminal: lines scroll above one live block; the per-poll line goes into the block."""

    def __init__(self, stream, formatter):
        super().__init__()
        self.block = TerminalBlock(stream)
        self.setFormatter(formatter)
        self.absorbing = False  # set while Deployer.report logs its per-poll line
        self.poll_line = None

    def emit(self, record):
        try:
            text = self.format(record)
            if self.absorbing:
                self.poll_line = text
            else:
                self.block.above(text)
        except Exception:  # logging must never stop a deployment
            self.handleError(record)


# ---------------------------------------------------------------------------
# The loop: observe, decide, act, wait
# ---------------------------------------------------------------------------

ROLLBACK_CAUSES = (DeadlineExceeded, Stalled, HookRefused, ScaleFailed, CheckFailed)


@dataclasses.dataclass(frozen=True)
class Progress:
    """How far a run got, as ``Deployer.progress`` gives it: what the final event and the failure report read.

    Taken when the run ended: the report is built from what zdd last saw, never from new requests.
    """

    steps_taken: int = 0  # the swap's steps (SwapSteps.taken)
    plan: Plan = None
    swapping: bool = False  # both apps exist: a failure needs --resume or a way back
    skipped: bool = False  # --skip-unchanged found nothing to deploy
    last_seen: dict = dataclasses.field(default_factory=dict)  # app id -> the app as last read (None: gone)
    marathon_away: bool = False  # Marathon was not answering when the run ended


class Deployer:
    """Runs one zdd invocation against Marathon and marathon-lb: chooses the roles, then runs the loop.

    ``env`` gives the clock, the prompt and standard output (the app definition).
    """

    def __init__(self, options, marathon, lbs, env, interrupts, deadline, reporter, resolve=resolve_host):
        self.options = options
        self.marathon = marathon
        self.lbs = lbs
        self.clock = env.clock
        self.ask = env.ask or env.prompt
        self.out = env.stdout
        self.interrupts = interrupts
        self.deadline = deadline
        self.reporter = reporter
        self.resolve = resolve
        self.swap_steps = None  # the swap's SwapSteps once it began: they count its steps
        self.plan = None
        self.swapping = False  # both apps exist: a failure from here on needs --resume or a way back
        self.marathon_away_since = None  # when the Marathon outage now waited out began
        self.marathon_waited_s = 0.0  # seconds spent waiting for Marathon in this run
        self.last_seen = {}  # app id -> the app (None: gone) as Marathon last showed it
        self.writes_failed = 0  # writes without a clear outcome in a row
        self.writes_failing_since = None  # when the writes failing in a row began to fail
        self.just_wrote = False  # the app was created and zdd paused after it: the swap's first wait is done
        self.skipped = False  # --skip-unchanged: the running colour has this definition already, nothing written
        self.saved = set()  # ids of the apps --save-previous wrote to its file
        self.lb_reads = {}  # marathon-lb url -> its last LbView: the reads in a row by the same worker (track_reads)

    # -- entry -------------------------------------------------------------

    def run(self, app):
        group = deployment_group(app)
        apps = group_apps(self.marathon.list_apps(), group)
        if len(apps) > 1:
            return self.resume(apps)
        if self.options.complete_cur or self.options.complete_prev:
            raise InvalidArgs(
                "--complete-cur and --complete-prev need a hybrid group, but "
                f"group {group} has {len(apps)} app(s)"
            )
        previous = apps[0] if apps else None
        new_app = prepare_app(app, previous, self.options, self.clock.now())
        unchanged = previous is not None and not definition_changes(previous, new_app)
        if self.options.skip_unchanged and unchanged and not previous.get("deployments"):
            return self.skip(new_app, previous)
        if previous is not None:
            self.lbs.preflight(self.backend(previous))  # a dry run too: it reads what the real run reads first
        self.print_definition(new_app)
        if previous is not None:
            self.plan = plan_swap(new_app, previous, self.options, hybrid=self.options.new_instances > 0)
        self.log_plan(new_app, previous, labels_set=ZDD_LABELS)
        if self.options.skip_unchanged and unchanged:
            logger.info("%s runs this definition already, but a Marathon deployment of it is in progress: "
                        "deploying all the same (--skip-unchanged)", previous["id"])
        if self.options.dry_run:
            return ExitCode.OK
        self.confirm("Continue with deployment?")
        self.create(new_app)
        self.swapping = True
        if previous is None:
            logger.info("Created %s: the first deployment of group %s, nothing to swap", new_app["id"], group)
            return ExitCode.OK
        self.pause_after_write()
        return self.deploy()

    def skip(self, new_app, previous):
        """--skip-unchanged, nothing differs: the plan says so, and nothing is read from marathon-lb or written."""
        self.print_definition(new_app)
        self.plan = plan_swap(new_app, previous, self.options, hybrid=self.options.new_instances > 0)
        self.log_plan(new_app, previous)
        logger.info("%s runs this definition already: nothing to deploy (--skip-unchanged)", previous["id"])
        self.skipped = True
        return ExitCode.OK

    def resume(self, apps):
        options = self.options
        if not (options.resume or options.complete_cur or options.complete_prev):
            raise InvalidArgs(
                f"an existing deployment is in progress in group {deployment_group(apps[0])} "
                f"({', '.join(a['id'] for a in apps)})",
                hint="run again with --resume to finish it, or --complete-cur / --complete-prev for a hybrid group",
            )
        newest, second = sort_deploys(apps)[-1], sort_deploys(apps)[-2]
        if options.complete_prev:
            new_app, old_app = second, newest
            logger.info("Converging back to the previous colour %s; %s will be removed", colour_of(new_app),
                        old_app["id"])
        else:
            new_app, old_app = newest, second
            logger.info("Resuming: %s is the new app, %s the old one", new_app["id"], old_app["id"])
        hybrid = hybrid_goal_of(new_app) > 0 and not (options.complete_cur or options.complete_prev)
        self.lbs.preflight(self.backend(new_app))
        self.plan = plan_swap(new_app, old_app, options, hybrid=hybrid)
        self.print_definition(new_app)
        self.log_plan(new_app, old_app)
        if options.dry_run:
            return ExitCode.OK
        self.swapping = True
        return self.deploy()

    # -- output ------------------------------------------------------------

    def print_definition(self, app):
        self.reporter.event("app_prepared", app=app)
        if not self.reporter.enabled:
            self.out.write(json.dumps(app, sort_keys=True, indent=2) + "\n")
            self.out.flush()

    def log_plan(self, new_app, old_app, labels_set=None):
        """What this run will do: the apps, ports, labels, the scale schedule if every step converges, and the
        fields that differ from the old app's definition (``definition_changes``)."""
        new_desc = f"{new_app['id']} ({colour_of(new_app)}, service port {service_port(new_app)})"
        labels = (new_app.get("labels") or {})
        if old_app is None:
            summary = f"{new_desc} created with {new_app.get('instances', 0)} instance(s): the first deployment"
            plan = Plan(new_app["id"], None, target=deployment_target(new_app))
            news, olds = [new_app.get("instances", 0)], []
        else:
            plan = self.plan
            news, olds = scale_schedule(plan, new_app.get("instances", 0), old_app.get("instances", 0))
            new_colour, old_colour = colour_of(new_app) or new_app["id"], colour_of(old_app) or old_app["id"]
            summary = (f"{new_desc} replaces {old_app['id']} ({old_colour}, service port {service_port(old_app)})"
                       f" behind HAProxy port {labels.get(LABEL_PORT)}: {new_colour} {' -> '.join(map(str, news))}, "
                       f"{old_colour} {' -> '.join(map(str, olds))}"
                       + (" (hybrid: both kept)" if plan.hybrid_goal else f" (then {old_app['id']} is deleted)"))
        changes = None if old_app is None else [dataclasses.asdict(c) for c in definition_changes(old_app, new_app)]
        labels_text = " ".join(f"{key}={labels[key]}" for key in labels_set or ())
        self.reporter.event("plan", new_app=new_app["id"], old_app=old_app and old_app["id"], target=plan.target,
                            hybrid_goal=plan.hybrid_goal, new_schedule=news, old_schedule=olds, summary=summary,
                            changes=changes, _labels=labels_text)

    def confirm(self, question):
        if self.options.force:
            return
        if not self.interrupts.ask(self.ask, question):
            raise Declined("the operator answered no")

    # -- writes ------------------------------------------------------------

    def create(self, app):
        def landed():
            self.swapping = self.plan is not None  # until Marathon answers, the app may exist: --resume
            there = self.marathon.get_app(app["id"], missing_ok=True) is not None
            self.swapping = there and self.plan is not None
            return there

        notes = ("Marathon has the app now, carrying on", "Marathon does not have the app: creating it again")
        while not self.write(f"creating {app['id']}", lambda: self.marathon.create_app(app), landed, notes):
            pass
        self.reporter.event("created", app=app["id"], instances=app.get("instances"))

    def write(self, doing, send, landed=None,
              notes=("Marathon shows it done, carrying on", "reading Marathon again before deciding")):
        """Send one Marathon write: True when it is done, False when the caller should look again and decide again.

        The one path of every write (docs/behaviour.rst, 'Writes that fail').
        Locked (a deployment holds the app): wait --step-delay. No clear
        outcome (``WriteFailed.outcome``): ``landed``, a read, may show that
        Marathon did it all the same; otherwise the failure counts in
        ``write_failed``. A refused write stops zdd. Before anything is half
        done (not ``swapping``: the create), a write that never reached
        Marathon is not sent again, and others at most 3 times. ``notes``: what
        the log says after the failure when Marathon shows it done, and when not.
        """
        try:
            send()
        except Locked as exc:
            self.wait_locked(doing, exc)
            return False
        except WriteFailed as exc:
            if exc.outcome is WriteOutcome.FAILED or not self.swapping and exc.outcome is WriteOutcome.UNSENT:
                raise
            if exc.outcome is WriteOutcome.MAYBE and landed is not None and self.read_marathon(landed):
                logger.warning("%s; %s", exc, notes[0])
                self.writes_failed = 0
                return True
            self.writes_failed += 1
            self.write_failed(exc, notes[1])
            return False
        self.writes_failed = 0
        return True

    def wait_locked(self, doing, exc):
        self.reporter.event("waiting.locked", reason=f"app locked by a deployment while {doing}", _busy=exc,
                            _doing=doing, _delay_s=self.options.step_delay)
        self.sleep(self.options.step_delay)

    def sleep(self, seconds):
        self.deadline.check("waiting")
        self.interrupts.sleep(self.deadline.bound(seconds))
        self.deadline.check("waiting")

    def read_marathon(self, read):
        """``read()`` after the first write: a Marathon that does not answer is waited for, up to --stall-timeout.

        Transport errors, timeouts and 5xx answers (after the read's own
        retries) mean wait, then read again; any other answer stops at once.
        """
        while True:
            looked_at = self.clock.monotonic()
            try:
                result = read()
            except MarathonUnavailable as exc:
                if self.marathon_away_since is None:
                    self.marathon_away_since = looked_at
                away_s = self.clock.monotonic() - self.marathon_away_since
                timeout_s = self.options.stall_timeout
                if timeout_s and away_s >= timeout_s:
                    raise MarathonUnavailable(f"Marathon did not answer for {away_s:.0f} s "
                                              f"(--stall-timeout {timeout_s:g} s): {exc}") from None
                delay_s = min(self.options.step_delay, timeout_s - away_s) if timeout_s else self.options.step_delay
                self.reporter.event("waiting.marathon", reason=f"Marathon does not answer: {exc}",
                                    waited_s=round(away_s, 3), next_poll_s=round(delay_s, 3),
                                    _exc=exc, _waited_s=away_s, _next_poll_s=delay_s)
                self.sleep(delay_s)
                self.marathon_waited_s += self.clock.monotonic() - looked_at
                continue
            if self.marathon_away_since is not None:
                logger.info("Marathon answers again after %.0f s", self.clock.monotonic() - self.marathon_away_since)
                self.marathon_away_since = None
            return result

    # -- the swap ----------------------------------------------------------

    def deploy(self):
        """The swap; when it fails and --on-failure is rollback, the way back."""
        try:
            return self.swap()
        except ROLLBACK_CAUSES as failure:
            if self.options.on_failure != "rollback":
                raise
            return self.rollback(failure)

    def swap(self):
        steps = self.swap_steps = SwapSteps(self.plan, self.options, self.step_tools())
        if self.options.analysing:
            steps.count_from(self.traffic_baseline(steps))
        return self.converge(steps, looks=int(self.just_wrote))

    def traffic_baseline(self, steps):
        """Both apps and every marathon-lb's counters read now, before the first step; None: Marathon failed."""
        try:
            observation = self.read_apps(steps)
        except MarathonFailed as exc:  # the loop reads again; its first poll is the baseline then
            logger.warning("no traffic baseline before the first step (%s): step 1 counts from its first poll", exc)
            return None
        return dataclasses.replace(observation, lbs=self.lbs.observe(self.backend(observation.new_app)))

    def step_tools(self):
        """What the loop's steps act with: the write path, prompts, waits and output, not the Deployer itself."""
        return StepTools(self.marathon, self.reporter, self.clock, self.write, self.delete_app, self.save_previous,
                         self.confirm, self.sleep, self.pause_after_write, self.report, self.report_rollback,
                         self.deadline.bound)

    def progress(self):
        """How far this run got (a frozen snapshot): what ``main``'s final event and failure report read."""
        return Progress(steps_taken=self.swap_steps.taken if self.swap_steps else 0, plan=self.plan,
                        swapping=self.swapping, skipped=self.skipped, last_seen=dict(self.last_seen),
                        marathon_away=self.marathon_away_since is not None)

    def rollback(self, failure):
        """Restore the old app to the target, then drain and delete the new one."""
        plan = self.plan
        self.reporter.event("rollback", reason=str(failure), restore=plan.old_id, remove=plan.new_id,
                            target=plan.target)
        self.deadline.enter_rollback()
        started = self.clock.monotonic()
        try:
            self.converge(RollbackSteps(self.plan, self.options.max_wait, self.step_tools()))
        except Interrupted:
            raise
        except SaveFailed as exc:  # its own exit code: nothing was deleted
            raise SaveFailed(f"{failure}; the rollback stopped: {exc}", hint=exc.hint) from None
        except ZddError as exc:
            raise RollbackFailed(f"{failure}; the rollback failed too: {exc}") from None
        elapsed = self.clock.monotonic() - started
        self.reporter.emit("rolled_back", app=plan.old_id, duration_s=round(elapsed, 3))
        raise RolledBack(f"{failure}; rolled back to {plan.old_id} in {elapsed:.0f} s")

    # -- the loop: observe, decide, act -----------------------------------

    def converge(self, steps, looks=0):
        """Poll (one decision: ``steps.next_step``, pure) and act until it is done; what ``steps`` returns then.

        One loop for the swap and the rollback (docs/behaviour.rst,
        'The swap loop'), asking of them what ``LoopSteps`` says: it checks for
        signals and the deadline before every poll, stops a wait without
        progress (StallWatch), and looks again soon after a write or a changed
        wait (``look_again``). The acts write through ``write``: a write that
        did not go through (locked, no clear outcome) is decided again from a
        new poll.
        """
        stall = StallWatch(self.clock, self.options.stall_timeout)
        waiting_since = None  # when the wait that --max-wait bounds began
        step_since = self.clock.monotonic()  # when this step started (what the progress line shows)
        looks = Looks(looks)
        while True:
            self.interrupts.check()
            self.deadline.check(steps.doing)
            observation = self.read_apps(steps)
            now = self.clock.monotonic()
            waiting_since = now if waiting_since is None else waiting_since
            observation, step = self.poll(steps, observation, now - waiting_since)
            steps.report(observation, step, now - step_since)
            if step.done:
                return steps.finish(observation)
            stall.check(observation, step)
            if step.forced or step.wait and not step.bounded:
                waiting_since = None
            if step.wait:
                pause_s, looks = look_again(looks, step, self.options.step_delay)
                steps.waiting(step, now - step_since, pause_s)
                self.sleep(pause_s)
                continue
            acted = steps.act(observation, step)
            if isinstance(acted, ExitCode):
                return acted
            if acted is Acted.NOT_YET:
                continue
            paused = steps.wrote(sent=acted is Acted.WROTE)
            waiting_since, step_since = None, self.clock.monotonic()
            looks = Looks(int(paused))  # a pause after the write was the first wait

    def poll(self, steps, observation, waited_s):
        """One poll's observation completed, and its one decision: marathon-lb read first when the decision needs it.

        ``steps.reads_lbs`` says so from Marathon's answers. Before a kill or
        a delete, the reload check (--reload-check;
        docs/behaviour.rst, 'Old HAProxy workers'): the grace from the reads
        themselves, or the PIDs read now, after the stats; PIDs that show a
        reload are the one thing that makes the step be decided again, from
        the observation with them.
        """
        if observation.lbs is None and steps.reads_lbs(observation):
            lbs = self.lbs.observe(self.backend(observation.new_app))
            lbs = track_reads(self.lb_reads, lbs, set(observation.names.values()))
            self.lb_reads = {lb.url: lb for lb in lbs}
            observation = dataclasses.replace(observation, lbs=lbs)
        step = steps.next_step(observation, waited_s)
        if observation.lbs is None:
            observation = dataclasses.replace(observation, lbs=())
        steps.seen(observation)
        if (step.kill or step.delete_old) and observation.lbs:
            if reload_check_of(observation.lbs, self.options.reload_check) == "getpids":
                # a reload started by the stats read would be missed before them: the PIDs after the stats
                observation = dataclasses.replace(observation, lbs=self.lbs.with_pids(observation.lbs))
                if _lb_problem(observation.lbs) is not None:  # the PIDs are read by nothing else
                    step = steps.next_step(observation, waited_s)
            else:
                step = graced_step(observation, step, self.options.reload_grace, waited_s, self.options.max_wait)
        return observation, step

    def read_apps(self, steps):
        """Both apps of ``steps.app_ids`` from Marathon (an outage waited out), ``steps.complete``d, named.

        marathon-lb is not read here: ``poll`` reads it when the decision needs it.
        """
        new_id, old_id = steps.app_ids
        waited_s = self.marathon_waited_s
        new_app, old_app = self.read_marathon(lambda: (self.marathon.get_app(new_id, missing_ok=True),
                                                       self.marathon.get_app(old_id, missing_ok=True)))
        waited_s = self.marathon_waited_s - waited_s
        self.last_seen = {new_id: new_app, old_id: old_app}
        new_app, old_app = steps.complete(new_app, old_app)
        observation = Observation(new_app, old_app, lbs=None, marathon_wait_s=waited_s)
        return named(observation, self.resolve)

    def backend(self, app):
        port = (app.get("labels") or {}).get(LABEL_PORT) or service_port(app)
        return backend_name(deployment_group(app), port)

    def pause_after_write(self):
        """The wait after a step's writes: soon, but at least --min-step-interval."""
        pause_s = look_again_s(0, self.options.step_delay)
        self.just_wrote = True
        if self.options.min_step_interval > pause_s:
            pause_s = self.options.min_step_interval
            self.reporter.event("waiting.min_step_interval", reason="--min-step-interval", waited_s=0.0,
                                next_poll_s=pause_s)
        self.sleep(pause_s)

    def write_failed(self, exc, note):
        """After ``self.writes_failed`` writes in a row without a clear answer: read again and decide again.

        When, or whether ``exc`` stops zdd instead, ``after_failed_write`` says.
        """
        in_a_row = self.writes_failed
        now = self.clock.monotonic()
        if in_a_row == 1:
            self.writes_failing_since = now
        failing_s = now - self.writes_failing_since
        then = after_failed_write(in_a_row, failing_s, self.swapping, self.options.stall_timeout)
        if then is AfterFailedWrite.GIVE_UP:
            raise exc
        if then is AfterFailedWrite.LATER:
            logger.warning("%s; %d writes in a row failed in %.0f s: reading Marathon again in %g s", exc, in_a_row,
                           failing_s, self.options.step_delay)
            self.sleep(self.options.step_delay)
            return
        logger.warning("%s; %s", exc, note)

    def save_previous(self, app):
        """--save-previous: ``app``, about to be deleted, written to the file first as an app JSON zdd deploys again.

        docs/behaviour.rst, 'The previous release kept'. Once per app. A file that
        cannot be written stops zdd before the delete (SaveFailed): the
        definition would be lost with the app.
        """
        path = self.options.save_previous
        if not path or app["id"] in self.saved or self.last_seen.get(app["id"]) is None:
            return  # not asked for, written already, or the app is gone: nothing to keep
        definition = previous_definition(app, self.plan.target)
        try:
            write_atomically(path, json.dumps(definition, sort_keys=True, indent=2) + "\n")
        except OSError as exc:
            raise SaveFailed(f"--save-previous: cannot write {path}: {exc.strerror or exc}; {app['id']} was not "
                             "deleted", hint="make the file writable, or leave out --save-previous, and run the "
                             "command that finishes") from None
        self.saved.add(app["id"])
        self.reporter.event("previous", file=path, app=app["id"], id=definition["id"])

    def delete_app(self, app_id, doing):
        """Delete an app; False: the delete did not go through, decide again."""
        if not self.write(doing, lambda: self.marathon.delete_app(app_id),
                          lambda: self.marathon.get_app(app_id, missing_ok=True) is None):
            return False
        self.reporter.emit("deleted", app=app_id)
        return True

    def report(self, observation, step, waited_s, number):
        """A swap's poll: one progress line and a poll event; ``waited_s``: how long step ``number`` has waited."""
        new_app, old_app = observation.new_app, observation.old_app
        doing = f"waiting: {step.wait} (waited {waited_s:.0f} s in this step)" if step.wait else _describe_step(step)
        self.reporter.event(
            "poll", step=number, new_app=new_app["id"], new_instances=new_app.get("instances", 0),
            old_app=old_app["id"], old_instances=old_app.get("instances", 0), waiting=step.wait,
            lbs=[_lb_counts(lb) for lb in observation.lbs],
            _new=summarise(new_app), _old=colour_of(old_app) or old_app["id"], _doing=doing,
        )

    def report_rollback(self, observation, step, waited_s):
        """A rollback's poll: a progress line while it waits (no poll event: its apps' roles are turned round)."""
        if step.wait:
            logger.info("rollback: %s up, waiting: %s", summarise(observation.new_app), step.wait)


class Acted(enum.Enum):
    """What a step's ``act`` did, when the run goes on (it returns the ExitCode the run ends with otherwise)."""

    WROTE = "wrote"  # its writes went through (or it had none): the step is taken, the pause after a write
    NOT_SENT = "not sent"  # a write did not go through (locked, no clear outcome): decided again from a new poll
    NOT_YET = "not yet"  # nothing written, the gate waits for traffic: poll again


class LoopSteps(typing.Protocol):
    """What ``Deployer.converge``, the one loop, asks of the steps it runs: SwapSteps and RollbackSteps."""

    doing: str  # what zdd is doing, for the deadline's message
    app_ids: tuple  # (new, old) app ids read from Marathon every poll (a rollback: restored, failed)

    def complete(self, new_app, old_app) -> tuple:
        """Both apps as the decision takes them (a missing one filled in), or a MarathonFailed."""

    def reads_lbs(self, observation) -> bool:
        """Whether the decision on this observation of Marathon needs every marathon-lb read first."""

    def next_step(self, observation, waited_s) -> Step:
        """The poll's one decision (a pure function of the core); ``waited_s`` towards --max-wait."""

    def seen(self, observation) -> None:
        """The poll's whole observation, before acting on it."""

    def report(self, observation, step, waited_s) -> None:
        """The poll's progress output; ``waited_s``: how long the step has waited so far."""

    def waiting(self, step, waited_s, pause_s) -> None:
        """The step waits: output before the loop sleeps ``pause_s``."""

    def finish(self, observation) -> ExitCode:
        """The decision is done: the exit code."""

    def act(self, observation, step) -> typing.Union[Acted, ExitCode]:
        """Carry the step out; an ExitCode ends the loop with it."""

    def wrote(self, sent) -> bool:
        """After an act that went past its checks (``sent``: its writes went through): whether it paused."""


@dataclasses.dataclass(frozen=True)
class StepTools:
    """What the loop's steps act with (``Deployer.step_tools``); they keep no Deployer and write none of its state."""

    marathon: "MarathonClient"  # writes only through ``write`` or ``delete_app``
    reporter: Reporter
    clock: object
    write: typing.Callable  # Deployer.write: one Marathon write; False: it did not go through
    delete_app: typing.Callable  # Deployer.delete_app
    save_previous: typing.Callable  # Deployer.save_previous: --save-previous before a delete
    confirm: typing.Callable  # Deployer.confirm: the prompt, unless --force
    sleep: typing.Callable  # Deployer.sleep: within --deadline, stopped by a signal
    pause_after_write: typing.Callable  # Deployer.pause_after_write
    report_poll: typing.Callable  # Deployer.report: a swap's poll
    report_rollback: typing.Callable  # Deployer.report_rollback: a rollback's poll
    bound: typing.Callable  # Deadline.bound: a hook's time within --deadline


class SwapSteps:
    """The swap's part of the one loop: its decision, its acts (new app up, old app down) and its checks.

    The checks before a scale-up or the delete: the step's traffic judged
    (--max-error-rate, --max-response-time) and --step-check; before a kill,
    the --pre-kill-hook.
    """

    doing = "deploying"  # for the deadline's message
    writing = "changing instances"  # for the locked message

    def __init__(self, plan, options, tools):
        self.plan, self.options, self.tools = plan, options, tools
        self.app_ids = (plan.new_id, plan.old_id)
        self.tally = Tally()  # the traffic since the last step's writes
        self.traffic_waiting_since = None  # when a step began waiting for enough traffic to judge
        self.taken = 0  # steps taken: written, or tried (the delete counts when it starts); the polls show the next

    def complete(self, new_app, old_app):
        if new_app is None:
            raise MarathonFailed(f"the new app {self.plan.new_id} disappeared from Marathon")
        if old_app is None:
            old_app = {"id": self.plan.old_id, "instances": 0, "tasks": [], "labels": {}}
        return new_app, old_app

    def reads_lbs(self, observation):
        return swap_reads_lbs(observation)

    def next_step(self, observation, waited_s):
        return decide_swap(observation, self.plan, waited_s, self.options.max_wait)

    def seen(self, observation):
        if self.options.analysing:
            self.tally = tally_traffic(self.tally, observation)

    def report(self, observation, step, waited_s):
        self.tools.report_poll(observation, step, waited_s, self.taken + 1)
        if step.forced:
            logger.warning("--max-wait (%g s) passed: going on with the old tasks in MAINT, drained or not",
                           self.options.max_wait)

    def waiting(self, step, waited_s, pause_s):
        self.tools.reporter.event("waiting", reason=step.wait, waited_s=round(waited_s, 3),
                                  next_poll_s=round(pause_s, 3))

    def finish(self, observation):
        logger.info("Hybrid deployment in place: new %s, old %s", summarise(observation.new_app),
                    summarise(observation.old_app))
        return ExitCode.OK

    def act(self, observation, step):
        tools, new_app, old_app = self.tools, observation.new_app, observation.old_app
        if (step.scale_to is not None or step.delete_old) and not self.gate(observation, step):
            tools.sleep(self.options.step_delay)
            return Acted.NOT_YET
        if step.delete_old:
            return self.delete_old(old_app)
        if step.kill:
            if self.options.pre_kill_hook:
                self.run_command("pre-kill hook", self.options.pre_kill_hook, old_app, step.kill, new_app,
                                 HookRefused, "not killing any task")
            killing = tools.reporter.before("killed", app=old_app["id"], tasks=list(step.kill), forced=step.forced)
            tools.confirm("Continue?")
            # no stop between the hook, the answer and the kill
            if not tools.write(self.writing, lambda: tools.marathon.kill_tasks(step.kill)):
                return Acted.NOT_SENT
            killing.done()
        if step.scale_to is not None:
            scaling = tools.reporter.before("scaled.up", app=new_app["id"], instances=step.scale_to)
            if not tools.write(self.writing, lambda: tools.marathon.scale_app(new_app["id"], step.scale_to)):
                return Acted.NOT_SENT
            scaling.done()
        return Acted.WROTE

    def delete_old(self, old_app):
        """The last step: the old app deleted, once the operator agrees and --save-previous kept it."""
        self.taken += 1
        logger.info("About to delete the old app %s", old_app["id"])
        self.tools.confirm("Continue?")
        self.tools.save_previous(old_app)
        if not self.tools.delete_app(old_app["id"], self.writing):
            return Acted.NOT_SENT
        logger.info("Deleted %s: the deployment is complete", old_app["id"])
        return ExitCode.OK

    def wrote(self, sent):
        """After a step's writes (``sent``: they went through): the pause, then the next step's traffic window."""
        if sent:
            self.tools.pause_after_write()
        self.tally = new_window(self.tally)
        self.taken += 1
        return sent

    def count_from(self, observation):
        """The tally's starting point: ``observation``, every marathon-lb's counters before the first step."""
        if observation is not None:
            self.tally = tally_traffic(Tally(), observation)

    def gate(self, observation, step):
        """Before a scale-up or the delete: judge the step's traffic, then run --step-check; False: wait for traffic."""
        options, new_app, old_app = self.options, observation.new_app, observation.old_app
        number = self.taken + 1
        if options.analysing:
            names = (colour_of(new_app) or new_app["id"], colour_of(old_app) or old_app["id"])
            verdict = judge_traffic(self.tally.new, self.tally.baseline, options.analysis_min_requests,
                                    options.max_error_rate, options.max_response_time, names)
            self.report_analysis(number, names, verdict)
            now = self.tools.clock.monotonic()
            since = now if self.traffic_waiting_since is None else self.traffic_waiting_since
            gate = traffic_gate(verdict.outcome, options.analysis_inconclusive, now - since, options.max_wait)
            if gate is Gate.FAIL and verdict.outcome == "fail":
                raise CheckFailed(f"the analysis stopped the release at step {number}: {verdict.reason}")
            if gate is Gate.FAIL:
                raise CheckFailed(f"the analysis could not judge step {number} (--analysis-inconclusive "
                                  f"fail): {verdict.reason}")
            if gate is Gate.WAIT:
                self.traffic_waiting_since = since
                self.tools.reporter.event("waiting", reason=f"traffic to judge: {verdict.reason}",
                                          waited_s=round(now - since, 3), next_poll_s=options.step_delay)
                return False
        self.traffic_waiting_since = None
        if options.step_check:
            # before the delete, the tasks that go are all the old app's
            tasks = [task["id"] for task in old_app.get("tasks") or []] if step.delete_old else step.kill
            self.run_command("step check", options.step_check, old_app, tasks, new_app, CheckFailed,
                             "the deployment stops")
        return True

    def report_analysis(self, number, names, verdict):
        """The analysis of step ``number``: a progress line and an ``analysis`` event."""
        colours = {}
        for role, name, traffic in (("new", names[0], self.tally.new), ("old", names[1], self.tally.baseline)):
            rtime_ms = traffic.rtime_ms
            colours[name] = {"role": role, "requests": traffic.requests, "failures": traffic.failures,
                             "rate": round(traffic.rate, 4),
                             "rtime_ms": None if rtime_ms is None else round(rtime_ms, 1)}
        self.tools.reporter.event("analysis", step=number, verdict=verdict.outcome, reason=verdict.reason,
                                  colours=colours)

    def run_command(self, what, command, old_app, task_ids, new_app, failure, refusal):
        """Run a hook or check with the old app, the task ids and the new app as JSON; ``failure`` unless it exits 0."""
        logger.info("Calling the %s %s", what, command)
        argv = [command, json.dumps(old_app), json.dumps(list(task_ids)), json.dumps(new_app)]
        try:
            result = subprocess.run(argv, timeout=self.tools.bound(HOOK_TIMEOUT_S), check=False)
        except subprocess.TimeoutExpired:
            raise failure(f"the {what} {command} did not finish in time") from None
        except OSError as exc:
            raise failure(f"the {what} {command} could not run: {exc.strerror}") from None
        if result.returncode != 0:
            raise failure(f"the {what} {command} exited with {result.returncode}: {refusal}")


class RollbackSteps:
    """The rollback's part of the one loop: the old app back to the target, the failed (new) app drained and deleted.

    Its observation holds the restored app as ``new_app`` and the failed one as ``old_app`` (None once gone).
    """

    doing = "rolling back"
    writing = "restoring the old app"

    def __init__(self, plan, max_wait_s, tools):
        self.plan, self.max_wait_s, self.tools = plan, max_wait_s, tools
        self.app_ids = (plan.old_id, plan.new_id)
        self.handed_over = False

    def complete(self, restored, failed):
        if restored is None:
            raise MarathonFailed(f"{self.plan.old_id} is gone: there is nothing to roll back to")
        return restored, failed

    def reads_lbs(self, observation):
        return rollback_reads_lbs(observation, self.plan.target, self.handed_over)

    def next_step(self, observation, waited_s):
        return decide_rollback(observation, self.plan.target, waited_s, self.max_wait_s, self.handed_over)

    def seen(self, observation):
        pass

    def report(self, observation, step, waited_s):
        if step.forced:
            logger.warning("--max-wait passed: deleting %s while HAProxy still drains it", self.plan.new_id)
        self.tools.report_rollback(observation, step, waited_s)

    def waiting(self, step, waited_s, pause_s):
        pass

    def finish(self, observation):
        return ExitCode.ROLLED_BACK

    def act(self, observation, step):
        tools, plan = self.tools, self.plan
        if step.scale_to is not None:
            scaling = tools.reporter.before("scaled.back", app=plan.old_id, instances=step.scale_to)
            if not tools.write(self.writing, lambda: tools.marathon.scale_app(plan.old_id, step.scale_to)):
                return Acted.NOT_SENT
            scaling.done()
        elif step.hand_over:
            return self.hand_over()
        elif step.delete_old:
            tools.save_previous(observation.old_app)
            return ExitCode.ROLLED_BACK if tools.delete_app(plan.new_id, self.writing) else Acted.NOT_SENT
        return Acted.WROTE

    def hand_over(self):
        """Make marathon-lb treat the restored app as the new one, so that it drains the failed app.

        marathon-lb calls "new" the app scaled last; Marathon keeps
        ``lastScalingAt`` on a scale to the same count, so scale up by one and
        at once back (forced over the first deployment): Marathon stops the
        extra task while it is still staging, before any marathon-lb routes it.
        """
        plan, tools = self.plan, self.tools
        marathon, reporter = tools.marathon, tools.reporter
        scaling = reporter.before("scaled.hand_over", app=plan.old_id, instances=plan.target + 1, _drains=plan.new_id)
        if not tools.write(self.writing, lambda: marathon.scale_app(plan.old_id, plan.target + 1)):
            return Acted.NOT_SENT
        scaling.done()
        if not tools.write(self.writing, lambda: marathon.scale_app(plan.old_id, plan.target, force=True)):
            return Acted.NOT_SENT
        reporter.emit("scaled", app=plan.old_id, instances=plan.target)
        self.handed_over = True
        return Acted.WROTE

    def wrote(self, sent):
        return False  # no pause: the next poll comes at once, and waits as the decision says


def _describe_step(step):
    if step.done:
        return "hybrid deployment in place"
    if step.delete_old:
        return "deleting the old app"
    parts = []
    if step.kill:
        parts.append(f"killing {len(step.kill)}")
    if step.scale_to is not None:
        parts.append(f"scaling to {step.scale_to}")
    return ", ".join(parts)


def _lb_counts(lb):
    pids = None if lb.pids is None else len(lb.pids)  # the poll event counts them; --status lists them
    if lb.listeners is None:
        return {"url": lb.url, "pids": pids, "error": lb.error}
    return {
        "url": lb.url,
        "pids": pids,
        "up": sum(1 for listener in lb.listeners if listener.up),
        "maint": sum(1 for listener in lb.listeners if listener.maint),
        "drained": sum(1 for listener in lb.listeners if listener.drained),
    }


class StallWatch:
    """Stops a swap that makes no progress for --stall-timeout seconds.

    Waiting for HAProxy to drain sessions does not count: --max-wait bounds it.
    Nor does waiting for a Marathon that does not answer: the wait has its own bound.
    """

    def __init__(self, clock, timeout_s):
        self.clock = clock
        self.timeout_s = timeout_s
        self.signature = None
        self.since = clock.monotonic()

    def check(self, observation, step):
        new_app, old_app = observation.new_app, observation.old_app
        healthy = sum(1 for task in new_app.get("tasks") or [] if is_routable(new_app, task))
        signature = (new_app.get("instances"), old_app.get("instances"), healthy, len(old_app.get("tasks") or []))
        now = self.clock.monotonic()
        self.since += observation.marathon_wait_s
        if signature != self.signature or not step.wait or step.draining:
            self.signature, self.since = signature, now
            return
        if not self.timeout_s or now - self.since < self.timeout_s:
            return
        message = (f"no progress for {self.timeout_s:g} s: {step.wait} "
                   f"(new {summarise(new_app)}, old {summarise(old_app)} running and healthy)")
        raise LbFailed(message) if step.lb_failed else Stalled(message)


# ---------------------------------------------------------------------------
# Status: --status and --watch read a group without writing
# ---------------------------------------------------------------------------

def resume_command(argv, action="--resume"):
    """This command with ``action`` (--resume, or --complete-prev to go back) instead of any role flag.

    Secrets are left out: '***' stands for them.
    """
    words, skip = ["zdd"], False
    for word in argv:
        if skip:
            words.append("'***'")
            skip = False
            continue
        secret_flag = _secret_flag(word)
        if secret_flag and "=" in word:
            words.append(word.split("=", 1)[0] + "='***'")
            continue
        if secret_flag:
            words.append(word)
            skip = True
            continue
        if word in ROLE_FLAGS:
            continue
        words.append(shlex.quote(_redact_word(word)))
    return " ".join(words + [action])


def _secret_flag(word):
    """The secret flag ``word`` names, also abbreviated as argparse accepts it, or None."""
    name = word.split("=", 1)[0]
    if len(name) <= 2 or not name.startswith("--"):
        return None
    return next((flag for flag in SECRET_FLAGS if flag.startswith(name)), None)


_URL_PASSWORD = re.compile(r"(://[^/@:]*):[^/]*@")


def _redact_word(word):
    """``word`` with the password of any URL in it as ***: ``-m http://user:***@host``, ``-mhttp://...``."""
    return _URL_PASSWORD.sub(r"\1:***@", word)


@dataclasses.dataclass(frozen=True)
class GroupReading:
    """Everything --status read, prepared for ``group_status`` (no I/O is left to do)."""

    group: str
    backend: str
    apps: tuple = ()  # the group's apps with their tasks, oldest deployment first
    lbs: tuple = ()  # one LbView per marathon-lb
    addresses: dict = dataclasses.field(default_factory=dict)  # task host -> its address (None: no address)
    error: str = None  # Marathon did not answer: nothing else was read


@dataclasses.dataclass(frozen=True)
class AppState:
    """One app of the group as --status shows it."""

    id: str
    colour: str
    role: str  # "new" or "old" with two apps or more (as --resume takes them), else None
    instances: int  # what Marathon is asked to run now
    running: int  # tasks in TASK_RUNNING
    healthy: int  # tasks marathon-lb routes: running and, with health checks, alive
    target: int
    started_at: str
    hybrid_goal: int
    marathon_deployment: bool


@dataclasses.dataclass(frozen=True)
class ListenerCounts:
    """How many of one app's listeners a marathon-lb shows UP, in MAINT and drained."""

    app: str
    colour: str
    up: int
    maint: int
    drained: int


@dataclasses.dataclass(frozen=True)
class GroupStatus:
    """The state of one deployment group: the ``status`` event, and what the text view shows."""

    group: str
    backend: str
    state: str  # empty, at_rest, in_progress, stuck, hybrid or unreadable
    summary: str
    apps: tuple = ()
    lbs: tuple = ()  # one LbView per marathon-lb, as read
    step: int = None
    steps: int = None
    new_schedule: tuple = ()
    old_schedule: tuple = ()
    waiting: str = None
    next_step: str = None
    finish_command: str = None
    back_command: str = None
    servers: dict = dataclasses.field(default_factory=dict, repr=False)  # app id -> its tasks' server names

    def fields(self):
        """The ``status`` event's fields: each marathon-lb's as in the text view, not the whole LbView read."""
        fields = dataclasses.asdict(dataclasses.replace(self, lbs=(), servers={}))
        del fields["servers"]  # only to count the listeners by
        fields["lbs"] = tuple(self._lb_fields(lb) for lb in self.lbs)
        return fields

    def _lb_fields(self, lb):
        """One marathon-lb in the event: what the text shows, never its ``source`` (credentials) nor timing."""
        counts, unmatched = self.listener_counts(lb)
        return {"url": lb.url, "pids": lb.pids, "reloading": lb.reloading, "error": lb.error,
                "listeners": None if counts is None else tuple(dataclasses.asdict(each) for each in counts),
                "unmatched": unmatched}

    def listener_counts(self, lb):
        """``lb``'s listeners counted per app of the group (None: no stats read), and how many match no task of it."""
        listeners = lb.listeners or ()
        counts = []
        for app in self.apps:
            own = [listener for listener in listeners if listener.svname in self.servers[app.id]]
            counts.append(ListenerCounts(app=app.id, colour=app.colour, up=sum(1 for x in own if x.up),
                                         maint=sum(1 for x in own if x.maint),
                                         drained=sum(1 for x in own if x.drained)))
        known = set().union(*self.servers.values())
        unmatched = sum(1 for listener in listeners if listener.svname not in known)
        return (None if lb.listeners is None else tuple(counts)), unmatched


def read_group(marathon, lbs, app, pids_known=(), resolve=resolve_host):
    """Read the group of ``app`` from Marathon and every marathon-lb; only GET requests.

    Each marathon-lb's stats, asked GET_ATTEMPTS times (a status has no next
    poll to wait for), then its PIDs, unless its URL is in ``pids_known``:
    ``MarathonLbClient.with_pids`` says why they are read sparingly.
    """
    group = deployment_group(app)
    listed = group_apps(marathon.list_apps(), group)
    apps = tuple(sort_deploys(found for found in (marathon.get_app(a["id"], missing_ok=True) for a in listed)
                              if found is not None))
    port = ((apps[-1].get("labels") or {}).get(LABEL_PORT) if apps else None) or service_port(app)
    backend = backend_name(group, port)
    hosts = {task.get("host") or "" for found in apps for task in found.get("tasks") or []}
    views = lbs.with_pids(lbs.observe(backend, attempts=GET_ATTEMPTS, for_status=True), skip=pids_known,
                          for_status=True)
    return GroupReading(group=group, backend=backend, apps=apps, lbs=views,
                        addresses={host: resolve(host) for host in hosts})


def group_status(reading, options):
    """The state of a group, from what --status read: the apps, every marathon-lb, one verdict."""
    if reading.error is not None:
        return GroupStatus(group=reading.group, backend=reading.backend, state="unreadable", summary=reading.error)
    apps = reading.apps
    roles = {apps[-1]["id"]: "new", apps[-2]["id"]: "old"} if len(apps) >= 2 else {}
    names = {found["id"]: {name for name in (task_server_name(found, task, reading.addresses.get)
                                             for task in found.get("tasks") or []) if name}
             for found in apps}
    standing = _group_standing(reading, options)
    return GroupStatus(group=reading.group, backend=reading.backend,
                       apps=tuple(_app_state(found, roles.get(found["id"])) for found in apps),
                       lbs=reading.lbs, servers=names, **standing)


def _app_state(app, role):
    tasks = app.get("tasks") or []
    return AppState(id=app["id"], colour=colour_of(app), role=role, instances=app.get("instances", 0),
                    running=sum(1 for task in tasks if task.get("state", "TASK_RUNNING") == "TASK_RUNNING"),
                    healthy=sum(1 for task in tasks if is_routable(app, task)), target=deployment_target(app),
                    started_at=(app.get("labels") or {}).get(LABEL_STARTED_AT), hybrid_goal=hybrid_goal_of(app),
                    marathon_deployment=bool(app.get("deployments")))


def _group_standing(reading, options):
    """state, summary, step and commands of a group (the GroupStatus fields past the lists)."""
    apps, group = reading.apps, reading.group
    if not apps:
        return {"state": "empty", "summary": f"no app in group {group}: a deployment creates its first colour, blue"}
    if len(apps) == 1:
        only = apps[0]
        healthy = sum(1 for task in only.get("tasks") or [] if is_routable(only, task))
        moving = ", its Marathon deployment is in progress" if only.get("deployments") else ""
        return {"state": "at_rest", "summary": f"at rest: {only['id']} ({colour_of(only) or 'no colour'}) alone "
                f"serves the group, {healthy}/{only.get('instances', 0)} healthy{moving}"}
    new_app, old_app = apps[-1], apps[-2]
    argv = [word for word in options.argv if not _status_flag(word)]
    finish, back = resume_command(argv, "--resume"), resume_command(argv, "--complete-prev")
    hybrid_goal = hybrid_goal_of(new_app)
    converging = hybrid_goal and new_app.get("instances", 0) > hybrid_goal  # a --complete-cur stopped halfway
    if converging:
        finish = resume_command(argv, "--complete-cur")
    plan = plan_swap(new_app, old_app, options, hybrid=bool(hybrid_goal) and not converging)
    observation = named(Observation(new_app, old_app, reading.lbs), reading.addresses.get)
    step = decide_swap(observation, plan, 0.0, math.inf)
    new_colour, old_colour = colour_of(new_app) or new_app["id"], colour_of(old_app) or old_app["id"]
    extra = f" ({len(apps) - 2} older app(s) of the group are left alone)" if len(apps) > 2 else ""
    if step.done:
        return {"state": "hybrid", "finish_command": resume_command(argv, "--complete-cur"), "back_command": back,
                "summary": f"hybrid: {new_colour} {new_app.get('instances', 0)} (its goal) and {old_colour} "
                f"{old_app.get('instances', 0)} serve together, of {plan.target}{extra}"}
    news, olds = scale_schedule(plan, min(options.initial_instances, plan.goal), plan.target)
    at = max(1, sum(1 for count in news if count <= new_app.get("instances", 0)))
    fields = {"step": at, "steps": len(news), "new_schedule": tuple(news), "old_schedule": tuple(olds),
              "finish_command": finish, "back_command": back}
    if step.wait:
        return dict(fields, state="in_progress", waiting=step.wait,
                    summary=f"deployment in progress at step {at} of {len(news)}, waiting: {step.wait}{extra}")
    doing = _describe_step(step)
    return dict(fields, state="stuck", next_step=doing,
                summary=f"deployment stopped at step {at} of {len(news)}: nothing to wait for, and the next step "
                f"({doing}) is a write only a zdd run makes{extra}")


def _status_flag(word):
    """Whether ``word`` is --status or --watch, also abbreviated as argparse accepts them (``--stat``)."""
    return len(word) > 3 and word.startswith("--") and any(flag.startswith(word) for flag in STATUS_FLAGS)


def render_status(status):
    """The text view of a GroupStatus, as lines."""
    lines = [f"group {status.group}, HAProxy backend {status.backend}"]
    if status.state == "unreadable":
        return lines + [f"verdict: unknown: {status.summary}"]
    lines.append("")
    if status.apps:
        rows = [("COLOUR", "APP", "ROLE", "RUNNING", "HEALTHY", "INSTANCES", "TARGET", "STARTED AT", "")]
        for app in status.apps:
            notes = [f"hybrid goal {app.hybrid_goal}"] if app.hybrid_goal else []
            notes += ["Marathon deployment in progress"] if app.marathon_deployment else []
            rows.append((app.colour or "-", app.id, app.role or "-", app.running, app.healthy, app.instances,
                         app.target, (app.started_at or "-")[:19], ", ".join(notes)))
        lines += _table(rows)
    else:
        lines.append("no app in the group")
    for lb in status.lbs:
        lines += [""] + _lb_lines(status, lb)
    lines.append("")
    if status.new_schedule:
        new_app = next(app for app in status.apps if app.role == "new")
        old_app = next(app for app in status.apps if app.role == "old")
        lines.append(f"schedule: {new_app.colour or new_app.id} {_marked(status.new_schedule, new_app.instances)}, "
                     f"{old_app.colour or old_app.id} {_marked(status.old_schedule, old_app.instances)}")
    lines.append(f"verdict: {status.summary}")
    if status.finish_command:
        lines.append(f"to finish:  {status.finish_command}")
    if status.back_command:
        lines.append(f"to go back: {status.back_command}")
    return lines


def _lb_lines(status, lb):
    """One marathon-lb in the text view: its PIDs, then its listeners counted per app of the group."""
    if lb.listeners is None:
        return [f"marathon-lb {lb.url}: did not answer: {lb.error}"]
    if lb.pids is not None:
        pids = f"PIDs {' '.join(map(str, lb.pids))} ({'reloading' if lb.reloading else 'not reloading'})"
    elif lb.error is not None:
        pids = f"PIDs unknown: {lb.error}"
    else:
        pids = "PIDs not read again (a read forks inside HAProxy)"
    lines = [f"marathon-lb {lb.url}: {pids}"]
    counts, unmatched = status.listener_counts(lb)
    rows = [(f"  {each.colour or '-'}", each.app, f"UP {each.up}", f"MAINT {each.maint}", f"drained {each.drained}")
            for each in counts]
    lines += _table(rows) if rows else []
    if unmatched:
        lines.append(f"  {unmatched} listener(s) match no task of the group")
    return lines


def _marked(schedule, current):
    """'1 -> [2] -> 3': a schedule with the current count in brackets (the first time it appears)."""
    words, marked = [], False
    for count in schedule:
        words.append(f"[{count}]" if count == current and not marked else str(count))
        marked = marked or count == current
    return " -> ".join(words)


def _table(rows):
    """Rows of cells as lines, every column padded to its widest cell; numbers aligned right."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [str(cell).rjust(width) if isinstance(cell, int) else str(cell).ljust(width)
                 for cell, width in zip(row, widths)]
        lines.append("  ".join(cells).rstrip())
    return lines


def show_status(deployer, app):
    """--status: read the group and show it; --watch: again every --step-delay until a signal stops it.

    A one-shot status fails (exit 6 or 5) when Marathon or a marathon-lb did
    not answer, after showing what it could read. A watch shows failures and
    goes on. It reads each marathon-lb's /_haproxy_getpids once, on the first
    refresh that marathon-lb answers: a watch left open for an hour would
    otherwise fork inside HAProxy 720 times at 5 s.
    """
    options, reporter, out = deployer.options, deployer.reporter, deployer.out
    block = TerminalBlock(out) if options.watch and not reporter.enabled and is_terminal(out) else None
    refresh, pids_known = 0, set()  # pids_known: marathon-lbs whose PIDs this run has read
    while True:
        try:
            reading = read_group(deployer.marathon, deployer.lbs, app, pids_known, resolve=deployer.resolve)
            pids_known.update(lb.url for lb in reading.lbs if lb.listeners is not None)  # answered: PIDs tried
        except MarathonFailed as exc:
            if not options.watch:
                raise
            group = deployment_group(app)
            reading = GroupReading(group=group, backend=backend_name(group, service_port(app)), error=str(exc))
        status = group_status(reading, options)
        if reporter.enabled:
            reporter.event("status", **status.fields())
        elif block is not None:
            block.draw(render_status(status) + [f"(refreshed every {options.step_delay:g} s; Ctrl-C to stop)"])
        else:
            out.write(("\n" if refresh else "") + "\n".join(render_status(status)) + "\n")
            out.flush()
        refresh += 1
        if not options.watch:
            failed = [lb for lb in status.lbs if lb.error is not None]
            if failed:
                raise LbFailed(f"marathon-lb {failed[0].url} did not answer: {failed[0].error}")
            return ExitCode.OK
        deployer.sleep(options.step_delay)


# ---------------------------------------------------------------------------
# Live view: a deployment's progress redrawn on a terminal
# ---------------------------------------------------------------------------

def start_live_view(options, stream):
    """The LiveHandler that replaces the terminal's log handler, or None when there is no live view.

    Only for text output on a terminal: in CI (not a terminal) and with
    --output json the log stays line by line.
    """
    if options.output != "text" or options.status or not is_terminal(stream):
        return None
    plain = next((handler for handler in logger.handlers if type(handler) is logging.StreamHandler
                  and handler.stream is stream), None)
    if plain is None:
        return None
    live = LiveHandler(stream, plain.formatter)
    logger.handlers[logger.handlers.index(plain)] = live
    return live


class LiveDeployer(Deployer):
    """A Deployer whose progress, on a terminal, is one block redrawn at every poll."""

    def __init__(self, live, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.live = live
        self.schedule = None  # (new counts, old counts) from the first poll on
        self.step_started = (None, 0.0)  # (step number, monotonic s when it began)

    def report(self, observation, step, waited_s, number):
        self._absorbing(super().report, observation, step, waited_s, number)
        if self.schedule is None:
            self.schedule = scale_schedule(self.plan, observation.new_app.get("instances", 0),
                                           observation.old_app.get("instances", 0))
        now = self.clock.monotonic()
        if self.step_started[0] != number:
            self.step_started = (number, now)
        self.live.block.draw(live_lines(observation, step, number, now - self.step_started[1],
                                        self.schedule, self.live.poll_line))

    def report_rollback(self, observation, step, waited_s):
        self._absorbing(super().report_rollback, observation, step, waited_s)
        self.live.block.draw(rollback_lines(observation, step, waited_s, self.live.poll_line))

    def _absorbing(self, report, *args):
        """``report(*args)`` with the line it logs kept for the block (the poll's own line), not printed."""
        self.live.poll_line = None
        self.live.absorbing = True
        try:
            report(*args)
        finally:
            self.live.absorbing = False

    def confirm(self, question):
        if not self.options.force:
            self.live.block.clear()  # the prompt and the answer scroll like permanent lines
        super().confirm(question)


def live_lines(observation, step, number, step_waited_s, schedule, poll_line):
    """The live block: the step, both colours against the schedule, what it waits for, the last poll line."""
    new_app, old_app = observation.new_app, observation.old_app
    news, olds = schedule
    doing = f"waiting: {step.wait}" if step.wait else _describe_step(step)
    of = f" of {len(news)}" if number <= len(news) else ""
    healthy = sum(1 for task in new_app.get("tasks") or [] if is_routable(new_app, task))
    old_healthy = sum(1 for task in old_app.get("tasks") or [] if is_routable(old_app, task))
    lines = [f"step {number}{of}, {step_waited_s:.0f} s so far: {doing}",
             f"  new {colour_of(new_app) or new_app['id']}: {healthy} healthy of {new_app.get('instances', 0)}, "
             f"schedule {_marked(news, new_app.get('instances', 0))}",
             f"  old {colour_of(old_app) or old_app['id']}: {old_healthy} healthy of {old_app.get('instances', 0)}, "
             f"schedule {_marked(olds, old_app.get('instances', 0))}"]
    return lines + _live_lb_lines(observation) + ([poll_line] if poll_line else [])


def _rollback_doing(step):
    if step.wait:
        return f"waiting: {step.wait}"
    if step.done:
        return "rolled back"
    if step.delete_old:
        return "deleting the failed app"
    if step.hand_over:
        return "scaling the restored app up one and back"
    return f"scaling back to {step.scale_to}"


def rollback_lines(observation, step, waited_s, poll_line):
    """The live block in a rollback: what it does, the restored and the failed app, each marathon-lb, its poll line."""
    doing = _rollback_doing(step)
    lines = [f"rolling back, {waited_s:.0f} s so far: {doing}", f"  restored {summarise(observation.new_app)}",
             f"  failed {summarise(observation.old_app)}"]
    return lines + _live_lb_lines(observation) + ([poll_line] if poll_line else [])


def _live_lb_lines(observation):
    """Each marathon-lb in the live block: what the poll line counts (``_lb_counts``), or why it did not answer."""
    lines = []
    for lb in observation.lbs:
        if lb.listeners is None:
            lines.append(f"  marathon-lb {lb.url}: {lb.error}")
            continue
        counts = _lb_counts(lb)
        lines.append(f"  marathon-lb {lb.url}: {counts['pids']} PIDs, UP {counts['up']}, MAINT {counts['maint']}"
                     f", drained {counts['drained']}")
    return lines


def deployer_for(live):
    """What makes the Deployer: the live one when there is a live view."""
    if live is None:
        return Deployer

    def make(*args, **kwargs):
        return LiveDeployer(live, *args, **kwargs)

    return make


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one: not for required options, nor off for flags."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr."""

    def error(self, message):
        raise UsageError(f"{message} (see zdd --help)")


def _non_negative(kind):
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r} is negative")
        return value

    convert.__name__ = kind.__name__
    return convert


def _log_level(text):
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def build_parser():
    parser = _Parser(
        prog="zdd",
        description="Zero-downtime blue/green deployment of a Marathon app behind marathon-lb.",
        formatter_class=_HelpFormatter,
        epilog="Every option can also be set in an environment variable ZDD_<OPTION> "
        "(e.g. ZDD_MARATHON, ZDD_MARATHON_LB, ZDD_STEP_DELAY); flags win. "
        "Exit codes: see zdd --longhelp.",
    )
    for add_flags in (_add_what_where_flags, _add_schedule_flags, _add_access_flags, _add_judging_flags):
        add_flags(parser.add_argument)
    return parser


def _add_what_where_flags(add):
    """The flags of what to deploy, to which Marathon and marathon-lbs, and whether to ask."""
    add("--longhelp", action="store_true", help="print how zdd works and exit")
    add("--version", action="version", version=f"zdd {__version__}")
    add("--marathon", "-m", action="append",
        help="[required] Marathon URL, e.g. http://marathon.mesos:8080; repeat it or separate with commas to "
        "name several masters: a request one does not answer goes to the next")
    add("--marathon-lb", "-l", action="append",
        help="[required] marathon-lb stats URL, e.g. http://marathon-lb.marathon.mesos:9090; "
        "repeat it or separate with commas to name each instance")
    add("--json", "-j", help="[required] the app JSON file")
    add("--dry-run", "-d", action="store_true", help="print the final app definition and the plan, write nothing")
    add("--force", "-f", action="store_true", help="do not prompt")
    add("--skip-unchanged", action="store_true",
        help="when the new definition does not differ from the running colour's (the plan's diff: fields zdd "
        "sets and Marathon's defaults left out) and no Marathon deployment runs on it, say so and exit 0 "
        "without writing anything")


def _add_schedule_flags(add):
    """The flags of the steps' pace and size, and the role of a run (resume, hybrid, complete)."""
    add("--step-delay", "-s", type=_non_negative(float), default=DEFAULT_STEP_DELAY_S,
        help="the longest wait in seconds between two looks while something is not ready: after its own write, "
        f"or when what it waits for changed, zdd looks again after {FIRST_LOOK_AGAIN_S:g} s, then "
        f"{LOOK_AGAIN_GROWTH:g} times later each time, up to this")
    add("--initial-instances", "-i", type=_non_negative(int), default=1,
        help="first instance count of the new app (capped at the target)")
    add("--linear-increase", type=_non_negative(int), default=0,
        help="scale the new app up by this many instances per step (0: by half again)")
    add("--resume", "-r", action="store_true", help="resume a deployment that stopped halfway")
    add("--max-wait", "-w", type=_non_negative(float), default=DEFAULT_MAX_WAIT_S,
        help="seconds to wait for HAProxy to drain old tasks in each step")
    add("--new-instances", "-n", type=_non_negative(int), default=0,
        help="hybrid: number of new instances to end with, next to the old ones")
    add("--complete-cur", "-c", action="store_true", help="hybrid: converge to the current (new) app")
    add("--complete-prev", "-p", action="store_true", help="hybrid: converge back to the previous (old) app")
    add("--pre-kill-hook", help="executable run before each kill with 3 JSON arguments: the old app, "
        "the task ids to kill, the new app; a non-zero exit stops the deployment")


def _add_access_flags(add):
    """The flags of logging, credentials and the time limits of requests and of the run."""
    add("--syslog-socket", default=DEFAULT_SYSLOG_SOCKET, help="syslog socket; /dev/null disables syslog")
    add("--log-format", default=DEFAULT_LOG_FORMAT, help="log line format")
    add("--log-level", type=_log_level, default="DEBUG", help="log level")
    add("--marathon-auth-credential-file", help="file holding user:password for Marathon")
    add("--auth-credentials", help="user:password for Marathon (prefer ZDD_AUTH_CREDENTIALS or the file)")
    add("--dcos-auth-credentials",
        help="DC/OS service-account JSON {uid, private_key, login_endpoint}, or a file holding it; "
        "$DCOS_SERVICE_ACCOUNT_CREDENTIAL when not given")
    add("--marathon-ca-cert", help="CA bundle for HTTPS to Marathon and the DC/OS login")
    add("--format-json", help="JSON file of variables substituted as {name} into the app JSON")
    add("--request-timeout", type=_non_negative(float), default=DEFAULT_REQUEST_TIMEOUT_S,
        help="seconds for any one HTTP answer, whole: connecting, the headers and the entire body")
    add("--deadline", type=_non_negative(float), default=DEFAULT_DEADLINE_S,
        help="seconds the whole run may take, a request in flight included (0: no deadline)")
    add("--stall-timeout", type=_non_negative(float), default=DEFAULT_STALL_TIMEOUT_S,
        help="stop when the deployment makes no progress, or Marathon does not answer, for this many seconds "
        "(0: never)")


def _add_judging_flags(add):
    """The flags of output, failure handling, --status, and the checks that judge a step."""
    add("--output", choices=("text", "json"), default="text",
        help="json: JSON Lines events on stdout instead of the app definition")
    add("--on-failure", choices=("stop", "rollback"), default="stop",
        help="what to do when a deployment fails after the new app exists")
    add("--status", action="store_true",
        help="show the group's apps, marathon-lbs, a verdict and the commands to finish; write nothing")
    add("--watch", action="store_true", help="with --status: show it again every --step-delay until Ctrl-C")
    add("--min-step-interval", type=_non_negative(float), default=0.0,
        help="least seconds from one step's writes to the next step's, e.g. a bake time (0: as soon as ready)")
    add("--max-error-rate", metavar="R", type=_non_negative(float), default=None,
        help="fail the release when, at a step, more than this share (0 to 1) of the new colour's requests "
        "failed (5xx, response or connection errors) and more than the old colour's (exit 15)")
    add("--analysis-min-requests", metavar="N", type=_non_negative(int), default=DEFAULT_ANALYSIS_MIN_REQUESTS,
        help="requests to the new colour a step needs before the analysis judges it")
    add("--max-response-time", metavar="MS", type=_non_negative(float), default=None,
        help="fail the release when the new colour's mean HAProxy response time (rtime, ms) at a step is above "
        "this and above the old colour's (exit 15)")
    add("--analysis-inconclusive", choices=INCONCLUSIVE_CHOICES, default="continue",
        help="a step with too few requests to judge: go on, wait up to --max-wait for them, or fail (exit 15)")
    add("--step-check", metavar="CMD",
        help="executable run before each scale-up of the new app and before the old app is deleted, "
        "with the pre-kill hook's 3 JSON arguments; a non-zero exit fails the release (exit 15)")
    add("--save-previous", metavar="FILE",
        help="before deleting an app (the old one; in a rollback, the failed new one), write it to FILE as an "
        "app JSON that zdd -j FILE deploys again: the undo (exit 16 when FILE cannot be written)")
    add("--reload-check", choices=RELOAD_CHECKS, default="auto",
        help="how zdd makes sure no old HAProxy worker still sends requests to the tasks it kills: grace (the "
        "stats page only: wait --reload-grace after each marathon-lb change), getpids (read /_haproxy_getpids, "
        "which forks inside marathon-lb's HAProxy), auto (grace for an HTTP backend, getpids for TCP)")
    add("--reload-grace", metavar="S", type=_non_negative(float), default=DEFAULT_RELOAD_GRACE_S,
        help="with the grace: the longest request of the service in seconds, from its first byte to the end of "
        "its answer: how long an old HAProxy worker may still serve a request it began before a reload")


def _environment_values(parser, environ):
    """Option values from ZDD_* variables, converted as their flags would be.

    They are set on the namespace before parsing, so a flag given on the
    command line replaces them, and --help never shows them (they may be
    secrets).
    """
    values = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version", "longhelp"):
            continue
        variable = ENV_PREFIX + action.dest.upper()
        text = environ.get(variable)
        if text is None:
            continue
        if action.nargs == 0:
            values[action.dest] = text.strip().lower() in ("1", "true", "yes", "on")
            continue
        try:
            value = action.type(text) if action.type else text
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise UsageError(f"{variable}: {exc}") from None
        if action.choices and value not in action.choices:
            raise UsageError(f"{variable} must be one of {', '.join(action.choices)}")
        # an appending flag would add to the variable's value: keep it aside
        values["env_" + action.dest if isinstance(action, argparse._AppendAction) else action.dest] = value
    return values


def _check_url(url, what):
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket: "http://[::1"
        raise InvalidArgs(f"{what} is not a valid URL ({exc}): {_redact_word(url)!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgs(f"{what} must be an http:// or https:// URL with a host, not {redact_url(url)!r}")
    try:
        _ = parts.port  # urllib checks the port only when asked
    except ValueError:
        raise InvalidArgs(f"{what} has an invalid port: {redact_url(url)!r}") from None
    return url


def _url_list(items, flag):
    """The URLs of a flag given several times, each possibly a comma-separated list, checked."""
    urls = tuple(url.strip() for item in items for url in item.split(",") if url.strip())
    if not urls:
        raise InvalidArgs(f"{flag} names no URL")
    return tuple(_check_url(url, flag) for url in urls)


def _split_credentials(text, source):
    user, sep, password = text.strip("\n").partition(":")
    if not sep or not user:
        raise InvalidArgs(f"{source} must have the form user:password")
    return user, password


def _read_text(path, what, error=InvalidArgs):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text") from None


def _dcos_credentials(text):
    """The service account from its JSON text, or from the file named by ``text`` (not starting with '{')."""
    source = "the DC/OS credentials"
    if not text.lstrip().startswith("{"):
        if not os.path.isfile(text):
            raise InvalidArgs("the DC/OS credentials are neither JSON text nor the name of an existing file")
        source = f"the DC/OS credentials file {text}"
        text = _read_text(text, "the DC/OS credentials file")
    try:
        credentials = json.loads(text)
    except ValueError:
        raise InvalidArgs(f"{source} is not valid JSON") from None
    keys = ("uid", "private_key", "login_endpoint")
    valid = isinstance(credentials, dict) and all(isinstance(credentials.get(k), str) and credentials[k] for k in keys)
    if not valid:
        raise InvalidArgs(f"{source} must be a JSON object with uid, private_key and login_endpoint")
    _check_url(credentials["login_endpoint"], "the DC/OS login_endpoint")
    return credentials


def parse_options(argv, environ=None):
    """Options from the command line and the environment; ``None`` after --longhelp."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv, argparse.Namespace(**_environment_values(parser, environ)))
    for name in ("marathon", "marathon_lb"):  # a flag replaces its variable
        if getattr(args, name) is None and getattr(args, "env_" + name, None):
            setattr(args, name, [getattr(args, "env_" + name)])
    args.dcos_auth_credentials = args.dcos_auth_credentials or environ.get("DCOS_SERVICE_ACCOUNT_CREDENTIAL")
    if args.longhelp:
        return None
    for name in ("marathon", "marathon_lb", "json"):
        if not getattr(args, name):
            raise UsageError(f"argument --{name.replace('_', '-')} is required (see zdd --help)")
    if args.complete_cur and args.complete_prev:
        raise InvalidArgs("--complete-cur and --complete-prev cannot be used together")
    if args.watch and not args.status:
        raise InvalidArgs("--watch goes with --status")
    marathon = _url_list(args.marathon, "--marathon")
    lb = _url_list(args.marathon_lb, "--marathon-lb")
    auth = None
    if args.auth_credentials:
        auth = _split_credentials(args.auth_credentials, "--auth-credentials")
    elif args.marathon_auth_credential_file:
        text = _read_text(args.marathon_auth_credential_file, "the credential file")
        auth = _split_credentials(text.strip(), "the credential file")
    dcos = _dcos_credentials(args.dcos_auth_credentials) if args.dcos_auth_credentials else None
    if args.pre_kill_hook and not (os.path.isfile(args.pre_kill_hook) and os.access(args.pre_kill_hook, os.X_OK)):
        raise InvalidArgs(f"the pre-kill hook {args.pre_kill_hook} is not an executable file")
    if args.step_check and not (os.path.isfile(args.step_check) and os.access(args.step_check, os.X_OK)):
        raise InvalidArgs(f"the step check {args.step_check} is not an executable file")
    if args.max_error_rate is not None and args.max_error_rate > 1:
        raise InvalidArgs(f"--max-error-rate is a share from 0 to 1, not {args.max_error_rate:g}")
    if args.marathon_ca_cert and not os.path.isfile(args.marathon_ca_cert):
        raise InvalidArgs(f"the CA bundle {args.marathon_ca_cert} does not exist")
    if args.save_previous and not os.path.isdir(os.path.dirname(os.path.abspath(args.save_previous))):
        raise InvalidArgs(f"--save-previous: the directory of {args.save_previous} does not exist")
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Options) if hasattr(args, f.name)}
    values.update(marathon=marathon, marathon_lb=lb, auth=auth, dcos_credentials=dcos, argv=tuple(argv))
    return Options(**values)


def load_app(options):
    """The app JSON, with --format-json variables substituted, validated."""
    text = _read_text(options.json, "the app JSON", error=BadApp)
    if options.format_json:
        try:
            variables = json.loads(_read_text(options.format_json, "the --format-json variables"))
        except ValueError:
            variables = None
        if not isinstance(variables, dict):
            raise InvalidArgs("the --format-json file must hold a JSON object of variables")
        text = format_app_text(text, variables)
    app = parse_app(text)
    validate_app(app)
    if read_only_fields(app) and not options.status:
        logger.warning("Left out of the new app: %s (fields Marathon only returns; it refuses them in an app)",
                       ", ".join(read_only_fields(app)))
    return app


def setup_logging(options, stream):
    logger.handlers.clear()
    logger.setLevel(options.log_level)
    logger.propagate = False
    formatter = logging.Formatter(options.log_format)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    socket_path = options.syslog_socket
    if socket_path and socket_path != "/dev/null":
        if not os.path.exists(socket_path):
            logger.warning("syslog socket %s does not exist; logging to stderr only", socket_path)
            return
        try:
            syslog = logging.handlers.SysLogHandler(address=socket_path)
        except OSError as exc:
            logger.warning("cannot use syslog socket %s (%s); logging to stderr only", socket_path, exc.strerror)
            return
        syslog.setFormatter(formatter)
        logger.addHandler(syslog)


def _terminal_ask(question, stdin, stderr):
    stderr.write(question + " [Y/n] ")
    stderr.flush()
    while True:
        answer = stdin.readline()
        if not answer:
            return False
        answer = answer.strip().lower()
        if answer in ("", "y", "ye", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        stderr.write("Please answer yes or no: ")
        stderr.flush()


def make_session(options, clock):
    session = requests.Session()
    session.verify = options.marathon_ca_cert or True
    session.headers["User-Agent"] = f"zdd/{__version__}"
    session.trust_env = True
    if options.auth:
        session.auth = options.auth
    elif options.dcos_credentials:
        session.auth = DcosAuth(options.dcos_credentials, session.verify, options.request_timeout, clock)
    return session


@dataclasses.dataclass(frozen=True)
class Environment:
    """What zdd runs in: its streams, clock, prompt and environment variables. Tests pass their own."""

    stdout: typing.TextIO
    stderr: typing.TextIO
    stdin: typing.TextIO
    clock: object
    ask: typing.Callable = None  # question -> yes (True) or no; None: zdd asks on the terminal
    environ: typing.Mapping = None  # None: os.environ

    def stdin_isatty(self):
        return self.stdin.isatty()

    def prompt(self, question):
        """The operator's answer, asked on the terminal."""
        return _terminal_ask(question, self.stdin, self.stderr)


@dataclasses.dataclass
class Run:
    """One run once its options are parsed: what ``execute`` works with, and what main reports a failure from."""

    options: Options
    env: Environment
    reporter: Reporter
    live: LiveHandler = None  # the live view on a terminal, or None
    deployer: Deployer = None  # set by ``execute`` once it made it: the failure report reads what it last saw


def main(argv=None, *, clock=None, ask=None, stdout=None, stderr=None, environ=None):
    """Run zdd; returns the exit code. Tests pass a fake clock and an answer for prompts.

    Parses the command line, runs ``execute``, and maps how it ended to the
    exit code: a ZddError to its own, reported from what zdd last saw; any
    other exception to INTERNAL, with the traceback once.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    env = Environment(stdout or sys.stdout, stderr or sys.stderr, sys.stdin, clock or SystemClock(), ask, environ)
    try:
        options = parse_options(argv, env.environ)
    except ZddError as exc:
        env.stderr.write(f"zdd: error: {exc}\n")
        return exc.exit_code
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    if options is None:  # --longhelp
        env.stdout.write(__doc__ + EXIT_CODES_HELP)
        return ExitCode.OK
    setup_logging(options, env.stderr)
    run = Run(options, env, Reporter(options.output == "json", env.stdout, env.clock),
              live=start_live_view(options, env.stderr))
    try:
        code = execute(run)
    except ZddError as exc:
        code = exc.exit_code
        _report_failure(exc, run)
    except Exception as exc:  # an unexpected failure: the traceback, once
        code = ExitCode.INTERNAL
        run.reporter.event("error.unexpected", message=f"unexpected error: {type(exc).__name__}",
                           exit_code=int(code), _exc=exc)
    finally:
        if run.live is not None:
            run.live.block.clear()
    run.reporter.event("finished", **_summary(code, run))
    return int(code)


def execute(run):
    """Load the app, build the HTTP sessions, clients and Deployer, and run the status view or the deployment."""
    options, env, reporter = run.options, run.env, run.reporter
    interrupts = Interrupts(env.clock)
    deadline = Deadline(env.clock, options.deadline, deadline_rollback_share(options))
    installed = False
    sessions = []
    try:
        app = load_app(options)  # the inputs first: a bad JSON file is reported as such
        if env.ask is None and not (options.force or options.dry_run or options.status) and not env.stdin_isatty():
            raise InvalidArgs("zdd would prompt, but standard input is not a terminal: pass --force")
        reporter.event("start", version=__version__, app=app["id"], group=deployment_group(app),
                       dry_run=options.dry_run)
        if threading.current_thread() is threading.main_thread():
            interrupts.install()
            installed = True
        sessions.append(make_session(options, env.clock))
        marathon_http = HttpClient(sessions[-1], options.request_timeout, deadline, env.clock, interrupts)
        lb_session = requests.Session()
        sessions.append(lb_session)
        lb_session.headers["User-Agent"] = f"zdd/{__version__}"
        lb_http = HttpClient(lb_session, options.request_timeout, deadline, env.clock, interrupts)
        run.deployer = deployer_for(run.live)(options, MarathonClient(options.marathon, marathon_http),
                                              MarathonLbClient(options.marathon_lb, lb_http), env, interrupts,
                                              deadline, reporter)
        return show_status(run.deployer, app) if options.status else run.deployer.run(app)
    finally:
        if installed:
            interrupts.uninstall()
        for session in sessions:
            session.close()


RESULTS = {ExitCode.OK: "deployed", ExitCode.DECLINED: "declined", ExitCode.ROLLED_BACK: "rolled_back",
           ExitCode.INTERRUPTED: "interrupted", ExitCode.TERMINATED: "interrupted"}


def _progress(run):
    return run.deployer.progress() if run.deployer is not None else Progress()


def _summary(code, run):
    """The fields of the final event."""
    options, progress = run.options, _progress(run)
    result = RESULTS.get(code, "failed")
    if code == ExitCode.OK and options.dry_run:
        result = "dry_run"
    if code == ExitCode.OK and options.status:
        result = "status"
    if code == ExitCode.OK and progress.skipped:
        result = "unchanged"
    summary = {"result": result, "exit_code": int(code),
               "duration_s": round(run.env.clock.monotonic() - run.reporter.started, 3),
               "steps": progress.steps_taken, "new_app": None, "old_app": None}
    if progress.plan is not None:
        summary.update(new_app=progress.plan.new_id, old_app=progress.plan.old_id)
    if progress.swapping and result in ("failed", "interrupted"):
        summary["resume_command"] = resume_command(options.argv)
    return summary


def _report_failure(exc, run):
    """The error event; its text: the error, and while both apps exist their state as last seen and the ways on."""
    progress, argv = _progress(run), run.options.argv
    report = {}
    if progress.swapping and not isinstance(exc, (InvalidArgs, BadApp, Declined, RolledBack)):
        plan = progress.plan
        report = {"_state": "; ".join(f"{app_id}: {_last_seen_state(progress, app_id)}"
                                      for app_id in (plan.new_id, plan.old_id)),
                  "_finish": resume_command(argv), "_back": resume_command(argv, "--complete-prev")}
    run.reporter.event("error", message=str(exc), exit_code=int(exc.exit_code), _hint=exc.hint, **report)


def _last_seen_state(progress, app_id):
    """An app's state for the failure report, as the loop last saw it: never a new request (the deadline may
    have passed, Marathon may be away); marked as such when Marathon was not answering."""
    if app_id not in progress.last_seen:
        return "not read yet"
    state = summarise(progress.last_seen[app_id])
    return f"{state} (as last seen)" if progress.marathon_away else state


if __name__ == "__main__":
    sys.exit(main())
