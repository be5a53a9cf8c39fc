"""What marathon-lb makes of Marathon's app list, as pure functions.

Shared by the fake load balancer of the unit tests (``fakelb.py``) and the
sandbox's real-HAProxy load balancer. The rules are those of
docs/marathon-lb.rst:

* tasks not running (a ``state`` other than ``TASK_RUNNING``) are left out;
  with health checks, so are tasks without an alive result;
* apps of one ``HAPROXY_DEPLOYMENT_GROUP`` merge into one service named after
  the group, taking the OLD app's definition, with the first
  ``min(len(old tasks), healthy_new, max(0, healthy_new + old.instances - target))``
  old tasks (sorted by id) draining;
* a server is ``<ip>_<port>`` (host is the IP) or ``<host>_<ip>_<port>``,
  everything outside ``[a-zA-Z0-9-]`` turned into ``_``.
"""

import dataclasses
import re
import socket

import dateutil.parser

LABEL_GROUP = "HAPROXY_DEPLOYMENT_GROUP"
LABEL_STARTED_AT = "HAPROXY_DEPLOYMENT_STARTED_AT"
LABEL_TARGET_INSTANCES = "HAPROXY_DEPLOYMENT_TARGET_INSTANCES"
LABEL_NEW_INSTANCES = "HAPROXY_DEPLOYMENT_NEW_INSTANCES"
HTTP_CHECK_PROTOCOLS = ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS")


@dataclasses.dataclass(frozen=True)
class Server:
    """One HAProxy ``server`` line: a routable task."""
    name: str
    host: str
    ip: str
    port: int
    draining: bool
    app_id: str
    task_id: str


@dataclasses.dataclass(frozen=True)
class Service:
    """One HAProxy frontend/backend pair (same name)."""
    name: str
    port: int
    servers: tuple
    mode: str = "http"
    checked: bool = True    # servers carry HAProxy's ``check`` (the app has health checks)


def resolve_host(host):
    """The IPv4 address of ``host`` (a literal stays itself), or None if unresolvable."""
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET, 0, 0, socket.AI_NUMERICHOST)[0][4][0]
    except (socket.gaierror, UnicodeError, OSError):
        pass
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]
    except (socket.gaierror, UnicodeError, OSError):
        return None


def sanitize(text):
    """marathon-lb's server/backend name cleaning: outside ``[a-zA-Z0-9-]`` becomes ``_``."""
    return re.sub(r"[^a-zA-Z0-9-]", "_", text)


def service_name(app_or_group_id, port):
    """``/prod/web`` and 10000 -> ``prod_web_10000``."""
    return "%s_%d" % (app_or_group_id.lstrip("/").replace("/", "_"), port)


def server_name(host, ip, port):
    """``<ip>_<port>`` when the host is the IP, else ``<host>_<ip>_<port>``, sanitised."""
    if host == ip:
        return sanitize("%s_%d" % (ip, port))
    return sanitize("%s_%s_%d" % (host, ip, port))


def is_ip_per_task(app):
    """1.4 ``ipAddress`` set, or a 1.5 network in ``container`` mode (not ``container/bridge``)."""
    if app.get("ipAddress"):
        return True
    return any(network.get("mode") == "container" for network in app.get("networks") or [])


def _mappings(app):
    container = app.get("container") or {}
    return (container.get("docker") or {}).get("portMappings") or container.get("portMappings") or []


def service_ports(app):
    """The app's own service ports, from whichever shape it has."""
    mappings = _mappings(app)
    if mappings:
        return [int(mapping.get("servicePort") or 0) for mapping in mappings]
    if app.get("portDefinitions"):
        return [int(definition.get("port") or 0) for definition in app["portDefinitions"]]
    return [int(port) for port in app.get("ports") or []]


def container_ports(app):
    """Container ports of an IP-per-task app (port mappings, else 1.4 discovery ports)."""
    mappings = _mappings(app)
    if mappings:
        return [int(mapping.get("containerPort") or 0) for mapping in mappings]
    discovery = ((app.get("ipAddress") or {}).get("discovery") or {}).get("ports") or []
    return [int(port.get("number") or 0) for port in discovery]


def _labels(app):
    return app.get("labels") or {}


def _task_healthy(task):
    """At least one result and every result alive (marathon-lb's count of healthy new tasks)."""
    results = task.get("healthCheckResults") or []
    return bool(results) and all(result.get("alive") for result in results)


def _started_at(app):
    raw = _labels(app).get(LABEL_STARTED_AT)
    if raw is None:
        return None
    return dateutil.parser.parse(raw)


