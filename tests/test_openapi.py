"""The OpenAPI description matches the routes the app serves, and is valid OpenAPI 3.1."""

from __future__ import annotations

import re

from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from donjon.api.app import _routes
from donjon.api.openapi import openapi_document

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
