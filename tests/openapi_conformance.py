"""Every response the in-process tests get is checked against ``/openapi.json``: its status is one the
operation documents, its content type one the status documents, and a JSON body validates against the
documented schema (draft 2020-12, the dialect of OpenAPI 3.1, with ``jsonschema_rs``: on a page of ten
secrets it takes 20 µs where ``jsonschema`` takes 4.6 ms, which is what makes a check of every response of
the suite cheap).

``tests/conftest.py`` installs :func:`check_responses` on every ``TestClient`` it makes (and tests that build
their own client call it too), so the whole API suite doubles as a conformance run: a document that drifts
from the server fails the test whose request showed it, naming the operation and the difference.

Requests the document does not describe are left alone: a path no template matches (unknown paths, the web
console) and a method the path does not serve (``tests/test_openapi.py`` checks the route table and the
405s). ``HEAD`` is answered by Starlette for every ``GET`` and is not described.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import jsonschema_rs
from starlette.testclient import TestClient

from donjon.api.openapi import openapi_document

# DONJON_OPENAPI_CHECK=0 turns the check off (to measure its cost, or to bisect a failure).
ENABLED = os.environ.get("DONJON_OPENAPI_CHECK", "1") != "0"


@dataclass(frozen=True)
class _Template:
    path: str
    pattern: re.Pattern[str]
    params: int


def _compile(path: str) -> _Template:
    # {path} of /v1/secret-stores/{path} is Starlette's path converter: it spans slashes.
    regex = re.sub(r"\\\{(\w+)\\\}", lambda m: "(.+)" if m.group(1) == "path" else "([^/]+)", re.escape(path))
    return _Template(path, re.compile(f"^{regex}$"), path.count("{"))


class ResponseChecker:
    """Matches a request to its operation in one OpenAPI document and lists what the response breaks."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        # Literal paths before templates, fewer parameters first: /v1/secrets/x/acl never reads as {secret_id}.
        self.templates = sorted((_compile(p) for p in document["paths"]), key=lambda t: t.params)
        self._validators: dict[str, Any] = {}

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for template in self.templates:
            if template.pattern.match(path):
                operation = self.document["paths"][template.path].get(method.lower())
                return (f"{method.upper()} {template.path}", operation) if operation else None
        return None

    def _inline(self, schema: Any) -> Any:
        """The schema with its "#/components/schemas/…" references replaced by what they name (the document
        has no recursive schema), so that each one compiles alone."""
        if isinstance(schema, list):
            return [self._inline(s) for s in schema]
        if not isinstance(schema, dict):
            return schema
        if set(schema) == {"$ref"}:
            return self._inline(self.document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
        return {k: self._inline(v) for k, v in schema.items()}

    def _validator(self, key: str, schema: dict[str, Any]) -> Any:
        if key not in self._validators:
            self._validators[key] = jsonschema_rs.Draft202012Validator(self._inline(schema))
        return self._validators[key]

    def problems(self, method: str, path: str, status: int, content_type: str | None, body: bytes) -> list[str]:
        found = self.operation(method, path)
        if found is None:
            return []
        name, operation = found
        responses = operation["responses"]
        documented = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
        if documented is None:
            return [f"{name}: status {status} is not documented (documented: {', '.join(sorted(responses))})"]
        content = documented.get("content")
        if not content:
            return []
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if not body and not media:
            return [f"{name} → {status}: no body, the document describes {', '.join(content)}"]
        media_type = content.get(media) or content.get(f"{media.split('/', 1)[0]}/*") or content.get("*/*")
        if media_type is None:
            return [f"{name} → {status}: content type {content_type!r} is not one of {', '.join(content)}"]
        schema = media_type.get("schema")
        if schema is None or not (media == "application/json" or media.endswith("+json")):
            return []
        try:
            instance = json.loads(body)
        except ValueError:
            return [f"{name} → {status}: the body is not JSON"]
        return [
            f"{name} → {status}: {'/'.join(map(str, error.instance_path)) or 'body'}: {error.message}"
            for error in self._validator(f"{name} {status} {media}", schema).iter_errors(instance)
        ]


@cache
def checker() -> ResponseChecker:
    return ResponseChecker(openapi_document())


_server_errors_expected = ContextVar("server_errors_expected", default=False)


@contextmanager
def server_errors_expected() -> Iterator[None]:
    """For a test that makes the server fail on purpose (a ciphertext altered in the database): its 500 is the
    point, so the check lets that status through; every other response is still checked."""
    token = _server_errors_expected.set(True)
    try:
        yield
    finally:
        _server_errors_expected.reset(token)


def _check(response: httpx.Response) -> None:
    request = response.request
    if request.method == "HEAD" or (response.status_code == 500 and _server_errors_expected.get()):
        return
    response.read()
    problems = checker().problems(
        request.method, request.url.path, response.status_code, response.headers.get("content-type"), response.content
    )
    if problems:
        raise AssertionError("the response disagrees with /openapi.json:\n  " + "\n  ".join(problems))


def check_responses(client: TestClient) -> TestClient:
    """Check every response ``client`` gets against the OpenAPI document (unless DONJON_OPENAPI_CHECK=0)."""
    if ENABLED:
        hooks = client.event_hooks
        client.event_hooks = {"request": hooks["request"], "response": [*hooks["response"], _check]}
    return client
