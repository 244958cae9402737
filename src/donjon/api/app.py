"""The ASGI application: wiring of settings, storage, keystore and services to the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from donjon.api import (
    acls,
    audit,
    containers,
    health,
    orders,
    quotas,
    secret_consumers,
    secret_metadata,
    secret_stores,
    secret_versions,
    secrets,
    transport_keys,
    versions,
    wraps,
)
from donjon.api.audit_middleware import EXEMPT, AuditMiddleware
from donjon.api.common import AppContext, json_response
from donjon.api.errors import error_response
from donjon.api.middleware import OpenStackMiddleware
from donjon.api.observability_middleware import ObservabilityMiddleware, metrics_route
from donjon.api.openapi import openapi_document
from donjon.api.routing import IndexedRouter, RouteIndex
from donjon.api.vault import vault_router
from donjon.audit import audit_paths, build_auditor
from donjon.audit.reader import AuditLog
from donjon.auth.tokens import TokenService, load_token_key
from donjon.config import Settings
from donjon.keystores.keyring import open_chain
from donjon.observability import metrics as observed
from donjon.observability.keystore import InstrumentedKeystore
from donjon.policy import Policy
from donjon.services.access import AccessCheck
from donjon.services.acls import AclService
from donjon.services.containers import ContainerService
from donjon.services.kv import KvService
from donjon.services.lifecycle import LifecycleDeps
from donjon.services.orders import OrderProcessor, OrderService
from donjon.services.project_keys import ProjectKeys
from donjon.services.quotas import QuotaAdmin, Quotas
from donjon.services.readiness import Readiness
from donjon.services.reaper import Reaper
from donjon.services.secrets import SecretService
from donjon.services.stores import SecretStoreService, StoreRegistry
from donjon.services.transit import TransitService
from donjon.services.transport_keys import TransportKeyService
from donjon.services.versions import SecretVersions
from donjon.services.wraps import WrapService, wrap_key
from donjon.storage.database import Database
from donjon.timeutil import SYSTEM_CLOCK, Clock
from donjon.ui import UNAUDITED, ui_routes
from donjon.workers.orders import OrderWorker
from donjon.workers.reaper import ExpiryReaper

if TYPE_CHECKING:
    from donjon.auth.keystone import KeystoneTokens

log = logging.getLogger("donjon")


def _routes() -> list[Route]:
    s, m, c = secrets, secret_metadata, secret_consumers
    k, o, q, t = containers, orders, quotas, transport_keys
    return [
        Route("/", versions.root, methods=["GET"]),
        Route("/healthcheck", _healthcheck, methods=["GET"]),
        Route("/livez", health.livez, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
        Route("/v1", versions.v1, methods=["GET"]),
        Route("/v1/secrets", s.list_secrets, methods=["GET"]),
        Route("/v1/secrets", s.create_secret, methods=["POST"]),
        Route("/v1/secrets/{secret_id}", s.get_secret, methods=["GET"]),
        Route("/v1/secrets/{secret_id}", s.put_secret, methods=["PUT"]),
        Route("/v1/secrets/{secret_id}", s.delete_secret, methods=["DELETE"]),
        Route("/v1/secrets/{secret_id}/payload", s.get_payload, methods=["GET"]),
        Route("/v1/secrets/{secret_id}/versions", secret_versions.create_version, methods=["POST"]),
        Route("/v1/secrets/{secret_id}/lifecycle", secret_versions.get_lifecycle, methods=["GET"]),
        Route("/v1/secrets/{secret_id}/wrap", wraps.wrap_secret, methods=["POST"]),
        Route("/v1/unwrap", wraps.unwrap, methods=["POST"]),
        Route("/v1/secrets/{secret_id}/metadata", m.get_all, methods=["GET"]),
        Route("/v1/secrets/{secret_id}/metadata", m.replace_all, methods=["PUT"]),
        Route("/v1/secrets/{secret_id}/metadata", m.add_one, methods=["POST"]),
        Route("/v1/secrets/{secret_id}/metadata/{key}", m.get_one, methods=["GET"]),
        Route("/v1/secrets/{secret_id}/metadata/{key}", m.update_one, methods=["PUT"]),
        Route("/v1/secrets/{secret_id}/metadata/{key}", m.delete_one, methods=["DELETE"]),
        Route("/v1/secrets/{secret_id}/consumers", c.list_consumers, methods=["GET"]),
        Route("/v1/secrets/{secret_id}/consumers", c.add_consumer, methods=["POST"]),
        Route("/v1/secrets/{secret_id}/consumers", c.remove_consumer, methods=["DELETE"]),
        *_acl_routes("/v1/secrets/{secret_id}/acl"),
        Route("/v1/containers", k.list_containers, methods=["GET"]),
        Route("/v1/containers", k.create_container, methods=["POST"]),
        Route("/v1/containers/{container_id}", k.get_container, methods=["GET"]),
        Route("/v1/containers/{container_id}", k.delete_container, methods=["DELETE"]),
        Route("/v1/containers/{container_id}/secrets", k.add_secret, methods=["POST"]),
        Route("/v1/containers/{container_id}/secrets", k.remove_secret, methods=["DELETE"]),
        Route("/v1/containers/{container_id}/consumers", k.list_consumers, methods=["GET"]),
        Route("/v1/containers/{container_id}/consumers", k.add_consumer, methods=["POST"]),
        Route("/v1/containers/{container_id}/consumers", k.remove_consumer, methods=["DELETE"]),
        *_acl_routes("/v1/containers/{container_id}/acl"),
        Route("/v1/orders", o.list_orders, methods=["GET"]),
        Route("/v1/orders", o.create_order, methods=["POST"]),
        Route("/v1/orders", o.put_orders, methods=["PUT"]),
        Route("/v1/orders/{order_id}", o.get_order, methods=["GET"]),
        Route("/v1/orders/{order_id}", o.delete_order, methods=["DELETE"]),
        Route("/v1/quotas", q.get_quotas, methods=["GET"]),
        Route("/v1/project-quotas", q.list_project_quotas, methods=["GET"]),
        Route("/v1/project-quotas/{project_id}", q.get_project_quotas, methods=["GET"]),
        Route("/v1/project-quotas/{project_id}", q.put_project_quotas, methods=["PUT"]),
        Route("/v1/project-quotas/{project_id}", q.delete_project_quotas, methods=["DELETE"]),
        Route("/v1/secret-stores", secret_stores.secret_stores, methods=["GET"]),
        Route("/v1/secret-stores/{path:path}", secret_stores.secret_stores, methods=["GET", "POST", "DELETE"]),
        Route("/v1/audit/records", audit.list_records, methods=["GET"]),
        Route("/v1/audit/verify", audit.verify_chain, methods=["GET"]),
        Route("/v1/transport_keys", t.list_transport_keys, methods=["GET"]),
        Route("/v1/transport_keys", t.create_transport_key, methods=["POST"]),
        Route("/v1/transport_keys/{transport_key_id}", t.get_transport_key, methods=["GET"]),
        Route("/v1/transport_keys/{transport_key_id}", t.delete_transport_key, methods=["DELETE"]),
    ]


def _acl_routes(path: str) -> list[Route]:
    return [
        Route(path, acls.get_acl, methods=["GET"]),
        Route(path, acls.put_acl, methods=["PUT"]),
        Route(path, acls.patch_acl, methods=["PATCH"]),
        Route(path, acls.delete_acl, methods=["DELETE"]),
    ]


async def _healthcheck(request: Request) -> Response:
    return PlainTextResponse("OK")


async def _openapi(request: Request) -> Response:
    return json_response(openapi_document())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Unknown paths are 404 and known paths with another method 405 (null description, as Barbican).
    description = None if exc.status_code == 405 else exc.detail
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route that matched the path; a path here is served by
        # one route per method, so Allow lists them all.
        headers["Allow"] = ", ".join(_methods_of(request))
    return error_response(exc.status_code, description, headers=headers)


def _methods_of(request: Request) -> list[str]:
    path = request.scope["path"]
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return sorted(methods)


def build_context(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> tuple[AppContext, Database]:
    """Every service of the application, each given the same ``clock`` (the machine's, unless a test moves it)."""
    db = Database(settings.effective_database_url)
    keystore = InstrumentedKeystore(open_chain(settings.keystore_chain()), settings.keystore.type)
    keys = ProjectKeys(
        db, keystore, settings.kek_cache_seconds, max_projects=settings.kek_cache_max_projects, clock=clock
    )
    policy = Policy(policy_file=settings.policy_file, enforce_new_defaults=settings.enforce_new_defaults)
    quotas = Quotas(settings.quotas)
    registry = StoreRegistry.open(settings.configured_stores(), settings.default_store, clock=clock)
    stores = SecretStoreService(db, policy, registry, clock=clock)
    processor = OrderProcessor(db, keys, stores, clock=clock)
    transit = TransitService(db, keys, policy, quotas, clock=clock)

    def housekeeping() -> None:  # an idle process lets go of expired KEKs and the rings opened under them
        keys.expire()
        transit.expire()

    worker = None
    if settings.orders.run_in_server:
        worker = OrderWorker(db, processor, settings.orders, housekeeping=housekeeping, clock=clock)
    lifecycle = LifecycleDeps(db, keys, settings.lifecycle, stores=registry, clock=clock)
    context = AppContext(
        settings=settings,
        policy=policy,
        secrets=SecretService(
            db, keys, policy, quotas, max_secret_bytes=settings.limits.max_secret_bytes, stores=stores, clock=clock
        ),
        containers=ContainerService(db, policy, quotas, clock=clock),
        orders=OrderService(db, keys, policy, quotas, clock=clock),
        acls=AclService(db, policy, clock=clock),
        quota_admin=QuotaAdmin(db, policy, quotas, clock=clock),
        secret_stores=stores,
        access=AccessCheck(db, policy, clock=clock),
        transport_keys=TransportKeyService(db, policy, clock=clock),
        versions=SecretVersions(lifecycle, policy),
        wraps=WrapService(
            lifecycle, policy, wrap_key=wrap_key(load_token_key(settings.effective_token_key_file, create=True))
        ),
        expiry=Reaper(lifecycle),
        kv=KvService(db, keys, policy, quotas, max_secret_bytes=settings.limits.max_secret_bytes, clock=clock),
        tokens=(
            TokenService(
                db,
                load_token_key(settings.effective_token_key_file, create=True),
                cache_seconds=settings.token_cache_seconds,
                clock=clock,
            )
            if settings.auth == "token"
            else None
        ),
        order_worker=worker,
        keystone=_keystone(settings, clock),
        transit=transit,
        clock=clock,
        reads_on_loop=db.dialect == "sqlite",
        reads_awaiting=db.reads_await_on_loop,
    )
    if settings.audit.enabled:
        context.audit_log = AuditLog(*audit_paths(settings))
    context.readiness = Readiness(db, keystore, audit_paths(settings)[0] if settings.audit.enabled else None)
    if settings.lifecycle.run_in_server:
        context.reaper = ExpiryReaper(context.expiry, settings.lifecycle)
    return context, db


def _keystone(settings: Settings, clock: Clock) -> KeystoneTokens | None:
    if settings.auth != "keystone":
        return None
    from donjon.auth.keystone import KeystoneTokens  # the keystone extra: only imported when used

    return KeystoneTokens(settings.keystone, clock=clock)


def create_app(settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK) -> Starlette:
    settings = settings or Settings()
    context, db = build_context(settings, clock)
    vault = vault_router(settings)
    routes = [*_routes(), *(vault.routes() if vault else []), *(ui_routes() if settings.ui.enabled else [])]
    auditor = build_auditor(settings)
    if settings.metrics.enabled:
        routes.append(metrics_route(settings.metrics))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if context.order_worker is not None:
            context.order_worker.start()
        if context.reaper is not None:
            context.reaper.start()
        yield
        if context.reaper is not None:
            context.reaper.stop()
        if context.order_worker is not None:
            context.order_worker.stop()
        context.secret_stores.registry.close()
        db.dispose()
        if auditor is not None:
            auditor.close()
        observed.process_exited()

    index = RouteIndex(routes)
    app = Starlette(
        routes=routes,
        middleware=[
            # Outermost: it times and logs every answer, the audit record's wait and a bad microversion too.
            Middleware(ObservabilityMiddleware, routes=index, log_config=settings.log, metrics=settings.metrics),
            Middleware(OpenStackMiddleware),
            # Inside: it sees the request id and the final status of every request, denials included.
            *(
                [
                    Middleware(
                        AuditMiddleware,
                        auditor=auditor,
                        routes=index,
                        exempt=EXEMPT | UNAUDITED,
                        announced=vault.effects_announced if vault else None,
                    )
                ]
                if auditor
                else []
            ),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    # Dispatches on the match the audit middleware's RouteIndex made (one scan of the candidates, not two).
    app.router = IndexedRouter(routes, lifespan=lifespan, redirect_slashes=False)
    app.state.ctx = context
    return app
