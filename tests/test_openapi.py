"""The OpenAPI description matches the routes the app serves, and is valid OpenAPI 3.1."""

from __future__ import annotations

import re
from typing import Any
from unittest.mock import ANY

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from donjon.api.app import _routes
from donjon.api.openapi import REQUEST_BODIES, openapi_document
from donjon.api.schemas._adapter import RequestSchema
from tests.openapi_conformance import checker

_DOC_METHODS = {"get", "put", "post", "delete", "patch"}


def _served() -> set[tuple[str, str]]:
    served = set()
    for route in _routes():
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        served |= {(path, m.lower()) for m in route.methods or () if m != "HEAD"}
    return served


def _documented() -> set[tuple[str, str]]:
    paths = openapi_document()["paths"]
    return {(path, m) for path, item in paths.items() for m in item if m in _DOC_METHODS}


def test_every_route_is_documented_and_every_documented_operation_served() -> None:
    assert _served() - _documented() == set(), "served but not documented"
    assert _documented() - _served() == set(), "documented but not served"


def test_document_is_valid_openapi() -> None:
    validate(openapi_document())


def test_document_is_served(app_client: TestClient) -> None:
    r = app_client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json() == openapi_document()


def test_a_405_allows_every_method_the_path_serves(app_client: TestClient) -> None:
    headers = {"X-Project-Id": "allow"}
    documented = openapi_document()["paths"]
    for path, concrete in (
        ("/v1/secrets", "/v1/secrets"),
        ("/v1/containers/{container_id}", "/v1/containers/0"),
        ("/v1/secrets/{secret_id}/acl", "/v1/secrets/0/acl"),
        ("/v1/orders/{order_id}", "/v1/orders/0"),
    ):
        r = app_client.request("TRACE", concrete, headers=headers)
        assert r.status_code == 405
        allowed = set(r.headers["Allow"].split(", "))
        assert allowed - {"HEAD"} == {m.upper() for m in documented[path] if m in _DOC_METHODS}, path


def test_every_operation_documents_the_statuses_any_request_may_get() -> None:
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method not in _DOC_METHODS:
                continue
            statuses = set(operation["responses"])
            assert {"400", "406", "431"} <= statuses, (method, path)
            if path not in ("/", "/healthcheck", "/livez", "/readyz", "/openapi.json"):
                assert "503" in statuses, (method, path)
                assert "Retry-After" in operation["responses"]["503"]["headers"]
                if path != "/v1/unwrap":  # the token is the only credential
                    assert "401" in statuses, (method, path)
            if "requestBody" in operation:
                assert {"413", "415"} <= statuses, (method, path)


def test_the_response_check_reports_what_the_document_does_not_describe() -> None:
    """tests/openapi_conformance.py, which every in-process response of the suite goes through, can fail."""
    check = checker().problems
    secret = "/v1/secrets/0d6d1b43-5c5d-4a3f-9d8c-2f1f7b0b1a11"
    error = b'{"code": 404, "title": "Not Found", "description": "Not Found"}'
    assert check("GET", secret, 404, "application/json", error) == []
    assert check("GET", secret, 418, "application/json", error) == [
        f"GET /v1/secrets/{{secret_id}}: status 418 is not documented (documented: {_statuses()})"
    ]
    assert check("GET", secret, 404, "text/html", b"<p>") == [
        "GET /v1/secrets/{secret_id} → 404: content type 'text/html' is not one of application/json"
    ]
    assert check("GET", secret, 404, "application/json", b'{"code": "404"}') == [
        'GET /v1/secrets/{secret_id} → 404: body: "title" is a required property',
        'GET /v1/secrets/{secret_id} → 404: body: "description" is a required property',
        'GET /v1/secrets/{secret_id} → 404: code: "404" is not of type "integer"',
    ]
    # The ACL path is its own operation, not a secret id with a suffix; undocumented paths are left alone.
    assert checker().operation("GET", f"{secret}/acl") == ("GET /v1/secrets/{secret_id}/acl", ANY)
    assert check("GET", "/no/such/path", 404, "text/plain", b"") == []


def _statuses() -> str:
    return ", ".join(sorted(openapi_document()["paths"]["/v1/secrets/{secret_id}"]["get"]["responses"]))


def _request_bodies() -> dict[tuple[str, str], str]:
    """(path, method) -> the component name of the operation's JSON request body."""
    bodies = {}
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {}) if method in _DOC_METHODS else {}
            if "application/json" in content:
                bodies[(path, method)] = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    return bodies


def test_every_request_body_is_the_schema_its_route_validates_with(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"X-Project-Id": "bodies"}
    secret = app_client.post("/v1/secrets", json={"name": "s"}, headers=headers).json()["secret_ref"]
    container = app_client.post("/v1/containers", json={"type": "generic"}, headers=headers).json()["container_ref"]
    concrete = {
        "{secret_id}": secret.rsplit("/", 1)[1],
        "{container_id}": container.rsplit("/", 1)[1],
        "{key}": "k",
        "{project_id}": "bodies",
    }
    used: list[RequestSchema] = []
    validate = RequestSchema.validate

    def recording(self: RequestSchema, body: Any) -> Any:
        used.append(self)
        return validate(self, body)

    monkeypatch.setattr(RequestSchema, "validate", recording)
    components = openapi_document()["components"]["schemas"]
    checked = set()
    for (path, method), name in _request_bodies().items():
        assert name in REQUEST_BODIES, f"{method} {path}: {name} is not a schema of api/schemas"
        url = path
        for placeholder, value in concrete.items():
            url = url.replace(placeholder, value)
        used.clear()
        r = app_client.request(method.upper(), url, json={"unknown": 1}, headers=headers)
        assert r.status_code < 500, (method, path, r.text)
        assert used and used[0].schema is components[name], f"{method} {path} does not validate with {name}"
        checked.add(name)
    assert checked == set(REQUEST_BODIES), "a request schema that no route shows"
