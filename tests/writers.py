"""Client threads that store secrets against a live server until stopped, for the crash and outage tests.

Every answer is kept with the time it came; a secret counts as acknowledged only once its 201 was read in
full. A request cut by a crash (connection refused or reset, a response never finished) is recorded as
``None``: the client cannot know whether it took effect, so it is neither acknowledged nor checked.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.live_server import LiveServer


class Writers:
    def __init__(self, server: LiveServer, project: str, threads: int = 4) -> None:
        self.server = server
        self.project = project
        self.acknowledged: dict[str, bytes] = {}
        # (monotonic time, status or None when the request was cut, JSON body, Retry-After)
        self.answers: list[tuple[float, int | None, Any, str | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _run(self) -> None:
        headers = {"X-Project-Id": self.project}
        with httpx.Client(base_url=self.server.url, headers=headers, timeout=30) as http:
            while not self._stop.is_set():
                payload = os.urandom(32)
                body = {
                    "payload": base64.b64encode(payload).decode(),
                    "payload_content_type": "application/octet-stream",
                    "payload_content_encoding": "base64",
                }
                try:
                    r = http.post("/v1/secrets", json=body)
                except httpx.TransportError:
                    self._record(None, None, None)
                    time.sleep(0.05)
                    continue
                parsed = r.json() if r.headers.get("content-type") == "application/json" else None
                self._record(r.status_code, parsed, r.headers.get("Retry-After"))
                if r.status_code == 201:
                    with self._lock:
                        self.acknowledged[parsed["secret_ref"].rsplit("/", 1)[1]] = payload
                else:
                    time.sleep(0.05)

    def _record(self, status: int | None, body: Any, retry_after: str | None) -> None:
        with self._lock:
            self.answers.append((time.monotonic(), status, body, retry_after))

    def statuses_since(self, t: float) -> list[int | None]:
        with self._lock:
            return [status for at, status, _, _ in self.answers if at >= t]


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def read_back(server: LiveServer, project: str, expected: dict[str, bytes]) -> dict[str, bytes]:
    """The payload of each of ``expected``'s secrets, as the server answers now."""
    found = {}
    with httpx.Client(base_url=server.url, headers={"X-Project-Id": project}, timeout=30) as http:
        for secret_id in expected:
            r = http.get(f"/v1/secrets/{secret_id}/payload", headers={"Accept": "application/octet-stream"})
            found[secret_id] = r.content if r.status_code == 200 else f"HTTP {r.status_code}".encode()
    return found
