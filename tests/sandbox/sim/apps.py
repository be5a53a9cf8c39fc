"""App definitions as the simulated Marathon takes and shows them: ids, validation, shapes.

A body is checked (Marathon's app schema, tests/sandbox/appschema.py, then the simulator's own checks), stored in
one canonical (1.5-like) shape, and rendered in the shape of the Marathon version served (1.4 or 1.5). The
``AppDefinitions`` mixin of ``MarathonSim`` does that; it reads only ``marathon_version`` of the simulator.
"""

import copy
import dataclasses
import re

from tests.sandbox import appschema
from tests.sandbox.mlb import is_ip_per_task
from tests.sandbox.sim.launch import DEFAULT_CHECK_TIMEOUT_S

ID_SEGMENT_RE = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$")
TASK_ID_RE = re.compile(r"^(.+)[._]([^_.]+)$")
NO_CMD_MESSAGE = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."


# Fields of an app that Marathon only returns: a seed given as a GET answer drops them; a client's body that
# carries one is refused (they are not in Marathon's app schema, tests/sandbox/appschema.py).
READ_ONLY_FIELDS = (
    "version", "versionInfo", "tasks", "deployments", "tasksStaged", "tasksRunning",
    "tasksHealthy", "tasksUnhealthy", "lastTaskFailure", "readinessCheckResults", "taskStats",
)

COMMON_DEFAULTS = {
    "instances": 1, "cpus": 1.0, "mem": 128.0, "disk": 0.0, "gpus": 0, "executor": "",
    "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 3600,
    "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
    "labels": {}, "requirePorts": False,
}
V14_NULLS = ("cmd", "args", "user", "container", "ipAddress", "residency", "taskKillGracePeriodSeconds")
V14_EMPTY = {"env": {}, "constraints": [], "uris": [], "storeUrls": [], "fetch": [], "healthChecks": [],
             "readinessChecks": [], "dependencies": [], "secrets": {}}
V15_OMIT_EMPTY = ("args", "env", "constraints", "dependencies", "fetch", "healthChecks",
                  "readinessChecks", "secrets", "acceptedResourceRoles")
