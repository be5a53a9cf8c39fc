"""What Marathon accepts as an app in a POST /v2/apps or PUT /v2/apps/<id> body, and a checker for it.

The facts come from Marathon's published app schema (``AppDefinition.json``
of the 1.4 releases, and the ``App`` type of its RAML in the last releases);
the schema below is this project's own, written in JSON Schema's vocabulary
for the part of it a small checker needs. An app has only the properties
either version knows: the fields Marathon returns with an app and nothing
else (``tasks``, ``deployments``, the task counts, ``lastTaskFailure``,
``taskStats``, ``readinessCheckResults``) are not among them, and a body
that carries one is refused. Label values, like every value of ``env`` that
is not a secret reference, are strings.

``violations(body, partial=False)`` lists what is wrong, one
``"<path>: <problem>"`` each (empty: Marathon accepts the shape); ``partial``
is a PUT's body, where ``id`` may be left out.
"""

import re

_PORT = {"type": "integer", "minimum": 0, "maximum": 65535}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_PATH_ID = {"type": "string", "minLength": 1,
            "pattern": r"^(/?((\.\.)|([a-z0-9][a-z0-9\-.]*[a-z0-9]+)|([a-z0-9]*))($|/))+$"}
_PORT_MAPPING = {"type": "object", "properties": {
    "containerPort": _PORT, "hostPort": _PORT, "servicePort": _PORT, "labels": _STRINGS,
    "name": {"type": "string", "pattern": r"^[a-z][a-z0-9-]*$"}, "protocol": {"type": "string"},
}}

APP_SCHEMA = {
    "type": "object",
    "required": ["id"],
    "additionalProperties": False,
    "properties": {
        "id": _PATH_ID,
        "acceptedResourceRoles": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "backoffFactor": {"type": "number", "minimum": 1},
        "backoffSeconds": {"type": "integer", "minimum": 0},
        "check": {"type": "object"},
        "cmd": {"type": "string", "minLength": 1},
        "constraints": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        "container": {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["DOCKER", "MESOS"]},
            "docker": {"type": "object", "properties": {
                "image": {"type": "string", "minLength": 1},
                "network": {"type": "string", "enum": ["BRIDGE", "HOST", "NONE", "USER"]},
                "portMappings": {"type": "array", "items": _PORT_MAPPING},
                "forcePullImage": {"type": "boolean"},
                "privileged": {"type": "boolean"},
                "parameters": {"type": "array", "items": {"type": "object"}},
            }},
            "portMappings": {"type": "array", "items": _PORT_MAPPING},
            "volumes": {"type": "array", "items": {"type": "object"}},
        }},
        "cpus": {"type": "number", "minimum": 0},
        "dependencies": {"type": "array", "items": _PATH_ID},
        "disk": {"type": "number", "minimum": 0},
        "env": {"type": "object", "additionalProperties": {"type": ["string", "object"]}},
        "executor": {"type": "string"},
        "executorResources": {"type": "object"},
        "fetch": {"type": "array", "items": {"type": "object"}},
        "gpus": {"type": "integer", "minimum": 0},
        "healthChecks": {"type": "array", "items": {"type": "object"}},
        "instances": {"type": "integer", "minimum": 0},
        "ipAddress": {"type": "object"},
        "killSelection": {"type": "string", "enum": ["YOUNGEST_FIRST", "OLDEST_FIRST"]},
        "labels": _STRINGS,
        "maxLaunchDelaySeconds": {"type": "integer", "minimum": 0},
        "mem": {"type": "number", "minimum": 0},
        "networks": {"type": "array", "items": {"type": "object"}},
        "portDefinitions": {"type": "array", "items": {"type": "object", "properties": {
            "port": _PORT, "labels": _STRINGS, "name": {"type": "string"}, "protocol": {"type": "string"},
        }}},
        "ports": {"type": "array", "items": _PORT},
        "readinessChecks": {"type": "array", "items": {"type": "object"}},
        "requirePorts": {"type": "boolean"},
        "residency": {"type": "object"},
        "resourceLimits": {"type": "object"},
        "role": {"type": "string", "minLength": 1},
        "secrets": {"type": "object"},
        "storeUrls": {"type": "array", "items": {"type": "string"}},
        "taskKillGracePeriodSeconds": {"type": "integer", "minimum": 0},
        "tty": {"type": "boolean"},
        "unreachableStrategy": {"type": ["object", "string"]},
        "upgradeStrategy": {"type": "object", "additionalProperties": False, "properties": {
            "minimumHealthCapacity": {"type": "number", "minimum": 0, "maximum": 1},
            "maximumOverCapacity": {"type": "number", "minimum": 0, "maximum": 1},
        }},
        "uris": {"type": "array", "items": {"type": "string"}},
        "user": {"type": "string"},
        "version": {"type": "string"},
        "versionInfo": {"type": "object"},
    },
}

_TYPES = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
}


def violations(body, partial=False, schema=APP_SCHEMA, path=""):
    """What in ``body`` Marathon's app schema refuses, as ``"<path>: <problem>"`` lines (empty: none)."""
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds and not any(_TYPES[kind](body) for kind in kinds):
        return [f"{path or '/'}: expected {' or '.join(kinds)}, got {type(body).__name__}"]
    found = []
    if "enum" in schema and body not in schema["enum"]:
        found.append(f"{path or '/'}: {body!r} is not one of {schema['enum']}")
    if "minimum" in schema and body < schema["minimum"]:
        found.append(f"{path or '/'}: {body} is below {schema['minimum']}")
    if "maximum" in schema and body > schema["maximum"]:
        found.append(f"{path or '/'}: {body} is above {schema['maximum']}")
    if "minLength" in schema and len(body) < schema["minLength"]:
        found.append(f"{path or '/'}: shorter than {schema['minLength']}")
    if "pattern" in schema and not re.search(schema["pattern"], body):
        found.append(f"{path or '/'}: {body!r} does not match {schema['pattern']}")
    if isinstance(body, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if not partial:
            found.extend(f"{path}/{key}: required" for key in schema.get("required", ()) if key not in body)
        for key, value in body.items():
            if key in properties:
                found.extend(violations(value, schema=properties[key], path=f"{path}/{key}"))
            elif extra is False:
                found.append(f"{path}/{key}: not a property of an app")
            elif isinstance(extra, dict):
                found.extend(violations(value, schema=extra, path=f"{path}/{key}"))
    if isinstance(body, list) and "items" in schema:
        for index, item in enumerate(body):
            found.extend(violations(item, schema=schema["items"], path=f"{path}/{index}"))
    return found
