"""The OpenAPI 3.1 document of /api/v1 and the reference page rendered from it (server-side, no CDN).

Written by hand next to the views so the contract is read, not generated: each path says its role,
its parameters and its answers; tests/api/test_schema.py checks real answers against it.
"""

from __future__ import annotations

import copy

from flask import current_app
from flask import jsonify
from flask import render_template

from app.errors import StackpilotError
from app.web.apiv1 import bp

S = {
    "name": "stack",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The stack's name from GET /stacks (`-` is the default stack).",
}
SVC = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "description": "A service name."}
GRP = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "A group: the stackpilot.group label, else the first profile, else `core`.",
}
WAIT = {
    "name": "wait",
    "in": "query",
    "schema": {"type": "integer", "minimum": 0, "maximum": 120},
    "description": "Seconds to wait for the run to finish (200 when it did, 202 otherwise).",
}
TIMEOUT = {
    "name": "timeout",
    "in": "query",
    "schema": {"type": "integer", "minimum": 0, "maximum": 120},
    "description": "Seconds for a graceful stop before SIGKILL (default: the service's stop_grace_period).",
}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def ok(schema: dict, description: str = "OK", media: str = "application/json") -> dict:
    return {"description": description, "content": {media: {"schema": schema}}}


PROBLEMS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "404": {"$ref": "#/components/responses/NotFound"},
    "422": {"$ref": "#/components/responses/Invalid"},
    "429": {"$ref": "#/components/responses/TooMany"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}
ACTION = {
    "202": ok(ref("Accepted"), "Started: follow the run"),
    "200": ok(ref("Accepted"), "Finished within `wait`"),
    "409": {"$ref": "#/components/responses/Conflict"},
    "422": {"$ref": "#/components/responses/Invalid"},
}


