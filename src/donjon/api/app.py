"""The ASGI application: wiring of settings, storage, keystore and services to the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from donjon.api import secret_consumers, secret_metadata, secrets, versions
from donjon.api.common import AppContext, json_response
from donjon.api.errors import error_response
from donjon.api.middleware import OpenStackMiddleware
from donjon.api.openapi import openapi_document
from donjon.config import Settings
from donjon.crypto.keys import ProjectKeys
from donjon.keystores import open_keystore
from donjon.services.secrets import SecretService
from donjon.storage.database import Database

log = logging.getLogger("donjon")


def _routes() -> list[Route]:
    s, m, c = secrets, secret_metadata, secret_consumers
    return [
        Route("/", versions.root, methods=["GET"]),
        Route("/healthcheck", _healthcheck, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
        Route("/v1", versions.v1, methods=["GET"]),
        Route("/v1/secrets", s.list_secrets, methods=["GET"]),
        Route("/v1/secrets", s.create_secret, methods=["POST"]),
        Route("/v1/secrets/{secret_id}", s.get_secret, methods=["GET"]),
        Route("/v1/secrets/{secret_id}", s.put_secret, methods=["PUT"]),
        Route("/v1/secrets/{secret_id}", s.delete_secret, methods=["DELETE"]),
        Route("/v1/secrets/{secret_id}/payload", s.get_payload, methods=["GET"]),
        Route("/v1/secrets/{secret_id}/metadata", m.get_all, methods=["GET"]),
        Route("/v1/secrets/{secret_id}/metadata", m.replace_all, methods=["PUT"]),
        Route("/v1/secrets/{secret_id}/metadata", m.add_one, methods=["POST"]),
        Route("/v1/secrets/{secret_id}/metadata/{key}", m.get_one, methods=["GET"]),
        Route("/v1/secrets/{secret_id}/metadata/{key}", m.update_one, methods=["PUT"]),
        Route("/v1/secrets/{secret_id}/metadata/{key}", m.delete_one, methods=["DELETE"]),
        Route("/v1/secrets/{secret_id}/consumers", c.list_consumers, methods=["GET"]),
        Route("/v1/secrets/{secret_id}/consumers", c.add_consumer, methods=["POST"]),
        Route("/v1/secrets/{secret_id}/consumers", c.remove_consumer, methods=["DELETE"]),
    ]


async def _healthcheck(request: Request) -> Response:
    return PlainTextResponse("OK")


async def _openapi(request: Request) -> Response:
    return json_response(openapi_document())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Unknown paths are 404 and known paths with another method 405 (null description, as Barbican).
    description = None if exc.status_code == 405 else exc.detail
    return error_response(exc.status_code, description, headers=dict(exc.headers or {}))


def build_context(settings: Settings) -> tuple[AppContext, Database]:
    db = Database(settings.effective_database_url)
    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    keys = ProjectKeys(db, keystore, settings.kek_cache_seconds)
    service = SecretService(db, keys, max_secret_bytes=settings.limits.max_secret_bytes)
    return AppContext(settings=settings, secrets=service), db


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    context, db = build_context(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        db.dispose()

    app = Starlette(
        routes=_routes(),
        middleware=[Middleware(OpenStackMiddleware)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.ctx = context
    return app