# Both versions answer these (added in 1.4) for an app that leaves them out.
KILL_AND_UNREACHABLE_DEFAULTS = {"killSelection": "YOUNGEST_FIRST",
                                 "unreachableStrategy": {"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600}}
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip")  # uris fetched with extract
SCHEMA_VIOLATIONS = []  # SchemaViolation: every app body a simulator of this process refused by the app schema

HEALTH_CHECK_DEFAULTS = {"protocol": "HTTP", "gracePeriodSeconds": 300, "intervalSeconds": 60,
                         "timeoutSeconds": DEFAULT_CHECK_TIMEOUT_S,
                         "maxConsecutiveFailures": 3, "delaySeconds": 15}
HTTP_PROTOCOLS = ("HTTP", "HTTPS")  # Marathon's own HTTP checks: answered with ignoreHttp1xx (default false)
COMMAND_PROTOCOLS = ("COMMAND",)  # no port


def normalize_app_id(raw):
    """``foo``, ``/foo/``, ``//foo`` -> ``/foo``."""
    return "/" + "/".join(part for part in str(raw).split("/") if part)


def safe_app_id(app_id):
    """``/prod/web`` -> ``prod_web`` (the task id prefix)."""
    return normalize_app_id(app_id).lstrip("/").replace("/", "_")


def app_id_of_task(task_id):
    """The app id a task id names, or None when the task id is malformed."""
    match = TASK_ID_RE.match(task_id) if isinstance(task_id, str) else None
    if not match:
        return None
    return normalize_app_id(match.group(1).replace("_", "/"))


def format_ts(moment):
    """Marathon's timestamp: ISO-8601 UTC with milliseconds and ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def port_mappings(app):
    """The port mappings of an app in either shape (``[]`` for host networking)."""
    container = app.get("container") or {}
    return container.get("portMappings") or (container.get("docker") or {}).get("portMappings") or []


def host_port_count(app):
    """How many host ports a task of ``app`` (canonical/1.5 shape) gets."""
    if is_ip_per_task(app):
        return sum(1 for mapping in port_mappings(app) if mapping.get("hostPort") is not None)
    if port_mappings(app):
        return len(port_mappings(app))
    return len(app.get("portDefinitions") or [])


def _label_float(app, key, default):
    try:
        return float((app.get("labels") or {}).get(key, default))
    except (TypeError, ValueError):
        return default


def _health_check(check):
    """A health check with what Marathon fills in: its defaults, ``portIndex`` 0 without a port, ``ignoreHttp1xx``."""
    full = dict(HEALTH_CHECK_DEFAULTS, **check)
    if full["protocol"] not in COMMAND_PROTOCOLS and "port" not in full:
        full.setdefault("portIndex", 0)
    if full["protocol"] in HTTP_PROTOCOLS:
        full.setdefault("ignoreHttp1xx", False)
    return full


class ApiError(Exception):
    """An HTTP error answer: status and JSON body."""

    def __init__(self, status, body):
        super().__init__(status, body)
        self.status = status
        self.body = body


def _invalid(path, error):
    return ApiError(422, {"message": "Object is not valid", "details": [{"path": path, "errors": [error]}]})


@dataclasses.dataclass(frozen=True)
class SchemaViolation:
    """An app body the simulator refused as Marathon's app schema does: who sent it, where, and what was wrong."""
    client: str
    method: str
    path: str
    problems: tuple


def _label_selector_matches(selector, labels):
    """Marathon's label selector: ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``."""
    terms = re.findall(r"[^,()]+(?:\([^)]*\))?", selector)
    for term in (t.strip() for t in terms):
        if not term:
            continue
        match = re.match(r"^(\S+)\s+(in|notin)\s+\((.*)\)$", term)
        if match:
            values = [v.strip() for v in match.group(3).split(",")]
            present = labels.get(match.group(1)) in values
            if present != (match.group(2) == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "==" in term:
            key, value = term.split("==", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term not in labels:
            return False
    return True


class AppDefinitions:
    """Parse, check and render app definitions (a mixin of ``MarathonSim``: uses ``marathon_version``)."""

    # ---- parsing and validation

    def _parse_app(self, body, app_id=None):
        """Validate an app JSON and return (canonical spec, absolute id)."""
        if not isinstance(body, dict):
            raise ApiError(400, {"message": "Please specify data in JSON format",
                                 "details": "The request body must be a JSON object"})
        raw = copy.deepcopy(body)
        for field in READ_ONLY_FIELDS:
            raw.pop(field, None)
        app_id = normalize_app_id(app_id if app_id is not None else raw.get("id", ""))
        raw.pop("id", None)
        self._check_types(raw)
        segments = app_id.strip("/").split("/") if app_id != "/" else []
        if not segments or not all(ID_SEGMENT_RE.match(segment) for segment in segments):
            raise _invalid("/id", "'%s' must fully match the regular expression '%s'"
                           % (app_id, ID_SEGMENT_RE.pattern))
        if not raw.get("cmd") and not raw.get("args") and not raw.get("container"):
            raise _invalid("/", NO_CMD_MESSAGE)
        if raw.get("instances", 1) < 0:
            raise _invalid("/instances", "got %s, expected 0 or more" % raw["instances"])
        return self._canonical(raw), app_id

    @staticmethod
    def _check_types(raw):
        def type_error(path, expected):
            return ApiError(400, {"message": "Invalid JSON",
                                  "details": [{"path": path, "errors": ["error.expected.%s" % expected]}]})
        if "instances" in raw and (not isinstance(raw["instances"], int) or isinstance(raw["instances"], bool)):
            raise type_error("/instances", "jsnumber")
        labels = raw.get("labels")
        if labels is not None:
            if not isinstance(labels, dict):
                raise type_error("/labels", "jsobject")
            for key, value in labels.items():
                if not isinstance(value, str):
                    raise type_error("/labels/%s" % key, "jsstring")

    @staticmethod
    def _canonical(raw):
        """Input of either shape -> the 1.5-like shape the simulator stores."""
        spec = {key: value for key, value in raw.items() if value is not None}
        container = spec.get("container")
        docker = (container or {}).get("docker") or {}
        ip_address = spec.pop("ipAddress", None)
        if ip_address and spec.get("networks"):
            raise _invalid("/", "must not specify both networks and ipAddress")
        if docker.get("network") and spec.get("networks"):
            raise _invalid("/", "must not specify both container.docker.network and networks")
        ports = spec.pop("ports", None)
        definitions = spec.get("portDefinitions")
        if ports is not None and definitions is not None and [d.get("port") for d in definitions] != list(ports):
            raise _invalid("/", "You cannot specify both ports and port definitions")
        if container is not None:
            container = spec["container"] = copy.deepcopy(container)
            docker = container.get("docker")
            if docker is not None:
                network = docker.pop("network", None)
                mappings = docker.pop("portMappings", None)
                if mappings is not None and not container.get("portMappings"):
                    container["portMappings"] = mappings
                if network == "BRIDGE":
                    spec["networks"] = [{"mode": "container/bridge"}]
                elif network == "USER":
                    spec["networks"] = [{"mode": "container", "name": "dcos"}]
                elif network == "HOST":
                    spec["networks"] = [{"mode": "host"}]
        if ip_address:
            network = {"mode": "container"}
            network["name"] = ip_address.get("networkName") or "dcos"
            spec["networks"] = [network]
            discovery = (ip_address.get("discovery") or {}).get("ports") or []
            if container is None and discovery:
                spec["container"] = container = {"type": "MESOS"}
            if container is not None and not container.get("portMappings") and discovery:
                container["portMappings"] = [{"containerPort": p.get("number", 0), "name": p.get("name"),
                                              "protocol": p.get("protocol", "tcp")} for p in discovery]
        spec.setdefault("networks", [{"mode": "host"}])
        host_mode = spec["networks"][0].get("mode") == "host"
        if host_mode:
            if container is not None:
                container.pop("portMappings", None)
            if definitions is None:
                definitions = [{"port": port} for port in ports] if ports is not None else [{"port": 0}]
            spec["portDefinitions"] = [dict({"protocol": "tcp", "labels": {}}, **d) for d in definitions]
        else:
            spec.pop("portDefinitions", None)
            bridge = spec["networks"][0].get("mode") == "container/bridge"
            if container is not None:
                mappings = []
                for mapping in container.get("portMappings") or []:
                    full = {"containerPort": 0, "labels": {}, "protocol": "tcp", "servicePort": 0}
                    if bridge:
                        full["hostPort"] = 0
                    full.update({k: v for k, v in mapping.items() if v is not None})
                    mappings.append(full)
                container["portMappings"] = mappings
        if container is not None:
            container.setdefault("volumes", [])
            if container.get("docker") is not None:
                container["docker"] = dict({"forcePullImage": False, "parameters": [], "privileged": False},
                                           **container["docker"])
        if spec.get("uris") and not spec.get("fetch"):
            spec["fetch"] = [{"uri": uri, "extract": uri.endswith(ARCHIVE_SUFFIXES), "executable": False,
                              "cache": False} for uri in spec["uris"]]
        spec.pop("uris", None)
        spec["healthChecks"] = [_health_check(check) for check in spec.get("healthChecks") or []]
        for key, value in COMMON_DEFAULTS.items():
            spec.setdefault(key, copy.deepcopy(value))
        return spec

    # ---- rendering

    def _is_14(self):
        return str(self.marathon_version).startswith("1.4")

    def _render_spec(self, app_id, spec):
        """The app definition in this Marathon version's output shape."""
        spec = copy.deepcopy(spec)
        if self._is_14():
            out = {key: None for key in V14_NULLS}
            out.update(copy.deepcopy(V14_EMPTY))
            networks = spec.pop("networks")
            mode = networks[0].get("mode")
            container = spec.get("container")
            mappings = (container or {}).pop("portMappings", None)
            if container is not None and container.get("docker") is not None:
                docker = container["docker"]
                docker["network"] = {"host": "HOST", "container/bridge": "BRIDGE"}.get(mode, "USER")
                if mode != "host":
                    docker["portMappings"] = [{k: v for k, v in m.items() if k != "labels" or v}
                                              for m in mappings or []]
            if mode == "container":
                spec.pop("portDefinitions", None)
                spec.pop("requirePorts", None)
                out["ipAddress"] = {"groups": [], "labels": {}, "discovery": {"ports": []},
                                    "networkName": networks[0].get("name", "dcos")}
                out.update({key: value for key, value in spec.items()})
                out.pop("requirePorts", None)
            else:
                if mode == "host":
                    definitions = spec["portDefinitions"]
                else:
                    definitions = [{"port": m.get("servicePort", 0), "protocol": m.get("protocol", "tcp"),
                                    "labels": {}} for m in mappings or []]
                spec["portDefinitions"] = definitions
                out["ports"] = [definition["port"] for definition in definitions]
                out.update(spec)
            out["uris"] = [entry["uri"] for entry in spec.get("fetch") or []]
        else:
            out = {key: value for key, value in spec.items()
                   if value is not None and not (key in V15_OMIT_EMPTY and not value)}
        for key, value in KILL_AND_UNREACHABLE_DEFAULTS.items():
            out.setdefault(key, copy.deepcopy(value))
        out["id"] = app_id
        return out

    def _check_schema(self, method, path, body, headers):
        """Refuse an app body Marathon's app schema refuses (422), and note it in ``SCHEMA_VIOLATIONS``."""
        if not isinstance(body, dict):
            return  # not JSON, or not an object: _json_body and _parse_app answer those
        problems = appschema.violations(body, partial=method == "PUT")
        if problems:
            client = (headers.get("User-Agent") if headers is not None else None) or ""
            SCHEMA_VIOLATIONS.append(SchemaViolation(client, method, path, tuple(problems)))
            self._check_types(body)  # a value of the wrong type: 400 "Invalid JSON", as before any validation
            raise ApiError(422, {"message": "Object is not valid", "details": [
                {"path": problem.split(": ", 1)[0], "errors": [problem.split(": ", 1)[1]]} for problem in problems]})