def _is_older(app_a, app_b):
    """True when app_a was deployed before app_b (missing STARTED_AT = oldest)."""
    started_a, started_b = _started_at(app_a), _started_at(app_b)
    if started_a is None:
        return True
    if started_b is None:
        return False
    return started_a <= started_b


def merge_pair(first, second):
    """Merge two apps of one deployment group into the app marathon-lb renders.

    Returns a copy of the OLD app with both apps' tasks; old tasks picked to
    drain carry ``"draining": True``.
    """
    old, new = (first, second) if _is_older(first, second) else (second, first)
    if LABEL_NEW_INSTANCES in _labels(new):
        old_scaled = dateutil.parser.parse(old["versionInfo"]["lastScalingAt"])
        new_scaled = dateutil.parser.parse(new["versionInfo"]["lastScalingAt"])
        if old_scaled > new_scaled:
            old, new = new, old
    old_tasks = sorted((dict(task) for task in old.get("tasks") or []), key=lambda task: task["id"])
    try:
        target = int(_labels(new)[LABEL_TARGET_INSTANCES])
    except (KeyError, ValueError):
        target = None
    if new.get("healthChecks"):
        healthy_new = sum(1 for task in new.get("tasks") or [] if _task_healthy(task))
    else:
        healthy_new = int(new.get("instances") or 0)
    if target is not None:
        drainable = max(0, healthy_new + int(old.get("instances") or 0) - target)
        for task in old_tasks[:min(len(old_tasks), healthy_new, drainable)]:
            task["draining"] = True
    merged = dict(old)
    merged["tasks"] = old_tasks + [dict(task) for task in new.get("tasks") or []]
    return merged


def _routable(task, checked, last_alive):
    if task.get("state", "TASK_RUNNING") != "TASK_RUNNING":
        return False
    if not checked:
        return True
    results = task.get("healthCheckResults")
    if results:
        alive = any(result.get("alive") for result in results)
        if last_alive is not None:
            last_alive[task["id"]] = alive
        return alive
    return bool(last_alive and last_alive.get(task["id"]))


def _services_of(app, service_id, resolve, last_alive):
    labels = _labels(app)
    own_ports = service_ports(app)
    ip_per_task = is_ip_per_task(app)
    task_ports_of_app = container_ports(app) if ip_per_task else None
    checked = bool(app.get("healthChecks"))
    http_checked = any(check.get("protocol", "HTTP") in HTTP_CHECK_PROTOCOLS for check in app.get("healthChecks") or [])
    services = []
    for index, own_port in enumerate(own_ports):
        port = int(labels.get("HAPROXY_%d_PORT" % index) or own_port)
        mode = labels.get("HAPROXY_%d_MODE" % index) or (
            "http" if http_checked or labels.get("HAPROXY_%d_VHOST" % index) else "tcp")
        servers = []
        for task in app.get("tasks") or []:
            if not _routable(task, checked, last_alive):
                continue
            if ip_per_task:
                addresses = task.get("ipAddresses") or []
                if not addresses or index >= len(task_ports_of_app):
                    continue
                ip, task_port = addresses[0]["ipAddress"], task_ports_of_app[index]
            else:
                ports = task.get("ports") or []
                ip = resolve(task["host"])
                if ip is None or index >= len(ports):
                    continue
                task_port = ports[index]
            servers.append(Server(name=server_name(task["host"], ip, int(task_port)), host=task["host"], ip=ip,
                                  port=int(task_port), draining=bool(task.get("draining")),
                                  app_id=task.get("appId", app["id"]), task_id=task["id"]))
        services.append(Service(name=service_name(service_id, port), port=port, servers=tuple(servers),
                                mode=mode, checked=checked))
    return services


def services_from_apps(apps, resolve=resolve_host, last_alive=None):
    """The HAProxy services marathon-lb renders for ``GET /v2/apps?embed=apps.tasks``'s apps.

    ``last_alive`` (optional dict task id -> bool, kept by the caller between
    calls) remembers each task's last health result while a result is missing,
    as marathon-lb does.
    """
    merged = {}
    order = []
    for app in apps:
        group = _labels(app).get(LABEL_GROUP)
        key = ("group", "/" + group.lstrip("/")) if group else ("app", app["id"])
        if key in merged:
            merged[key] = merge_pair(merged[key], app)
        else:
            merged[key] = app
            order.append(key)
    services = []
    for key in order:
        services.extend(_services_of(merged[key], key[1], resolve, last_alive))
    return services
