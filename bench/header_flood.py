#!/usr/bin/env python3
"""What two clients streaming 48 MB request headers do to everyone else's requests.

Usage: .venv/bin/python bench/header_flood.py [--requests 200] [--flood-mb 48]

Starts the app twice with uvicorn, one worker each (so the flood and the measured requests share one event
loop, the worst case): once with uvicorn's plain httptools protocol (donjon before bounded heads), once
with ``donjon.http_protocol:BoundedHttpToolsProtocol`` (what ``donjon server`` runs). For each it measures
the latency of ``GET /v1/secrets`` (keep-alive, one client, sequential) quietly, then while two other
clients each send a request whose one header is ``--flood-mb`` MB (until both flooders are done, and at
least 20 requests), and prints p50/p99/max and what the flooders got back.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROTOCOLS = {
    "httptools (unbounded)": "httptools",
    "donjon bounded heads": "donjon.http_protocol:BoundedHttpToolsProtocol",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(protocol: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    env |= {"DONJON_DATA_DIR": str(data_dir), "DONJON_AUDIT__ENABLED": "false"}
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "donjon"), "manage", "db", "upgrade"], env=env, check=True, capture_output=True)
    command = [str(bin_dir / "uvicorn"), "--factory", "donjon.asgi:create", "--port", str(port)]
    command += ["--http", protocol, "--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def latencies(port: int, n: int, while_alive: list[threading.Thread] | None = None) -> list[float]:
    """n sequential requests, or as many as it takes for every thread in ``while_alive`` to end (at least n)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    out: list[float] = []
    while len(out) < n or any(t.is_alive() for t in while_alive or []):
        t0 = time.perf_counter()
        conn.request("GET", "/v1/secrets", headers={"X-Project-Id": "bench"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        out.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return out


def flood(port: int, size: int, results: list[str]) -> None:
    chunk = b"a" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        try:
            sock.sendall(b"GET /v1/secrets HTTP/1.1\r\nHost: x\r\nX-Project-Id: bench\r\nX-Huge: ")
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
            status = sock.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
        except OSError as exc:
            status = f"{type(exc).__name__} after {sent / 1e6:.1f} MB sent"
        results.append(status or f"closed after {sent / 1e6:.1f} MB sent")


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return f"p50 {statistics.median(ordered):7.1f} ms  p99 {p99:7.1f} ms  max {ordered[-1]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--flood-mb", type=int, default=48)
    args = parser.parse_args()
    for label, protocol in PROTOCOLS.items():
        with tempfile.TemporaryDirectory() as tmp:
            process, port = start(protocol, Path(tmp))
            try:
                latencies(port, 20)  # warm-up
                quiet = latencies(port, args.requests)
                results: list[str] = []
                floods = [
                    threading.Thread(target=flood, args=(port, args.flood_mb * 1_000_000, results)) for _ in range(2)
                ]
                for t in floods:
                    t.start()
                time.sleep(0.05)
                started = time.perf_counter()
                loaded = latencies(port, 20, while_alive=floods)
                took = time.perf_counter() - started
                for t in floods:
                    t.join()
            finally:
                process.terminate()
                process.wait(30)
        print(f"{label}:")
        print(f"  quiet        {summary(quiet)}")
        print(f"  during flood {summary(loaded)}  ({len(loaded)} requests in {took:.1f} s)")
        print(f"  flooders got {results}")


if __name__ == "__main__":
    main()
