"""Apps and deployments as the simulator stores them: the app records, the deployment plans, locks and their end.

``Deployments`` is the mixin of ``MarathonSim`` that adds deployments, refuses a write to a locked app
(409), finishes a deployment's steps once its apps converge, and cancels one (rolling back or not).
"""

import copy
import dataclasses
import uuid

from tests.sandbox.sim.apps import ApiError

LOCKED_MESSAGE = (
    "App is locked by one or more deployments. Override with the option '?force=true'. "
    "View details at '/v2/deployments/<DEPLOYMENT_ID>'."
)


@dataclasses.dataclass
class _App:
    id: str
    spec: dict                 # canonical (1.5-like) definition without id/version
    version: str
    last_scaling_at: str
    last_config_change_at: str
    tasks: dict = dataclasses.field(default_factory=dict)
    versions: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Deployment:
    id: str
    version: str
    steps: list                # [[(action, app_id), ...], ...]
    originals: dict            # app id -> deep copy of _App before the change (None: did not exist)
    to_kill: set = dataclasses.field(default_factory=set)
    current_step: int = 1

    def affected(self):
        return sorted({app_id for step in self.steps for _, app_id in step})


class Deployments:
    """The deployments of a ``MarathonSim`` (a mixin: uses its ``_apps``, ``_stopping``, ``_deployments`` and
    ``TaskLife``)."""

    def _app_converged(self, app_id, to_kill):
        app = self._apps.get(app_id)
        if app is None:
            return not any(task.app_id == app_id for task in self._stopping.values())
        if any(task_id in app.tasks for task_id in to_kill):
            return False
        tasks = list(app.tasks.values())
        if any(task.state == "TASK_KILLING" for task in tasks):
            return False
        if len(tasks) != int(app.spec.get("instances", 1)):
            return False
        checked = bool(app.spec.get("healthChecks"))
        return all(task.state == "TASK_RUNNING" and (task.healthy() or not checked) for task in tasks)

    def _finish_deployments(self):
        for dep in list(self._deployments.values()):
            while dep.current_step <= len(dep.steps):
                step = dep.steps[dep.current_step - 1]
                if all(action == "StartApplication" or self._app_converged(app_id, dep.to_kill)
                       for action, app_id in step):
                    dep.current_step += 1
                else:
                    break
            if dep.current_step > len(dep.steps):
                dep.current_step = len(dep.steps)
                del self._deployments[dep.id]

    def _deployments_add(self, steps, originals, version, to_kill=()):
        dep = _Deployment(id=str(uuid.uuid4()), version=version, steps=[s for s in steps if s],
                          originals=originals, to_kill=set(to_kill))
        if dep.steps:
            self._deployments[dep.id] = dep
        return dep

    def _locking(self, app_ids):
        app_ids = set(app_ids)
        return [dep for dep in self._deployments.values() if app_ids & set(dep.affected())]

    def _check_lock(self, app_ids, force):
        locking = self._locking(app_ids)
        if not locking:
            return
        if not force:
            raise ApiError(409, {"message": LOCKED_MESSAGE, "deployments": [{"id": dep.id} for dep in locking]})
        for dep in locking:
            del self._deployments[dep.id]

    def _render_deployment(self, dep):
        steps = [{"actions": [{"action": action, "app": app_id} for action, app_id in step]} for step in dep.steps]
        current = dep.steps[dep.current_step - 1] if dep.steps else []
        return {"id": dep.id, "version": dep.version, "affectedApps": dep.affected(), "affectedPods": [],
                "steps": steps,
                "currentActions": [{"action": action, "app": app_id, "readinessCheckResults": []}
                                   for action, app_id in current],
                "currentStep": dep.current_step, "totalSteps": len(dep.steps)}

    def _deployment_result(self, status, dep, version):
        return status, {"version": version, "deploymentId": dep.id}, {"Marathon-Deployment-Id": dep.id}

    def _cancel_deployment(self, dep_id, query):
        dep = self._deployments.get(dep_id)
        if dep is None:
            raise ApiError(404, {"message": "DeploymentPlan %s does not exist" % dep_id})
        del self._deployments[dep_id]
        if self._flag(query, "force"):
            return 202, None, {}
        version = self._new_version()
        steps = []
        originals = {}
        for app_id, original in dep.originals.items():
            current = self._apps.get(app_id)
            originals[app_id] = copy.deepcopy(current)
            if original is None:
                if current is not None:
                    del self._apps[app_id]
                    for task in current.tasks.values():
                        self._kill(task, current.spec)
                        self._stopping[task.id] = task
                    steps.append([("StopApplication", app_id)])
            else:
                restored = current or _App(id=app_id, spec={}, version=version, last_scaling_at=version,
                                           last_config_change_at=original.last_config_change_at)
                restored.spec = copy.deepcopy(original.spec)
                restored.version = restored.last_scaling_at = version
                self._apps[app_id] = restored
                steps.append([("ScaleApplication", app_id)])
        rollback = self._deployments_add(steps, originals, version)
        self._reconcile()
        return self._deployment_result(200, rollback, version)
