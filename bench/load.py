#!/usr/bin/env python3
"""Load a Barbican-compatible API with wrk: store a 32-byte secret, read a payload, list 10 among 1 000.

Usage: bench/load.py [--base-url URL] [--duration S] [--concurrency N] [--keepalive] [--header "K: V"] [--json]

Prints, per workload, successful requests/s, p50 and p99 latency, and errors (non-2xx + socket errors).
Runs against any server speaking the API in unauthenticated mode (X-Project-Id), on loopback only: this is
a load generator, and its traffic must stay on this machine. Needs wrk (Debian: apt-get install wrk).
Standard library only, so it runs from any Python >= 3.11.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

WRK_DIR = Path(__file__).resolve().parent / "wrk"
WORKLOADS = ("list", "payload", "store")


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Api:
    def __init__(self, base_url: str, project: str, extra: dict[str, str]) -> None:
        self.url = urlsplit(base_url)
        self.project = project
        self.extra = extra

    def store(self, name: str, data: bytes) -> str:
        body = json.dumps(
            {
                "name": name,
                "payload": base64.b64encode(data).decode(),
                "payload_content_type": "application/octet-stream",
                "payload_content_encoding": "base64",
            }
        )
        headers = {"X-Project-Id": self.project, "Content-Type": "application/json", **self.extra}
        for attempt in range(20):
            conn = http.client.HTTPConnection(self.url.netloc, timeout=30)
            try:
                conn.request("POST", "/v1/secrets", body, headers)
                response = conn.getresponse()
                text = response.read()
                if response.status == 201:
                    return str(json.loads(text)["secret_ref"].rstrip("/").rsplit("/", 1)[1])
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.05 * (attempt + 1))
        raise RuntimeError(f"could not store a secret in project {self.project}")


def seed(api: Api, count: int) -> None:
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: api.store(f"seed-{i:04d}", os.urandom(32)), range(count)))


def run_wrk(script: str, base_url: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    command = [
        "wrk",
        "-t1",
        f"-c{args.concurrency}",
        f"-d{args.duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(WRK_DIR / script),
        base_url,
    ]
    out = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("DONJON_RESULT "):
            result: dict[str, object] = json.loads(line.removeprefix("DONJON_RESULT "))
            return result
    raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:9311")
    parser.add_argument("--duration", type=int, default=20, help="seconds per workload")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keepalive", action="store_true", help="reuse connections (default: Connection: close)")
    parser.add_argument("--header", action="append", default=[], help='extra header, e.g. "X-Roles: member"')
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout instead of a table")
    args = parser.parse_args()
    base_url = args.base_url.rstrip("/")
    if not is_loopback(base_url):
        parser.error(f"refusing a non-loopback target: {base_url}")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    extra = dict(h.split(":", 1) for h in args.header)
    extra = {k.strip(): v.strip() for k, v in extra.items()}
    run = uuid.uuid4().hex[:8]
    common = {
        "DONJON_WRK_DIR": str(WRK_DIR),
        "DONJON_CLOSE": "0" if args.keepalive else "1",
        "DONJON_HEADER": args.header[0] if args.header else "",
    }
    results: dict[str, dict[str, object]] = {}
    for workload in args.workloads.split(","):
        project = f"bench-{workload}-{run}"
        env = {**common, "DONJON_PROJECT": project}
        api = Api(base_url, project, extra)
        if workload == "list":
            seed(api, 1000)
        elif workload == "payload":
            env["DONJON_SECRET_ID"] = api.store("bench-read", os.urandom(32))
        elif workload != "store":
            parser.error(f"unknown workload {workload}")
        results[workload] = run_wrk(f"{workload}.lua", base_url, args, env)
        time.sleep(1)
    if args.json:
        print(
            json.dumps(
                {
                    "base_url": base_url,
                    "concurrency": args.concurrency,
                    "keepalive": args.keepalive,
                    "duration_s": args.duration,
                    "results": results,
                }
            )
        )
        return 0
    mode = "keep-alive" if args.keepalive else "Connection: close"
    print(f"{base_url}  c={args.concurrency}  {args.duration}s per workload  {mode}")
    print(f"{'workload':9} {'ok/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  statuses")
    for name, r in results.items():
        print(f"{name:9} {r['ok_per_s']:9.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['errors']:7d}  {r['statuses']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