def op(
    summary: str,
    responses: dict,
    params: list | None = None,
    role: str = "viewer",
    tag: str = "",
    body: dict | None = None,
    description: str = "",
) -> dict:
    out = {
        "summary": summary,
        "tags": [tag] if tag else [],
        "parameters": params or [],
        "responses": {**responses, **PROBLEMS},
        "x-role": role,
        "description": (description + " " if description else "") + f"Role: {role}.",
    }
    if body:
        out["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return out


NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_NUM = {"type": ["number", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}

SCHEMAS = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "description": "RFC 9457 problem details (media type application/problem+json).",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "output": {"type": "string", "description": "Compose's output (admins only)."},
        },
    },
    "Port": {
        "type": "object",
        "required": ["host_port", "container_port", "protocol"],
        "properties": {
            "host_ip": {"type": "string"},
            "host_port": {"type": "string"},
            "container_port": {"type": "string"},
            "protocol": {"type": "string"},
        },
    },
    "Service": {
        "type": "object",
        "required": ["name", "group", "state", "image", "restarts"],
        "properties": {
            "name": {"type": "string"},
            "group": {"type": "string"},
            "state": {
                "type": "string",
                "description": "running, healthy, unhealthy, exited, stopped, not-created, ...",
            },
            "status": {"type": "string", "description": "The state in words, as the table shows it."},
            "health": NULLABLE_STR,
            "health_output": NULLABLE_STR,
            "health_exit": NULLABLE_INT,
            "image": {"type": "string"},
            "ports": {"type": "array", "items": ref("Port")},
            "uptime_seconds": NULLABLE_NUM,
            "restarts": {"type": "integer"},
            "running": {"type": "integer"},
            "replicas": {"type": "integer"},
            "cpu_percent": NULLABLE_NUM,
            "memory_bytes": NULLABLE_INT,
            "memory_limit_bytes": NULLABLE_INT,
            "sample_age_seconds": {**NULLABLE_NUM, "description": "Age of the CPU/memory sample."},
            "containers": {"type": "array", "items": {"type": "string"}},
            "depends_on": {"type": "array", "items": {"type": "string"}},
            "blocked_by": {"type": "array", "items": {"type": "string"}},
            "drift": {"type": "array", "items": {"type": "string"}},
            "active": {"type": "boolean"},
            "container_details": {"type": "array", "items": {"type": "object"}},
        },
    },
    "StackList": {
        "type": "object",
        "required": ["stacks"],
        "properties": {
            "stacks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "engine", "url"],
                    "properties": {
                        "name": {"type": "string"},
                        "project": NULLABLE_STR,
                        "engine": {"type": "string"},
                        "directory": NULLABLE_STR,
                        "source": {"type": "string"},
                        "url": {"type": "string"},
                    },
                },
            }
        },
    },
    "StackStatus": {
        "type": "object",
        "required": ["name", "project", "services"],
        "properties": {
            "name": {"type": "string"},
            "project": {"type": "string"},
            "engine": {"type": "string"},
            "profiles": {"type": "array", "items": {"type": "string"}},
            "available_profiles": {"type": "array", "items": {"type": "string"}},
            "engine_error": NULLABLE_STR,
            "model_error": NULLABLE_STR,
            "busy": NULLABLE_STR,
            "services": {"type": "array", "items": ref("Service")},
        },
    },
    "ServiceList": {
        "type": "object",
        "required": ["services"],
        "properties": {"services": {"type": "array", "items": ref("Service")}},
    },
    "Run": {
        "type": "object",
        "required": ["id", "status", "lines", "offset", "next_offset"],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "status": {"enum": ["running", "succeeded", "failed", "timed_out"]},
            "exit_code": NULLABLE_INT,
            "user": {"type": "string"},
            "started_at": NULLABLE_STR,
            "finished_at": NULLABLE_STR,
            "lines": {"type": "array", "items": {"type": "string"}},
            "offset": {"type": "integer"},
            "next_offset": {"type": "integer", "description": "Pass as ?offset= for the next lines."},
            "url": {"type": "string"},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["run"],
        "properties": {
            "run": ref("Run"),
            "note": NULLABLE_STR,
            "order": {"type": "array", "items": {"type": "string"}},
            "services": {
                "type": "array",
                "items": {
                    "oneOf": [
                        {"type": "string"},
                        {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "state": {"type": "string"},
                                "health": NULLABLE_STR,
                            },
                        },
                    ]
                },
            },
        },
    },
    "Stats": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "cpu_percent": NULLABLE_NUM,
            "memory_bytes": NULLABLE_INT,
            "memory_limit_bytes": NULLABLE_INT,
            "sampled_at": NULLABLE_STR,
            "sample_age_seconds": NULLABLE_NUM,
        },
    },
    "GroupSummary": {
        "type": "object",
        "required": ["name", "running", "total", "start_order", "stop_order"],
        "properties": {
            "name": {"type": "string"},
            "running": {"type": "integer"},
            "total": {"type": "integer"},
            "start_order": {"type": "array", "items": {"type": "string"}},
            "stop_order": {"type": "array", "items": {"type": "string"}},
            "services": {"type": "array", "items": ref("Service")},
        },
    },
    "GroupList": {
        "type": "object",
        "required": ["groups"],
        "properties": {"groups": {"type": "array", "items": ref("GroupSummary")}},
    },
    "Config": {
        "type": "object",
        "required": ["exists", "version", "variables"],
        "properties": {
            "exists": {"type": "boolean"},
            "version": {"type": "string"},
            "file": {"type": "string"},
            "variables": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "secret", "masked"],
                    "properties": {
                        "key": {"type": "string"},
                        "value": NULLABLE_STR,
                        "set": {"type": "boolean"},
                        "secret": {"type": "boolean"},
                        "masked": {"type": "boolean"},
                    },
                },
            },
        },
    },
    "ConfigSaved": {
        "type": "object",
        "required": ["saved", "changed"],
        "properties": {
            "saved": {"type": "boolean"},
            "unchanged": {"type": "boolean"},
            "changed": {"type": "array", "items": {"type": "string"}},
            "warnings": {"type": "array", "items": {"type": "object"}},
            "backup": NULLABLE_STR,
            "version": NULLABLE_STR,
            "affected_services": {"type": ["array", "null"], "items": {"type": "string"}},
            "affected_error": NULLABLE_STR,
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "docker"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "version": {"type": "string"},
            "docker": {"type": "string"},
            "websockets": {"type": "integer"},
            "docker_version": NULLABLE_STR,
        },
    },
    "Ready": {
        "type": "object",
        "required": ["status", "reasons"],
        "properties": {
            "status": {"enum": ["ready", "not ready"]},
            "reasons": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def _problem(description: str) -> dict:
    return {"description": description, "content": {"application/problem+json": {"schema": ref("Problem")}}}


RESPONSES = {
    "Unauthorized": _problem("No valid token or session (`WWW-Authenticate: Bearer`)."),
    "Forbidden": _problem("The token's role is too low, or a cookie request lacks CSRF/Origin."),
    "NotFound": _problem("No such stack, service, group or run (checked before anything runs)."),
    "TooMany": _problem("Rate limit passed: see `Retry-After` (seconds)."),
    "Conflict": _problem("Another action runs on the stack, or the action would stop Stackpilot itself."),
    "Invalid": _problem("A parameter is out of range or names something the stack does not define."),
    "Unavailable": _problem("The stack's Docker engine or Docker Compose does not answer."),
}

T_ST, T_SV, T_GR, T_CF, T_PR = "Stacks", "Services", "Groups", "Configuration", "Probes"
ST = "/stacks/{stack}"
PATHS = {
    "/stacks": {"get": op("List the stacks you may see", {"200": ok(ref("StackList"))}, tag=T_ST)},
    ST + "/status": {
        "get": op(
            "Stack status: every service with state, health, ports, uptime, restarts, CPU/memory",
            {"200": ok(ref("StackStatus"))},
            [S],
            tag=T_ST,
        )
    },
    ST + "/up": {
        "post": op(
            "Start the stack (docker compose up -d)",
            ACTION,
            [S, WAIT],
            "operator",
            T_ST,
            {"type": "object", "properties": {"profiles": {"type": "array", "items": {"type": "string"}}}},
            "`profiles` replaces the stack's saved profiles for this run.",
        )
    },
    ST + "/down": {
        "post": op(
            "Stop and remove the stack's containers",
            ACTION,
            [S, WAIT],
            "operator",
            T_ST,
            {"type": "object", "properties": {"volumes": {"type": "boolean"}}},
            'Volumes are deleted only with `"volumes": true`.',
        )
    },
    ST + "/pull": {"post": op("Pull the stack's images", ACTION, [S, WAIT], "operator", T_ST)},
    ST + "/restart": {"post": op("Restart the stack's services", ACTION, [S, WAIT], "operator", T_ST)},
    ST + "/build": {
        "post": op(
            "Build the images of the stack's services that have a build section",
            ACTION,
            [S, WAIT],
            "operator",
            T_ST,
            {"type": "object", "properties": {"pull": {"type": "boolean"}, "no_cache": {"type": "boolean"}}},
            "Runs `compose build`; running containers stay until recreated (422 when nothing is built here).",
        )
    },
    ST + "/runs/{run_id}": {
        "get": op(
            "A Compose run: status, exit code, output lines from `offset`",
            {"200": ok(ref("Run"))},
            [
                S,
                {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            ],
            "operator",
            T_ST,
        )
    },
    "/runs/{run_id}": {
        "get": op(
            "A Compose run by id alone (of a stack you may see)",
            {"200": ok(ref("Run"))},
            [
                {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            ],
            "operator",
            T_ST,
        )
    },
    ST + "/services": {"get": op("The services", {"200": ok(ref("ServiceList"))}, [S], tag=T_SV)},
    ST + "/services/{name}": {
        "get": op("One service with its containers", {"200": ok(ref("Service"))}, [S, SVC], tag=T_SV)
    },
    ST + "/services/{name}/start": {"post": op("Start a service", ACTION, [S, SVC, WAIT], "operator", T_SV)},
    ST + "/services/{name}/stop": {"post": op("Stop a service", ACTION, [S, SVC, WAIT, TIMEOUT], "operator", T_SV)},
    ST + "/services/{name}/restart": {
        "post": op("Restart a service", ACTION, [S, SVC, WAIT, TIMEOUT], "operator", T_SV)
    },
    ST + "/services/{name}/recreate": {
        "post": op("Recreate a service's containers (up --force-recreate)", ACTION, [S, SVC, WAIT], "operator", T_SV)
    },
    ST + "/services/{name}/logs": {
        "get": op(
            "A service's log lines (both streams, all its containers)",
            {
                "200": {
                    "description": "Plain text, or JSON lines with format=json / Accept: application/x-ndjson",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                }
            },
            [
                S,
                SVC,
                {
                    "name": "tail",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Last N lines (0..10000) or `all`; default 100.",
                },
                {
                    "name": "since",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Epoch seconds or RFC 3339.",
                },
                {
                    "name": "until",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Epoch seconds or RFC 3339.",
                },
                {"name": "timestamps", "in": "query", "schema": {"type": "boolean"}},
                {"name": "format", "in": "query", "schema": {"enum": ["text", "json"]}},
                {
                    "name": "follow",
                    "in": "query",
                    "schema": {"type": "boolean"},
                    "description": "Stream as the log grows (one container: `container`), until `until` or you leave.",
                },
                {
                    "name": "container",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1},
                    "description": "The container number to follow (default: the first).",
                },
                {
                    "name": "max_seconds",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 3600},
                    "description": "A followed stream ends after this long (default 300); reconnect with `since`.",
                },
            ],
            tag=T_SV,
        )
    },
    ST + "/services/{name}/stats": {
        "get": op("The latest CPU/memory sample and its age", {"200": ok(ref("Stats"))}, [S, SVC], tag=T_SV)
    },
    ST + "/groups": {
        "get": op("Service groups with their start and stop order", {"200": ok(ref("GroupList"))}, [S], tag=T_GR)
    },
    ST + "/groups/{name}": {
        "get": op("One group with its services", {"200": ok(ref("GroupSummary"))}, [S, GRP], tag=T_GR)
    },
    ST + "/groups/{name}/start": {
        "post": op("Start a group, dependencies first", ACTION, [S, GRP, WAIT], "operator", T_GR)
    },
    ST + "/groups/{name}/stop": {
        "post": op("Stop a group, dependents first", ACTION, [S, GRP, WAIT, TIMEOUT], "operator", T_GR)
    },
    ST + "/config": {
        "get": op(
            "The .env variables (secrets masked)",
            {"200": ok(ref("Config"))},
            [
                S,
                {
                    "name": "reveal",
                    "in": "query",
                    "schema": {"type": "boolean"},
                    "description": "Show secret values too (audited).",
                },
            ],
            "admin",
            T_CF,
            description="The `ETag` is the file's version.",
        ),
        "patch": op(
            "Change values (validated, backed up, conflict-checked)",
            {
                "200": ok(ref("ConfigSaved")),
                "409": {"$ref": "#/components/responses/Conflict"},
                "422": {"$ref": "#/components/responses/Invalid"},
                "428": _problem("If-Match (the version) is missing."),
            },
            [
                S,
                {
                    "name": "If-Match",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The version (ETag) the change is based on.",
                },
            ],
            "admin",
            T_CF,
            {
                "type": "object",
                "required": ["values"],
                "properties": {
                    "values": {"type": "object", "description": "KEY: value, or null to remove."},
                    "confirm_database": {"type": "boolean"},
                },
            },
            "Answers the services whose resolved configuration changed (to recreate).",
        ),
    },
}
PROBES = {
    "/livez": {
        "get": {
            "summary": "The process answers",
            "tags": [T_PR],
            "security": [],
            "responses": {"200": ok({"type": "object"})},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Store writable and engine reachable",
            "tags": [T_PR],
            "security": [],
            "responses": {"200": ok(ref("Ready")), "503": ok(ref("Ready"), "Not ready, with reasons")},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text format (needs a token unless STACKPILOT_METRICS=open)",
            "tags": [T_PR],
            "responses": {
                "200": ok({"type": "string"}, "Text format 0.0.4", "text/plain"),
                "404": {"description": "Metrics are off for this caller."},
            },
        }
    },
    "/api/health": {
        "get": {
            "summary": "Version and engine state (`degraded` without the engine)",
            "tags": [T_PR],
            "security": [],
            "responses": {"200": ok(ref("Health"))},
        }
    },
}


def document() -> dict:
    paths = {f"/api/v1{k}": copy.deepcopy(v) for k, v in PATHS.items()}
    paths.update(copy.deepcopy(PROBES))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Stackpilot API",
            "version": current_app.config.get("VERSION", "1"),
            "description": "Drive Docker Compose stacks from programs: the same rules as the pages. "
            "Make a token on your account page and send `Authorization: Bearer <token>`. "
            "Errors are RFC 9457 problem documents. Each token and each client address "
            "has a request budget per minute (429 with Retry-After past it).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": t} for t in (T_ST, T_SV, T_GR, T_CF, T_PR)],
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "responses": copy.deepcopy(RESPONSES),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A personal API token (spt_...)."}
            },
        },
    }


@bp.get("/openapi.json")
def openapi():
    return jsonify(document())


@bp.get("/reference")
@bp.get("/")
def reference():
    """The reference page: every operation of the document, grouped by tag, with its parameters."""
    doc = document()
    by_tag: dict[str, list] = {t["name"]: [] for t in doc["tags"]}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            by_tag.setdefault((operation.get("tags") or ["Other"])[0], []).append((method.upper(), path, operation))
    return render_template(
        "api/reference.html",
        doc=doc,
        by_tag=by_tag,
        schemas=doc["components"]["schemas"],
        problems=doc["components"]["responses"],
        kinds=problem_kinds(),
    )


def problem_kinds() -> list[tuple[str, int, str]]:
    """(type anchor, status, title) of every typed domain error: the `type` of a problem document."""
    from app.web.apiv1 import _kind

    seen: dict[str, tuple[str, int, str]] = {}
    todo = [StackpilotError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        kind = _kind(cls.__new__(cls))
        seen.setdefault(kind, (kind, cls.status, cls.title))
    seen["invalid-token"] = ("invalid-token", 401, "The token is unknown, revoked or expired")
    return sorted(seen.values())
