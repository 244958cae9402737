#!/usr/bin/env python3
"""Does answering 404 take longer for another project's secret than for an id that does not exist?

Usage: .venv/bin/python bench/existence_oracle.py [--ids 400] [--repeats 2000] [--url URL | --in-process]

Against ``--url`` (a running donjon in dev mode), or a ``donjon server --dev --workers 1`` it starts with the
audit log off (its fsync would drown microseconds in milliseconds of noise). Project B stores ``--ids``
secrets; project A then asks for them and for as many random ids, over one keep-alive connection, in a
shuffled order. Two runs:

- first probes: each id asked once (what an attacker scanning ids sees; no cache has seen the id);
- repeated probes: one id of each kind asked ``--repeats`` times, alternately.

``--in-process`` times the service call behind the route (``SecretService.get``, SQLite) without HTTP,
whose noise is larger than the difference looked for.

Prints the 10th percentile, median and 10%-trimmed mean of each kind, their differences, and Welch's z on
the trimmed samples (|z| > 3: a difference this run can see).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    env["DONJON_AUDIT__ENABLED"] = "false"
    donjon = str(Path(sys.executable).with_name("donjon"))
    command = [donjon, "server", "--dev", "--workers", "1", "--port", str(port), "--data-dir", str(data_dir)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("donjon did not start")


class Client:
    def __init__(self, url: str, project: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.headers = {"X-Project-Id": project, "X-User-Id": f"user-of-{project}"}

    def call(self, method: str, path: str, body: dict[str, object] | None = None) -> tuple[int, bytes, float]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        t0 = time.perf_counter()
        self.conn.request(method, path, data, headers)
        response = self.conn.getresponse()
        payload = response.read()
        return response.status, payload, (time.perf_counter() - t0) * 1e6


def trimmed(values: list[float], share: float = 0.1) -> list[float]:
    ordered = sorted(values)
    cut = int(len(ordered) * share)
    return ordered[cut : len(ordered) - cut] if cut else ordered


def p10(values: list[float]) -> float:
    return sorted(values)[len(values) // 10]


def report(label: str, foreign: list[float], unknown: list[float]) -> None:
    tf, tu = trimmed(foreign), trimmed(unknown)
    mf, mu = statistics.fmean(tf), statistics.fmean(tu)
    se = (statistics.variance(tf) / len(tf) + statistics.variance(tu) / len(tu)) ** 0.5
    print(f"{label}:")
    for name, values, mean in (("another project's id", foreign, mf), ("unknown id", unknown, mu)):
        median = statistics.median(values)
        print(
            f"  {name:20}  n={len(values):5d}  p10 {p10(values):8.1f} µs  median {median:8.1f} µs  "
            f"trimmed mean {mean:8.1f} µs"
        )
    diff = statistics.median(foreign) - statistics.median(unknown)
    print(
        f"  difference: p10 {p10(foreign) - p10(unknown):+.1f} µs, medians {diff:+.1f} µs, "
        f"trimmed means {mf - mu:+.1f} µs, Welch z = {(mf - mu) / se:+.2f}"
    )


class InProcess:
    """The service call behind GET /v1/secrets/{id}, timed without HTTP (SQLite in a temporary directory)."""

    def __init__(self, data_dir: Path) -> None:
        from donjon.api.app import build_context
        from donjon.config import KeystoreConfig, Settings
        from donjon.storage import migrate
        from donjon.storage.database import Database

        url = f"sqlite:///{data_dir / 'oracle.sqlite'}"
        db = Database(url, pool_size=1)
        migrate.upgrade(db)
        db.dispose()
        settings = Settings(
            database_url=url,
            data_dir=data_dir,
            keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
        )
        self.context, _ = build_context(settings)

    def store(self, project: str) -> str:
        from donjon.api.schemas.secrets import new_secret
        from donjon.auth import Caller
        from donjon.timeutil import utcnow

        new = new_secret({"name": "s", "payload": "p", "payload_content_type": "text/plain"}, 20000, now=utcnow())
        return self.context.secrets.create(Caller(project, f"user-of-{project}", ("member",)), new).id

    def probe(self, project: str, secret_id: str) -> float:
        from donjon.auth import Caller
        from donjon.errors import NotFound

        caller = Caller(project, f"user-of-{project}", ("member",))
        t0 = time.perf_counter()
        try:
            self.context.secrets.get(caller, secret_id, with_consumers=False)
        except NotFound:
            pass
        else:
            raise AssertionError("found")
        return (time.perf_counter() - t0) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--url", help="a running donjon in dev mode (default: start one)")
    parser.add_argument("--in-process", action="store_true", help="time the service call, without HTTP")
    args = parser.parse_args()
    process = None
    with tempfile.TemporaryDirectory() as tmp:
        owner, prober = f"owner-{uuid.uuid4()}", f"prober-{uuid.uuid4()}"
        if args.in_process:
            service = InProcess(Path(tmp))
            foreign_ids = [service.store(owner) for _ in range(args.ids + 1)]

            def probe(secret_id: str) -> float:
                return service.probe(prober, secret_id)

        else:
            url = args.url
            if url is None:
                process, url = start_server(Path(tmp))
            owner_client, prober_client = Client(url, owner), Client(url, prober)
            foreign_ids = []
            for i in range(args.ids + 1):
                body = {"name": f"s{i}", "payload": "p", "payload_content_type": "text/plain"}
                status, answer, _ = owner_client.call("POST", "/v1/secrets", body)
                assert status == 201, answer
                foreign_ids.append(json.loads(answer)["secret_ref"].rsplit("/", 1)[1])

            def probe(secret_id: str) -> float:
                status, _, took = prober_client.call("GET", f"/v1/secrets/{secret_id}")
                assert status == 404, status
                return took

        try:
            for _ in range(50):  # warm-up
                probe(str(uuid.uuid4()))
            probes = [("foreign", i) for i in foreign_ids[1:]] + [
                ("unknown", str(uuid.uuid4())) for _ in range(args.ids)
            ]
            random.shuffle(probes)
            first: dict[str, list[float]] = {"foreign": [], "unknown": []}
            for kind, secret_id in probes:
                first[kind].append(probe(secret_id))
            report("first probes", first["foreign"], first["unknown"])
            again: dict[str, list[float]] = {"foreign": [], "unknown": []}
            pair = [("foreign", foreign_ids[0]), ("unknown", str(uuid.uuid4()))]
            for _ in range(args.repeats):
                for kind, secret_id in random.sample(pair, 2):
                    again[kind].append(probe(secret_id))
            report("repeated probes", again["foreign"], again["unknown"])
        finally:
            if process is not None:
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
