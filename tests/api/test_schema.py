"""Every documented answer matches the OpenAPI document, checked with a small hand-written validator
(schemathesis was not added: see the issue's note). The document itself is checked for shape too."""

from __future__ import annotations

import requests

from tests.api.test_api import _run_done


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        node = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def check(doc: dict, schema: dict, value, where: str = "$") -> list[str]:
    """Errors of value against the subset of JSON Schema the document uses."""
    schema = _resolve(doc, schema)
    errors: list[str] = []
    if "oneOf" in schema:
        if not any(not check(doc, s, value, where) for s in schema["oneOf"]):
            errors.append(f"{where}: matches none of oneOf")
        return errors
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    types = schema.get("type")
    if types:
        types = [types] if isinstance(types, str) else types
        python = {
            "string": str,
            "integer": int,
            "number": (int, float),
            "boolean": bool,
            "object": dict,
            "array": list,
            "null": type(None),
        }
        if not any(
            isinstance(value, python[t]) and not (t in ("integer", "number") and isinstance(value, bool)) for t in types
        ):
            return [f"{where}: {value!r} is not {types}"]
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing {key}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += check(doc, sub, value[key], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += check(doc, schema["items"], item, f"{where}[{i}]")
    return errors


def _validate(doc: dict, template: str, method: str, r: requests.Response) -> None:
    operation = doc["paths"][template][method]
    spec = operation["responses"].get(str(r.status_code))
    assert spec is not None, f"{method.upper()} {template}: {r.status_code} is not documented"
    spec = _resolve(doc, spec)
    media = r.headers["Content-Type"].split(";")[0]
    assert media in spec["content"], f"{template}: {media} not documented for {r.status_code}"
    schema = spec["content"][media]["schema"]
    value = r.json() if "json" in media and "ndjson" not in media else r.text
    errors = check(doc, schema, value)
    assert not errors, f"{method.upper()} {template} {r.status_code}: {errors[:5]}"


def test_answers_match_the_document(api_server):
    s = api_server.client("admin")
    assert requests.get(api_server.url + "/api/v1/openapi.json", timeout=10).status_code == 401
    doc = s.get(api_server.url + "/api/v1/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.1") and doc["paths"]
    for template, item in doc["paths"].items():
        for operation in item.values():
            assert operation["responses"] and operation["summary"], template
    filled = {"{stack}": "-", "{name}": "db", "{run_id}": "nope"}
    group = {"{stack}": "-", "{name}": "foundation"}
    seen = 0
    for template, item in doc["paths"].items():
        if "get" not in item:
            continue
        values = group if "/groups/" in template else filled
        path = template
        for k, v in values.items():
            path = path.replace(k, v)
        r = s.get(api_server.url + path, timeout=20)
        _validate(doc, template, "get", r)
        seen += 1
    # an action: 202 then the run; and the problems
    template = "/api/v1/stacks/{stack}/services/{name}/restart"
    r = s.post(api_server.api("/services/db/restart"), json={"timeout": 1}, timeout=30)
    _validate(doc, template, "post", r)
    run = _run_done(s, api_server.url + r.headers["Location"])
    assert run["status"] == "succeeded"
    r = s.post(api_server.api("/services/nope/restart"), timeout=10)
    _validate(doc, template, "post", r)
    r = requests.post(api_server.api("/services/db/restart"), timeout=10)
    _validate(doc, template, "post", r)
    assert seen >= 12


def test_reference_page_renders_every_operation(api_server):
    s = api_server.server.session("refreader", "viewer")
    page = s.get(api_server.url + "/api/v1/reference", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    doc = s.get(api_server.url + "/api/v1/openapi.json", timeout=10).json()
    for template in doc["paths"]:
        assert f"<code>{template}</code>" in page.text
    assert 'id="problem-invalid-name"' in page.text and 'id="problem-rate-limited"' in page.text
    assert "<script" not in page.text.split("</header>")[1]  # no inline script (strict CSP), no CDN
