"""The OpenAPI 3.1 description served at ``/openapi.json``, written as data next to the routes it describes.

``tests/test_openapi.py`` checks that every route of the app is described and every described operation
is served, and that the document is valid OpenAPI; ``tests/openapi_conformance.py`` checks every response
of the in-process API tests against it (status, content type, body), so a response schema lists the keys
that are always there and forbids others.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import donjon
from donjon.api import acls as acls_api
from donjon.api import audit, health, representations, secret_metadata, secret_stores, versions
from donjon.api import containers as containers_api
from donjon.api import orders as orders_api
from donjon.api import quotas as quotas_api
from donjon.api import transport_keys as transport_keys_api
from donjon.api.schemas import (
    acls,
    consumers,
    containers,
    lifecycle,
    metadata,
    orders,
    quotas,
    secrets,
    shapes,
    transport_keys,
)
from donjon.api.schemas._adapter import RequestSchema
from donjon.api.schemas.shapes import NULLABLE_TIMESTAMP as _NULLABLE_TIMESTAMP
from donjon.api.schemas.shapes import TIMESTAMP as _TIMESTAMP
from donjon.api.schemas.shapes import ref as _ref
from donjon.api.schemas.shapes import string as _str

JSON = "application/json"
Schema = dict[str, Any]


# The request bodies, each the very schema object its route validates with (api/schemas/): documented is
# accepted. tests/test_openapi.py checks that each route validates with the one its operation shows.
REQUEST_BODIES: dict[str, RequestSchema] = {
    "NewSecret": secrets.SECRET,
    "NewMetadata": metadata.SECRET_METADATA,
    "NewMetadatum": metadata.SECRET_METADATUM,
    "NewSecretConsumer": consumers.SECRET_CONSUMER,
    "NewACL": acls.ACL,
    "NewProjectQuotas": quotas.PROJECT_QUOTAS,
    "NewOrder": orders.ORDER,
    "NewContainer": containers.CONTAINER,
    "NewContainerSecret": containers.CONTAINER_SECRET,
    "NewContainerConsumer": containers.CONTAINER_CONSUMER,
    "NewTransportKey": transport_keys.TRANSPORT_KEY,
    "NewVersion": lifecycle.SECRET_VERSION,
    "WrapRequest": lifecycle.WRAP,
}

SCHEMAS: dict[str, Schema] = {
    **{name: body.schema for name, body in REQUEST_BODIES.items()},
    **secret_metadata.RESPONSES,
    **representations.RESPONSES,
    **containers_api.RESPONSES,
    **acls_api.RESPONSES,
    **orders_api.RESPONSES,
    **secret_stores.RESPONSES,
    **quotas_api.RESPONSES,
    **transport_keys_api.RESPONSES,
    **audit.RESPONSES,
    **health.RESPONSES,
    **versions.RESPONSES,
    "Error": {
        "type": "object",
        "required": ["code", "title", "description"],
        "properties": {"code": {"type": "integer"}, "title": {"type": "string"}, "description": _str(nullable=True)},
    },
    "Ref": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}},
    "VersionRef": shapes.closed(
        ["secret_ref", "version"],
        {"secret_ref": {"type": "string", "format": "uri"}, "version": {"type": "integer"}},
    ),
    "Lifecycle": shapes.closed(
        ["max_reads", "reads_left", "current_version", "versions"],
        {
            "max_reads": {"type": ["integer", "null"]},
            "reads_left": {"type": ["integer", "null"]},
            "current_version": {"type": "integer"},
            "versions": {
                "type": "array",
                "items": shapes.closed(
                    ["version", "created", "readable_until"],
                    {"version": {"type": "integer"}, "created": _TIMESTAMP, "readable_until": _NULLABLE_TIMESTAMP},
                ),
            },
        },
    ),
    "WrapToken": shapes.closed(["wrap_token", "expires"], {"wrap_token": {"type": "string"}, "expires": _TIMESTAMP}),
}


def _error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _json(description: str, schema: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _with_location(response: Schema) -> Schema:
    """A consumer registration's answer: Barbican's ``Location``, ``{host_href}/v1/consumers/{id}/consumers``."""
    location = {"description": "Barbican's consumer href (names no resource)", "schema": {"type": "string"}}
    return {**response, "headers": {"Location": location}}


def _param(name: str, where: str, description: str, schema: Schema | None = None, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": where,
        "description": description,
        "required": required,
        "schema": schema or {"type": "string"},
    }


_HEADERS = [
    _param("X-Project-Id", "header", "dev auth: the caller's project"),
    _param("X-User-Id", "header", "dev auth: the caller's user"),
    _param("X-Roles", "header", "dev auth: comma-separated roles (default admin)"),
    _param("X-Auth-Token", "header", "token auth: a donjon token (or Authorization: Bearer)"),
    _param(
        "OpenStack-API-Version",
        "header",
        "key-manager 1.0 to 1.2, or latest (absent: 1.0)",
        {"enum": ["key-manager 1.0", "key-manager 1.1", "key-manager 1.2", "key-manager latest"]},
    ),
]
_PAGING = [
    _param("limit", "query", "page size (default 10, at most 100)", {"type": "integer"}),
    _param("offset", "query", "first item (default 0)", {"type": "integer"}),
]
_LIST_FILTERS = [
    _param("name", "query", "SQL LIKE on the name"),
    _param("alg", "query", "SQL LIKE on the algorithm"),
    _param("mode", "query", "SQL LIKE on the mode"),
    _param("bits", "query", "exact bit length", {"type": "integer"}),
    _param("secret_type", "query", "exact secret type"),
    _param("acl_only", "query", "true: the secrets shared with the caller through ACLs"),
    *(_param(when, "query", "comma list of [gt|gte|lt|lte:]ISO-8601") for when in ("created", "updated", "expiration")),
    _param("sort", "query", "comma list of key[:asc|desc]"),
]
# What any request may be answered before its route runs: a malformed (400) or unsupported (406)
# OpenStack-API-Version, and request heads over the limits (431, donjon server's HTTP layer).
_ANY_REQUEST = {
    "400": _error("invalid input, or a malformed OpenStack-API-Version"),
    "406": _error("an OpenStack-API-Version out of range (or, for payloads, an unsupported Accept)"),
    "431": _error("a request header over 8 KiB, or request headers over 32 KiB in all"),
}
_UNAVAILABLE = {
    "description": "the database, Keystone, a secret store or the audit log is unreachable: retry later",
    "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
    "content": {JSON: {"schema": _ref("Error")}},
}
_COMMON_ERRORS = {
    **_ANY_REQUEST,
    "401": _error("not authenticated"),
    "403": _error("denied by policy or quota"),
    "404": _error("no such resource, or not yours"),
    "503": _UNAVAILABLE,
}
# Operations that read a request body: past limits.max_request_bytes (or max_secret_bytes), or of another type.
_BODY_ERRORS = {"413": _error("body too large"), "415": _error("unsupported Content-Type")}


def _op(
    summary: str,
    responses: dict[str, Schema],
    *,
    body: str | None = None,
    params: list[Schema] | None = None,
    raw_body: bool = False,
) -> Schema:
    errors = {**_COMMON_ERRORS, **(_BODY_ERRORS if body or raw_body else {})}
    operation: Schema = {
        "summary": summary,
        "parameters": [*_HEADERS, *(params or [])],
        "responses": {**errors, **responses},
    }
    if body:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
    if raw_body:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    return operation


def _path_param(name: str) -> Schema:
    return _param(name, "path", name.replace("_", " "), required=True)


_CREATED = {"201": _json("created", "Ref")}
_NO_CONTENT = {"204": {"description": "done"}}
_ACL = {
    "get": _op("Read the ACL", {"200": _json("the read ACL", "ACL")}),
    "put": _op("Replace the ACL", {"200": _json("acl_ref", "Ref")}, body="NewACL"),
    "patch": _op("Merge into the ACL", {"200": _json("acl_ref", "Ref")}, body="NewACL"),
    "delete": _op(
        "Remove the ACL (back to project access)",
        {"200": {"description": "JSON null, as Barbican", "content": {JSON: {"schema": {"type": "null"}}}}},
    ),
}


def _paths() -> dict[str, Schema]:
    secret, container, order = _path_param("secret_id"), _path_param("container_id"), _path_param("order_id")
    payload_types = {
        t: {"schema": {"type": "string", "format": "binary"}}
        for t in ("application/octet-stream", "text/plain", "application/pkcs8")
    }
    return {
        "/": {
            "get": {
                "summary": "Version discovery",
                "responses": {
                    "300": {"description": "the versions", "content": {JSON: {"schema": {"type": "object"}}}},
                    "200": {"description": "?build: the server version", "content": {JSON: {"schema": _ref("Build")}}},
                    "302": {
                        "description": "Accept: application/json-home: to /v1/, as Barbican",
                        "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
                    },
                    **_ANY_REQUEST,
                },
            }
        },
        "/healthcheck": {
            "get": {
                "summary": "Liveness",
                "responses": {
                    "200": {"description": "OK", "content": {"text/plain": {"schema": {"const": "OK"}}}},
                    **_ANY_REQUEST,
                },
            }
        },
        "/livez": {
            "get": {
                "summary": "Liveness probe: the process serves (no check of its dependencies)",
                "responses": {"200": _json('{"status": "ok"}', "Live"), **_ANY_REQUEST},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness probe: database, migrations, keystore and audit log",
                "responses": {
                    "200": {"description": "ready", "content": {JSON: {"schema": _ref("Readiness")}}},
                    "503": {
                        "description": "a check failed (named in checks)",
                        "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
                        "content": {JSON: {"schema": _ref("Readiness")}},
                    },
                    **_ANY_REQUEST,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI", "content": {JSON: {"schema": {"type": "object"}}}},
                    **_ANY_REQUEST,
                },
            }
        },
        "/v1": {"get": _op("The v1 version document", {"200": _json("version", "V1")})},
        "/v1/secrets": {
            "get": _op(
                "List the project's secrets", {"200": _json("a page", "SecretList")}, params=[*_PAGING, *_LIST_FILTERS]
            ),
            "post": _op(
                "Store a secret (one step) or its metadata (two steps)",
                {**_CREATED, "413": _error("too large"), "415": _error("not JSON")},
                body="NewSecret",
            ),
        },
        "/v1/secrets/{secret_id}": {
            "parameters": [secret],
            "get": _op(
                "Metadata (Accept: application/json), else the payload (deprecated)",
                {
                    "200": {
                        "description": "the secret's metadata, or its payload in the type Accept names",
                        "content": {JSON: {"schema": _ref("Secret")}, **payload_types},
                    }
                },
            ),
            "put": _op(
                "Second step: the payload of a secret created without one",
                {**_NO_CONTENT, "409": _error("already has a payload"), "415": _error("content type")},
                raw_body=True,
            ),
            "delete": _op(
                "Delete the secret and its ciphertext",
                _NO_CONTENT,
                params=[_param("force", "query", "1.2: delete even with consumers")],
            ),
        },
        "/v1/secrets/{secret_id}/payload": {
            "parameters": [secret],
            "get": _op(
                "The payload, in the type the Accept header names",
                {"200": {"description": "bytes", "content": payload_types}, "406": _error("unsupported Accept")},
                params=[
                    _param(
                        "version",
                        "query",
                        "donjon extension: a previous version, readable during its grace period",
                        {"type": "integer", "minimum": 1},
                    )
                ],
            ),
        },
        "/v1/secrets/{secret_id}/versions": {
            "parameters": [secret],
            "post": _op(
                "donjon extension: store a new payload as the current version (rotation)",
                {"201": _json("the new version", "VersionRef"), "409": _error("no payload yet, or max_reads")},
                body="NewVersion",
            ),
        },
        "/v1/secrets/{secret_id}/lifecycle": {
            "parameters": [secret],
            "get": _op(
                "donjon extension: max_reads, reads_left, the current and readable previous versions",
                {"200": _json("lifecycle", "Lifecycle")},
            ),
        },
        "/v1/secrets/{secret_id}/wrap": {
            "parameters": [secret],
            "post": {
                **_op(
                    "donjon extension: a single-use token that fetches the payload once (needs secret:decrypt)",
                    {
                        "201": _json("the token, shown once", "WrapToken"),
                        "409": _error("the secret has lifecycle.wrap_max_outstanding tokens outstanding"),
                        **_BODY_ERRORS,
                    },
                ),
                "requestBody": {"required": False, "content": {JSON: {"schema": _ref("WrapRequest")}}},
            },
        },
        "/v1/unwrap": {
            "post": {
                "summary": "donjon extension: the payload behind a wrap token, once; no other credential",
                "parameters": [
                    # Not "required": without it the answer is the same 404 as for any refused token.
                    _param("X-Wrap-Token", "header", "the token from POST /v1/secrets/{id}/wrap (needed)"),
                    _param("Accept", "header", "as for GET /v1/secrets/{id}/payload"),
                ],
                "responses": {
                    **_ANY_REQUEST,
                    "200": {"description": "bytes", "content": payload_types},
                    "404": _error("no, unknown, used, expired or revoked token (one answer for all)"),
                    "406": _error("unsupported Accept"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/v1/secrets/{secret_id}/metadata": {
            "parameters": [secret],
            "get": _op("User metadata", {"200": _json("metadata", "Metadata")}),
            "put": _op("Replace user metadata", {"201": _json("metadata_ref", "Ref")}, body="NewMetadata"),
            "post": _op(
                "Add one key", {"201": _json("the key", "Metadatum"), "409": _error("exists")}, body="NewMetadatum"
            ),
        },
        "/v1/secrets/{secret_id}/metadata/{key}": {
            "parameters": [secret, _path_param("key")],
            "get": _op("One key", {"200": _json("the key", "Metadatum")}),
            "put": _op(
                "Update one key",
                {"200": _json("the key", "Metadatum"), "409": _error("the body names another key")},
                body="NewMetadatum",
            ),
            "delete": _op("Remove one key", _NO_CONTENT),
        },
        "/v1/secrets/{secret_id}/consumers": {
            "parameters": [secret],
            "get": _op("Consumers", {"200": _json("a page", "SecretConsumerList")}, params=_PAGING),
            "post": _op(
                "Register a consumer", {"200": _with_location(_json("the secret", "Secret"))}, body="NewSecretConsumer"
            ),
            "delete": _op("Remove a consumer", {"200": _json("the secret", "Secret")}, body="NewSecretConsumer"),
        },
        "/v1/secrets/{secret_id}/acl": {"parameters": [secret], **_ACL},
        "/v1/containers": {
            "get": _op(
                "List containers",
                {"200": _json("a page", "ContainerList")},
                params=[*_PAGING, _param("name", "query", "SQL LIKE"), _param("type", "query", "exact")],
            ),
            "post": _op("Create a container", _CREATED, body="NewContainer"),
        },
        "/v1/containers/{container_id}": {
            "parameters": [container],
            "get": _op("A container", {"200": _json("the container", "Container")}),
            "delete": _op("Delete the container (its secrets stay)", _NO_CONTENT),
        },
        "/v1/containers/{container_id}/secrets": {
            "parameters": [container],
            "post": _op(
                "Add a secret to a generic container",
                {**_CREATED, "409": _error("already in the container")},
                body="NewContainerSecret",
            ),
            "delete": _op("Remove a secret from a generic container", _NO_CONTENT, body="NewContainerSecret"),
        },
        "/v1/containers/{container_id}/consumers": {
            "parameters": [container],
            "get": _op("Consumers", {"200": _json("a page", "ContainerConsumerList")}, params=_PAGING),
            "post": _op(
                "Register a consumer",
                {"200": _with_location(_json("the container", "Container"))},
                body="NewContainerConsumer",
            ),
            "delete": _op(
                "Remove a consumer", {"200": _json("the container", "Container")}, body="NewContainerConsumer"
            ),
        },
        "/v1/containers/{container_id}/acl": {"parameters": [container], **_ACL},
        "/v1/orders": {
            "get": _op(
                "List orders (password orders only with type=password)",
                {"200": _json("a page", "OrderList")},
                params=[
                    *_PAGING,
                    _param("type", "query", "key, asymmetric or password"),
                    _param("meta", "query", "substring of the meta"),
                ],
            ),
            "post": _op("Queue a generation", {"202": _json("order_ref", "Ref")}, body="NewOrder"),
            "put": _op("Refused (405), as in Barbican", {"405": _error("not supported")}),
        },
        "/v1/orders/{order_id}": {
            "parameters": [order],
            "get": _op("An order", {"200": _json("the order", "Order")}),
            "delete": _op("Delete the order (its secrets stay)", _NO_CONTENT),
        },
        "/v1/quotas": {"get": _op("The caller's effective quotas", {"200": _json("quotas", "EffectiveQuotas")})},
        "/v1/project-quotas": {
            "get": _op("Projects with quota overrides", {"200": _json("a page", "ProjectQuotasList")}, params=_PAGING)
        },
        "/v1/project-quotas/{project_id}": {
            "parameters": [_path_param("project_id")],
            "get": _op("A project's overrides", {"200": _json("project_quotas", "ProjectQuotas")}),
            "put": _op("Set overrides (given keys only)", _NO_CONTENT, body="NewProjectQuotas"),
            "delete": _op("Remove the overrides", _NO_CONTENT),
        },
        # One route serves the whole subtree, as Barbican's controllers do: {path} is "global-default",
        # "preferred", a store id, or "{id}/preferred"; anything else is a 405. Without external stores
        # (docs/configuration.md) every operation is Barbican's 404 "Multiple backends support is not enabled".
        "/v1/secret-stores": {
            "get": _op(
                "The configured secret stores (the database store first)",
                {"200": _json("the stores", "SecretStoreList"), "404": _error("no external store configured")},
            )
        },
        "/v1/secret-stores/{path}": {
            "parameters": [
                _param("path", "path", "global-default, preferred, {store id} or {store id}/preferred", required=True)
            ],
            "get": _op(
                "global-default, preferred (the project's) or a store by id",
                {
                    "200": _json("the store", "SecretStore"),
                    "404": _error("no external store configured, no such store, or no preferred store"),
                    "405": _error("a path that names no store"),
                },
            ),
            "post": _op(
                "{store id}/preferred: make the store the project's preferred one (project admin)",
                {**_NO_CONTENT, "405": _error("a path other than {store id}/preferred")},
            ),
            "delete": _op(
                "{store id}/preferred: remove the project's preference, whatever store the path names, as Barbican",
                {**_NO_CONTENT, "405": _error("a path other than {store id}/preferred")},
            ),
        },
        "/v1/audit/records": {
            "get": _op(
                "donjon extension: the last outcome records of the caller's project, newest first (audit:get)",
                {"200": _json("records", "AuditRecords"), "404": _error("auditing is off")},
                params=[_param("limit", "query", "1 to 500, default 50", {"type": "integer", "minimum": 1})],
            )
        },
        "/v1/audit/verify": {
            "get": _op(
                "donjon extension: the local audit chain checked end to end (audit:get)",
                {"200": _json("the verdict", "AuditVerdict"), "404": _error("auditing is off")},
            )
        },
        "/v1/transport_keys": {
            "get": _op(
                "Transport key refs (cloud-wide)",
                {"200": _json("a page of refs", "TransportKeyList")},
                params=[*_PAGING, _param("plugin_name", "query", "exact")],
            ),
            "post": _op("Register a transport key (admin)", _CREATED, body="NewTransportKey"),
        },
        "/v1/transport_keys/{transport_key_id}": {
            "parameters": [_path_param("transport_key_id")],
            "get": _op(
                "A transport key, as Barbican's row",
                {"200": _json("the row", "TransportKey")},
            ),
            "delete": _op("Delete a transport key (admin)", _NO_CONTENT),
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "donjon",
            "version": donjon.__version__,
            "description": "OpenStack Barbican v1 compatible secrets API (see docs/api-compatibility.md).",
        },
        "paths": _paths(),
        "components": {"schemas": SCHEMAS},
    }
