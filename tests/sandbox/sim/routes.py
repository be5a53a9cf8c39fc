"""Marathon's v2 REST API as the simulator serves it: the routes, and what each request does to the state.

``Routes`` is the mixin of ``MarathonSim`` that dispatches a request (``/ping``, ``/v2/info``, ``/v2/apps``,
``/v2/tasks/delete``, ``/v2/deployments``) once ``MarathonSim.handle`` has let it through the faults.
"""

import copy

from tests.sandbox.sim.apps import ApiError, _label_selector_matches, app_id_of_task, normalize_app_id
from tests.sandbox.sim.deployments import _App

SERVICE_PORT_MIN = 10000
SERVICE_PORT_MAX = 20000


class Routes:
    """The v2 API of a ``MarathonSim`` (a mixin: uses its ``_apps`` and the other mixins)."""

    def _render_app(self, app, with_tasks):
        out = self._render_spec(app.id, app.spec)
        out["version"] = app.version
        out["versionInfo"] = {"lastScalingAt": app.last_scaling_at, "lastConfigChangeAt": app.last_config_change_at}
        out.update(self._counts(list(app.tasks.values())))
        out["deployments"] = [{"id": dep.id} for dep in self._locking([app.id])]
        if with_tasks:
            out["tasks"] = [self._render_task(task) for task in app.tasks.values()]
        return out

    def _sorted_apps(self):
        return [self._apps[app_id] for app_id in sorted(self._apps)]

    def _used_service_ports(self):
        used = set()
        for app in self._apps.values():
            for entry in app.spec.get("portDefinitions") or []:
                used.add(entry.get("port"))
            for entry in (app.spec.get("container") or {}).get("portMappings") or []:
                used.add(entry.get("servicePort"))
        return used

    def _assign_service_ports(self, app):
        used = self._used_service_ports()
        entries = app.spec.get("portDefinitions") or []
        key = "port"
        if not entries:
            entries = (app.spec.get("container") or {}).get("portMappings") or []
            key = "servicePort"
        for entry in entries:
            if entry.get(key, 0) == 0:
                port = next(p for p in range(SERVICE_PORT_MIN, SERVICE_PORT_MAX + 1) if p not in used)
                entry[key] = port
                used.add(port)

    def _dispatch(self, method, path, query, headers, body):
        self.tick()
        try:
            if path == "/ping" and method == "GET":
                return 200, "pong", {}
            if path == "/v2/info" and method == "GET":
                return 200, self._info(), {}
            if path.rstrip("/") == "/v2/apps":
                if method == "GET":
                    return 200, {"apps": self._list_apps(query)}, {}
                if method == "POST":
                    self._check_schema(method, path, body, headers)
                    return self._create(self._json_body(body), query)
            if path.startswith("/v2/apps/"):
                app_id = normalize_app_id(path[len("/v2/apps/"):])
                if method == "GET":
                    return self._get_app(app_id)
                if method == "PUT":
                    self._check_schema(method, path, body, headers)
                    return self._update(app_id, self._json_body(body), query)
                if method == "DELETE":
                    return self._delete(app_id, query)
            if path.rstrip("/") == "/v2/tasks/delete" and method == "POST":
                return self._kill_tasks(body, query, headers)
            if path.rstrip("/") == "/v2/deployments" and method == "GET":
                return 200, [self._render_deployment(dep) for dep in self._deployments.values()], {}
            if path.startswith("/v2/deployments/") and method == "DELETE":
                return self._cancel_deployment(path[len("/v2/deployments/"):].strip("/"), query)
            return 404, {"message": "HTTP 404 Not Found"}, {}
        except ApiError as exc:
            return exc.status, exc.body, {}

    @staticmethod
    def _json_body(body):
        if isinstance(body, str):
            raise ApiError(400, {"message": "Invalid JSON", "details": "Unexpected character in the request body"})
        if body is None:
            raise ApiError(400, {"message": "Please specify data in JSON format", "details": "empty body"})
        return body

    @staticmethod
    def _flag(query, name, default=False):
        value = query.get(name)
        if value is None:
            return default
        return value.lower() in ("true", "1", "")

    def _info(self):
        version = self.marathon_version if self.marathon_version.count(".") >= 2 else self.marathon_version + ".0"
        return {"name": "marathon", "version": version, "frameworkId": "sim-framework",
                "leader": "127.0.0.1:8080", "elected": True,
                "http_config": {"http_port": 8080, "https_port": 8443},
                "marathon_config": {"local_port_min": SERVICE_PORT_MIN, "local_port_max": SERVICE_PORT_MAX}}

    def _list_apps(self, query):
        embed = query.get("embed", "")
        apps = self._sorted_apps()
        if query.get("id"):
            apps = [app for app in apps if query["id"].lower() in app.id.lower()]
        if query.get("cmd"):
            apps = [app for app in apps if query["cmd"].lower() in (app.spec.get("cmd") or "").lower()]
        if query.get("label"):
            apps = [app for app in apps if _label_selector_matches(query["label"], app.spec.get("labels") or {})]
        return [self._render_app(app, with_tasks="apps.tasks" in embed.split(",")) for app in apps]

    def _get_app(self, app_id):
        if app_id.endswith("/*"):
            prefix = app_id[:-1]
            return 200, {"*": [self._render_app(app, True) for app in self._sorted_apps()
                               if app.id.startswith(prefix)]}, {}
        app = self._apps.get(app_id)
        if app is None:
            raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
        return 200, {"app": self._render_app(app, with_tasks=True)}, {}

    def _create(self, body, query):
        spec, app_id = self._parse_app(body)
        if app_id in self._apps:
            raise ApiError(409, {"message": "An app with id [%s] already exists." % app_id})
        self._check_lock([app_id], self._flag(query, "force"))
        echo = self._render_spec(app_id, spec)
        dep, version = self._store_new_app(app_id, spec)
        echo.update({"version": version, "tasksStaged": 0, "tasksRunning": 0, "tasksHealthy": 0,
                     "tasksUnhealthy": 0, "deployments": [{"id": dep.id}], "tasks": []})
        return 201, echo, {"Marathon-Deployment-Id": dep.id, "Location": "%s/v2/apps%s" % (self.url, app_id)}

    def _store_new_app(self, app_id, spec):
        """Store a new app and start its deployment (StartApplication, then ScaleApplication)."""
        version = self._new_version()
        app = _App(id=app_id, spec=spec, version=version, last_scaling_at=version, last_config_change_at=version)
        self._assign_service_ports(app)
        app.versions[version] = copy.deepcopy(app.spec)
        self._apps[app_id] = app
        dep = self._deployments_add([[("StartApplication", app_id)], [("ScaleApplication", app_id)]],
                                    {app_id: None}, version)
        self._reconcile()
        return dep, version

    def _update(self, app_id, body, query):
        if not isinstance(body, dict):
            raise ApiError(400, {"message": "Please specify data in JSON format",
                                 "details": "The request body must be a JSON object"})
        force = self._flag(query, "force")
        app = self._apps.get(app_id)
        if app is None:
            spec, _ = self._parse_app(body, app_id=app_id)
            self._check_lock([app_id], force)
            dep, version = self._store_new_app(app_id, spec)
            return self._deployment_result(201, dep, version)
        if "version" in body:
            old_spec = app.versions.get(body["version"])
            if old_spec is None:
                raise ApiError(404, {"message": "Version %s of app %s does not exist" % (body["version"], app_id)})
            new_spec = copy.deepcopy(old_spec)
        elif self._flag(query, "partialUpdate", default=True):
            new_spec, _ = self._parse_app(dict(self._render_spec(app_id, app.spec), **copy.deepcopy(body)),
                                          app_id=app_id)
        else:
            new_spec, _ = self._parse_app(body, app_id=app_id)
        # Compare after the same render/parse round trip, so defaults never count as a change.
        current_spec, _ = self._parse_app(self._render_spec(app_id, app.spec), app_id=app_id)
        scale_only = ({k: v for k, v in new_spec.items() if k != "instances"}
                      == {k: v for k, v in current_spec.items() if k != "instances"})
        version = self._new_version()
        if scale_only and new_spec.get("instances") == app.spec.get("instances"):
            # A no-op plan: no steps, so no lock check and no deployment to see.
            dep = self._deployments_add([], {}, version)
            return self._deployment_result(200, dep, version)
        self._check_lock([app_id], force)
        original = copy.deepcopy(app)
        if scale_only:
            app.spec["instances"] = new_spec["instances"]
            app.version = app.last_scaling_at = version
            action = "ScaleApplication"
        else:
            app.spec = new_spec
            self._assign_service_ports(app)
            app.version = app.last_scaling_at = app.last_config_change_at = version
            for task in app.tasks.values():
                self._kill(task, app.spec)
            action = "RestartApplication"
        app.versions[version] = copy.deepcopy(app.spec)
        dep = self._deployments_add([[(action, app_id)]], {app_id: original}, version)
        self._reconcile()
        return self._deployment_result(200, dep, version)

    def _delete(self, app_id, query):
        app = self._apps.get(app_id)
        if app is None:
            raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
        self._check_lock([app_id], self._flag(query, "force", default=True))
        version = self._new_version()
        del self._apps[app_id]
        for task in app.tasks.values():
            self._kill(task, app.spec)
            self._stopping[task.id] = task
        dep = self._deployments_add([[("StopApplication", app_id)]], {app_id: copy.deepcopy(app)}, version)
        return self._deployment_result(200, dep, version)

    def _kill_tasks(self, body, query, headers):
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(415, {"message": "HTTP 415 Unsupported Media Type"})
        scale = self._flag(query, "scale")
        if scale and self._flag(query, "wipe"):
            raise ApiError(400, {"message": "You cannot use scale and wipe at the same time."})
        body = self._json_body(body)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(task_id, str) for task_id in ids):
            raise ApiError(400, {"message": "Invalid JSON",
                                 "details": [{"path": "/ids", "errors": ["error.expected.jsarray"]}]})
        by_app = {}
        for task_id in ids:
            app_id = app_id_of_task(task_id)
            if app_id is None:
                raise ApiError(400, {"message": "Invalid task id '%s'. [taskId %s is no valid identifier]"
                                                % (task_id, task_id)})
            app = self._apps.get(app_id)
            if app is not None and task_id in app.tasks:
                by_app.setdefault(app_id, []).append(app.tasks[task_id])
        version = self._new_version()
        if not scale:
            killed = []
            for app_id, tasks in by_app.items():
                for task in tasks:
                    killed.append(self._render_task(task))
                    self._kill(task, self._apps[app_id].spec)
            self._reconcile()
            return 200, {"tasks": killed}, {}
        self._check_lock(list(by_app), self._flag(query, "force"))
        originals = {}
        to_kill = []
        for app_id, tasks in by_app.items():
            app = self._apps[app_id]
            originals[app_id] = copy.deepcopy(app)
            live = [task for task in tasks if task.active()]
            app.spec["instances"] = max(0, int(app.spec.get("instances", 1)) - len(live))
            app.version = app.last_scaling_at = version
            app.versions[version] = copy.deepcopy(app.spec)
            for task in live:
                self._kill(task, app.spec)
                to_kill.append(task.id)
        dep = self._deployments_add([[("ScaleApplication", app_id) for app_id in sorted(by_app)]],
                                    originals, version, to_kill)
        self._reconcile()
        return self._deployment_result(200, dep, version)
