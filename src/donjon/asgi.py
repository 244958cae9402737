"""Entry point for ASGI servers: ``uvicorn --factory donjon.asgi:create``. Settings come from the environment."""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from donjon.api.app import create_app
from donjon.connection_balance import worker_board


def create() -> Starlette:
    app = create_app()
    # What a worker has built by now (modules, the app, its caches) lives as long as the worker: kept out of
    # the collector's scans, a full collection no longer walks it all in the middle of requests (p99 of
    # payload reads 68 -> 18 ms, bench/README.md). Only here, in a server's worker: a process that builds
    # many apps (the tests) must stay free to collect them.
    gc.collect()
    gc.freeze()
    # Under ``donjon server`` with several workers: in the connection table from the start, so that the others
    # send clients here before this worker has had any (donjon.connection_balance).
    worker_board()
    return app
