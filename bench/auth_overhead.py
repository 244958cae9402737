#!/usr/bin/env python3
"""Per-request cost of authentication + policy in each auth mode, in process (µs, no HTTP, no database).

Usage: .venv/bin/python bench/auth_overhead.py [-n 20000]

Times exactly what a handler pays before its service runs: ``await authenticate(request)`` on a cached
token (dev: parsing the headers) plus one ``policy.allowed("secret:get", caller, target)`` decision (cached
by rule, caller and target, as in the server). Keystone mode's cache is filled through a stubbed Keystone
answer: what is measured is donjon's side of a cache hit (HMAC of the token, dict look-up). A cache miss is
an HTTP round trip to Keystone; it is measured against a real Keystone by tests/test_keystone_auth.py
(``-s`` prints it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from starlette.requests import Request

from donjon.api.app import build_context
from donjon.api.common import authenticate
from donjon.config import KeystoreConfig, Settings
from donjon.policy import Target
from donjon.storage import migrate
from donjon.storage.database import Database


def _request(app_state: Any, headers: dict[str, str]) -> Request:
    app = type("App", (), {"state": app_state})()
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/secrets/x",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "app": app,
        "query_string": b"",
    }
    return Request(scope)


def _keystone_answer(project: str) -> Any:
    response = mock.Mock(status_code=200)
    response.json.return_value = {
        "token": {
            "expires_at": "2999-01-01T00:00:00.000000Z",
            "user": {"id": "u1"},
            "project": {"id": project},
            "roles": [{"name": "member"}, {"name": "reader"}],
        }
    }
    return response


def measure(mode: str, n: int, data_dir: Path) -> list[float]:
    url = f"sqlite:///{data_dir / 'bench.sqlite'}"
    db = Database(url, pool_size=1)
    migrate.upgrade(db)
    db.dispose()
    settings = Settings(
        auth=mode,  # type: ignore[arg-type]
        database_url=url,
        data_dir=data_dir,
        keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
        keystone={"auth_url": "http://127.0.0.1:9/v3", "password": "unused"},  # type: ignore[arg-type]
    )
    context, _ = build_context(settings)
    state = type("State", (), {"ctx": context})()
    headers = {"X-Project-Id": "p1", "X-User-Id": "u1", "X-Roles": "member"}
    if mode == "token":
        assert context.tokens is not None
        issued = context.tokens.issue(project_id="p1", user_id="u1", roles=["member"], ttl=timedelta(hours=1))
        headers = {"X-Auth-Token": issued.token}
    elif mode == "keystone":
        assert context.keystone is not None
        token = "gAAAAAB" + "k" * 180
        with mock.patch.object(context.keystone._session, "get", return_value=_keystone_answer("p1")):
            context.keystone.validate(token)
        headers = {"X-Auth-Token": token}
    target = Target("secret", "p1", "u1")
    request = _request(state, headers)

    async def run() -> list[float]:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            caller = await authenticate(request)
            assert context.policy.allowed("secret:get", caller, target)
            samples.append((time.perf_counter_ns() - t0) / 1000)
        return samples

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000)
    args = parser.parse_args()
    print(f"auth + policy per request, in process, n={args.n} (µs)")
    for mode in ("dev", "token", "keystone"):
        with tempfile.TemporaryDirectory() as tmp:
            samples = sorted(measure(mode, args.n, Path(tmp)))
        p50, p99 = statistics.median(samples), samples[int(0.99 * (len(samples) - 1))]
        print(f"  {mode:9s} p50 {p50:6.1f}  p99 {p99:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
