"""Route matching done once per request, among the few routes that can match.

Starlette's router tries every route's regular expression in turn, and the audit middleware has to know the
route before the router runs (its template and path parameters name the audited resource): two scans of
~70 routes per request, the Vault API's last of all. :class:`RouteIndex` sorts the routes by their leading
literal path segments, so a request is matched against only those that could match it, in the routes' own
order; its full match is left in the scope, and :class:`IndexedRouter` dispatches on it instead of scanning
again. Anything else (no route, a path without the method: 404/405, lifespan) goes to Starlette's router.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

# Where the index leaves a request's full match: (the path it matched, the route, the route's child scope).
_MATCHED = "donjon.route"
_DEPTH = 2  # leading segments indexed: /v1/<resource> tells most routes apart


def _literal_prefix(template: str) -> tuple[str, ...]:
    """The leading path segments of a route template that are literal text (up to _DEPTH of them)."""
    literal: list[str] = []
    for segment in template.split("/")[1 : _DEPTH + 1]:
        if "{" in segment:
            break
        literal.append(segment)
    return tuple(literal)


class RouteIndex:
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = [r for r in routes if isinstance(r, Route)]
        self._prefixes = [_literal_prefix(r.path) for r in self.routes]
        self._candidates: dict[tuple[str, ...], list[Route]] = {}

    def _for(self, path: str) -> list[Route]:
        key = tuple(path.split("/")[1 : _DEPTH + 1])
        candidates = self._candidates.get(key)
        if candidates is None:
            # A route can match only if its literal segments are the path's: a shorter prefix (or none) keeps
            # the route in play for more paths. Kept in the routes' order, which decides between matches.
            candidates = [r for r, p in zip(self.routes, self._prefixes, strict=True) if key[: len(p)] == p]
            if len(self._candidates) < 4096:  # paths with ids in their first segments must not grow it forever
                self._candidates[key] = candidates
        return candidates

    def match(self, scope: Scope) -> tuple[str | None, dict[str, Any]]:
        """The template of the route serving ``scope`` and its path parameters; a path served with another
        method gives its template too (405); no route: (None, {})."""
        path: str = scope["path"]
        partial: tuple[str | None, dict[str, Any]] | None = None
        # Without a root path, Starlette matches the path itself against the route's pattern: a route whose
        # pattern does not match it is neither a full nor a partial match, and is passed over at once.
        unmounted = not scope.get("root_path")
        for route in self._for(path):
            if unmounted and route.path_regex.match(path) is None:
                continue
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope[_MATCHED] = (path, route, child)
                return route.path, child.get("path_params", {})
            if match is Match.PARTIAL and partial is None:
                partial = (route.path, child.get("path_params", {}))
        return partial or (None, {})


class IndexedRouter(Router):
    """Starlette's router, dispatching at once to the route a RouteIndex matched for this very path."""

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = scope.get(_MATCHED)
        if found is not None and found[0] == scope["path"]:
            _, route, child = found
            scope.setdefault("router", self)
            scope["route"] = route
            scope.update(child)
            await route.handle(scope, receive, send)
            return
        await super().app(scope, receive, send)
