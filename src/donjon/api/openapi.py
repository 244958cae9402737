"""The OpenAPI description served at ``/openapi.json``."""

from __future__ import annotations

from functools import cache
from typing import Any

import donjon


@cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "donjon (Barbican v1 API)", "version": donjon.__version__},
        "paths": {},
    }
