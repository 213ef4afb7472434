"""Property-based tests of the API's read side from its OpenAPI document (schemathesis): generated
path and query values against the live server; no 5xx, and every answer (2xx and problems alike)
matches its documented status, media type and schema. Writes are left out: each would start a real
Compose run, and their contract is covered by test_schema.py."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings
from schemathesis.checks import content_type_conformance
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.specs.openapi.checks import status_code_conformance


@pytest.fixture(scope="module")
def api_schema(api_server):
    token = api_server.token("admin")
    loaded = schemathesis.openapi.from_url(
        api_server.url + "/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"}
    )
    loaded.config.update(base_url=api_server.url, headers={"Authorization": f"Bearer {token}"})
    return loaded


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
REAL = {
    (p, k): v
    for p in (
        "/api/v1/stacks/{stack}/status",
        "/api/v1/stacks/{stack}/services",
        "/api/v1/stacks/{stack}/services/{name}",
        "/api/v1/stacks/{stack}/services/{name}/logs",
        "/api/v1/stacks/{stack}/services/{name}/stats",
        "/api/v1/stacks/{stack}/groups",
        "/api/v1/stacks/{stack}/config",
    )
    for k, v in (("stack", "-"), ("name", "db"))
}
REAL.update(
    {
        ("/api/v1/stacks/{stack}/groups/{name}", "stack"): "-",
        ("/api/v1/stacks/{stack}/groups/{name}", "name"): "foundation",
    }
)
schema = schemathesis.pytest.from_fixture("api_schema").include(method="GET").exclude(path="/metrics")


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_read_side(case, api_server):
    # As generated (mostly unknown names: the 404 problems), then with the path's names pinned to ones
    # the stack has (the 200 answers), keeping the generated query values. A fresh token per call:
    # each has its own budget, so no answer is a 429 that checks nothing.
    if case.query and str(case.query.get("follow", "")).lower() in ("true", "1", "yes"):
        case.query["max_seconds"] = 1  # a followed log streams until then: the call must end to be checked
    generated = dict(case.path_parameters or {})
    for path in (generated, {k: REAL.get((case.path, k), v) for k, v in generated.items()}):
        case.path_parameters = path
        headers = {"Authorization": f"Bearer {api_server.token('admin')}"}
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        assert response.status_code != 429, "the token's budget ran out: the test would check nothing"
        if not generated:
            break
