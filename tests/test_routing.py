"""The route index finds, for every request, the route Starlette's own scan of all routes would."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Match, Route

from donjon.api.app import create_app
from donjon.api.routing import RouteIndex
from donjon.config import Settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "LIST", "OPTIONS")


def _scan(routes: list[Route], scope: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """What Starlette's router does: the first full match, else the first partial one (405)."""
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route.path, child.get("path_params", {})
        if match is Match.PARTIAL and partial is None:
            partial = (route.path, child.get("path_params", {}))
    return partial or (None, {})


def _paths(template: str) -> list[str]:
    """Request paths a template serves (and near misses): ids, nested Vault paths, a trailing segment."""
    one = re.sub(r"\{[^}:]+:path\}", "a/b/c", template)
    one = re.sub(r"\{[^}]+\}", "0b4e6c9e-aaaa-bbbb-cccc-444455556666", one)
    return [one, one + "/extra", one.rsplit("/", 1)[0] or "/"]


def test_the_index_matches_as_a_scan_of_every_route(settings: Settings) -> None:
    app = create_app(settings)
    routes = [r for r in app.routes if isinstance(r, Route)]
    index = RouteIndex(app.routes)
    paths = {p for r in routes for p in _paths(r.path)} | {"/", "/nowhere", "/v1/nowhere/x", "/v2/secrets"}
    found: set[str | None] = set()
    for path in sorted(paths):
        for method in METHODS:
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            template, params = index.match(dict(scope))
            assert (template, params) == _scan(routes, dict(scope)), (method, path)
            found.add(template)
    assert found == {r.path for r in routes} | {None}  # every route was reached, and some paths reach none
