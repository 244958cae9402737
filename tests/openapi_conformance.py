"""Every response the in-process tests get is checked against ``/openapi.json``: its status is one the
operation documents, its content type one the status documents, and a JSON body validates against the
documented schema (``jsonschema``, draft 2020-12, the dialect of OpenAPI 3.1).

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
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from jsonschema import Draft202012Validator
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
        self._validators: dict[str, Draft202012Validator] = {}

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for template in self.templates:
            if template.pattern.match(path):
                operation = self.document["paths"][template.path].get(method.lower())
                return (f"{method.upper()} {template.path}", operation) if operation else None
        return None

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            # The components sit beside the schema so that its "#/components/schemas/…" references resolve.
            root = {**schema, "components": self.document["components"]}
            self._validators[key] = Draft202012Validator(root)
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
            f"{name} → {status}: {'/'.join(map(str, error.absolute_path)) or 'body'}: {error.message}"
            for error in self._validator(schema).iter_errors(instance)
        ]


@cache
def checker() -> ResponseChecker:
    return ResponseChecker(openapi_document())


def _check(response: httpx.Response) -> None:
    request = response.request
    if request.method == "HEAD":
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
