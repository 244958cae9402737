"""Entry point for ASGI servers: ``uvicorn --factory donjon.asgi:create``. Settings come from the environment."""

from __future__ import annotations

from starlette.applications import Starlette

from donjon.api.app import create_app


def create() -> Starlette:
    return create_app()
