#!/usr/bin/env python3
"""Store and payload-read throughput of donjon on each keystore: file, SoftHSM2, NSS, PyKMIP, OpenBao transit.

Usage (from the checkout, after ./scripts/test has installed the test extra and the Debian packages; needs wrk):
    .venv/bin/python bench/keystores.py [--duration 10] [--concurrency 16] [--keystores file,pkcs11,...]

For each keystore, and once with the default KEK cache and once with ``kek_cache_seconds = 0`` (every request
unwraps its project's KEK through the keystore: the keystore's own cost, which the cache hides), it starts
``donjon server --dev`` (2 workers, SQLite, audit on as by default) on a fresh data dir and runs bench/load.py's
``store`` and ``payload`` workloads. The components are the real ones of the test suite, started the same way
(tests/components/). Prints a Markdown table; ``--json`` prints the raw results instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.components import kmip, nss, openbao, softhsm  # noqa: E402  (needs ROOT on the path)
from tests.live_server import LiveServer, free_port  # noqa: E402

KEYSTORES = ("file", "pkcs11", "nss", "kmip", "vault")
WORKLOADS = "store,payload"
Setup = tuple[dict[str, Any], dict[str, str]]  # keystore table for the TOML config, environment for the server


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))  # a JSON string of these paths and names is a valid TOML basic string


def write_config(path: Path, keystore: dict[str, Any], kek_cache_seconds: float) -> Path:
    options = ", ".join(f"{k} = {toml_value(v)}" for k, v in keystore["options"].items())
    path.write_text(
        f"kek_cache_seconds = {kek_cache_seconds}\n"
        f"[keystore]\ntype = {toml_value(keystore['type'])}\noptions = {{ {options} }}\n"
    )
    return path


@contextlib.contextmanager
def component(name: str, work: Path) -> Iterator[Setup]:
    """The keystore configuration (and server environment) of ``name``, its component running meanwhile."""
    directory = work / name
    directory.mkdir()
    if name == "file":
        yield {"type": "file", "options": {"path": str(directory / "root.key")}}, {}
    elif name == "pkcs11":
        token = softhsm.init_token(directory, label="donjon-bench")
        yield {"type": "pkcs11", "options": token.options()}, {"SOFTHSM2_CONF": str(token.conf)}
    elif name == "nss":
        database = nss.create_database(directory)
        yield {"type": "nss", "options": database.options()}, {}
    elif name == "kmip":
        ca = kmip.TestCa(directory / "certs")
        server = kmip.KmipServer(
            directory=directory,
            ca=ca,
            server=ca.issue("server", "127.0.0.1", server=True),
            client=ca.issue("client", kmip.CLIENT_CN, server=False),
            port=free_port(),
        ).start()
        try:
            yield {"type": "kmip", "options": server.options()}, {}
        finally:
            server.stop()
    elif name == "vault":
        with openbao.running_openbao(directory) as bao:
            yield {"type": "vault", "options": {"url": bao.url}}, {"DONJON_VAULT_TOKEN": bao.token}
    else:
        raise SystemExit(f"unknown keystore {name!r}; choose from {', '.join(KEYSTORES)}")


def measure(setup: Setup, data_dir: Path, kek_cache_seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    keystore, env = setup
    data_dir.mkdir()
    config = write_config(data_dir / "donjon.toml", keystore, kek_cache_seconds)
    server = LiveServer(data_dir, env={"DONJON_CONFIG": str(config), **env}).start(timeout=60)
    try:
        load = [sys.executable, str(ROOT / "bench" / "load.py"), "--base-url", server.url, "--json"]
        load += ["--duration", str(args.duration), "--concurrency", str(args.concurrency), "--workloads", WORKLOADS]
        result = subprocess.run(load, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"bench/load.py failed:\n{result.stderr}")
        return dict(json.loads(result.stdout)["results"])
    finally:
        server.stop()


def table(results: dict[str, dict[str, dict[str, Any]]], names: list[str]) -> str:
    def cell(r: dict[str, Any], base: dict[str, Any]) -> str:
        ratio = r["ok_per_s"] / base["ok_per_s"] if base["ok_per_s"] else 0.0
        return f"{r['ok_per_s']:.0f} ({ratio:.2f}×) p99 {r['p99_ms']:.0f} ms, {r['errors']} err"

    lines = [
        "| keystore | store, KEK cached | payload, KEK cached | store, no KEK cache | payload, no KEK cache |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        cells = []
        for mode in ("cached", "uncached"):
            for workload in WORKLOADS.split(","):
                cells.append(cell(results[f"{name}/{mode}"][workload], results[f"file/{mode}"][workload]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per workload")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keystores", default=",".join(KEYSTORES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = args.keystores.split(",")
    if "file" not in names:
        names.insert(0, "file")  # the reference every ratio is taken against
    results: dict[str, dict[str, dict[str, Any]]] = {}
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="donjon-keystores-") as tmp:
        work = Path(tmp)
        for name in names:
            with component(name, work) as setup:
                for mode, seconds in (("cached", 900.0), ("uncached", 0.0)):
                    report(f"{name}, KEK {mode}: measuring")
                    results[f"{name}/{mode}"] = measure(setup, work / f"{name}-{mode}-data", seconds, args)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        git = ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]
        commit = subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip()
        print(f"donjon {commit}, c={args.concurrency}, {args.duration}s per workload, 2 workers, SQLite")
        print("ok/s (ratio to the file keystore in the same mode), p99, errors\n")
        print(table(results, names))


if __name__ == "__main__":
    os.umask(0o077)
    main()
