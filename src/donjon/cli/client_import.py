"""``donjon import barbican|vault``: copy secrets into donjon (the target: the usual connection options).

From Barbican (through its API, any deployment): every secret the source credentials can list, with its name,
type, algorithm, bit length, mode, expiration, payload (byte for byte, and text stays text), user metadata, read
ACL and consumers; then every container (generic, rsa, certificate) with its name, its secrets (the copies made
by this import), read ACL and consumers. Not copied: orders (finished work; their secrets and containers are).

From Vault / OpenBao KV v2: every entry under ``--path`` (recursively). An entry written by donjon's SDK
(``vault`` backend) keeps its type, name and bytes; any other entry becomes one ``opaque`` text secret holding
its data as JSON, named after its path.

The log (``--log``, JSON lines, no secret data: source id -> target id) makes an import resumable: entries
already copied are skipped when the command runs again; failures are retried. ``--jobs`` copies run at once;
Ctrl-C finishes and logs the ones under way. A crash (kill -9, power) between storing a secret and logging it
can copy that secret twice (at most ``--jobs`` of them), never lose one. ``--verify`` reads each copy back and
compares it with the source. Exit code 9 if anything failed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import click

from donjon.cli.client_common import (
    EXIT_PARTIAL,
    CommandError,
    Connection,
    connection_options,
)
from donjon.client._errors import ClientError, ConfigError, NotFound
from donjon.client._http import BarbicanAPI, DevAuth, TokenAuth, ref_id

Read = Callable[[], tuple[dict[str, Any], bytes | None, dict[str, str]]]  # (secret body, payload, metadata)
After = Callable[[BarbicanAPI, str], None]  # more to copy once the target object exists (ACL, consumers)


@dataclass
class Item:
    """One thing to copy: its key in the log, and how to copy it (to a target, verifying or not) -> target id."""

    source: str
    copy: Callable[[BarbicanAPI, bool], str]


def secret_item(source: str, read: Read, after: After | None = None) -> Item:
    def copy(target: BarbicanAPI, verify: bool) -> str:
        body, payload, metadata = read()
        target_id = _store(target, body, payload)
        if metadata:
            target.set_secret_metadata(target_id, metadata)
        if verify and payload is not None and target.get_payload(target_id).data != payload:
            raise ClientError(f"verification failed: the copy {target_id} differs from the source")
        if after is not None:
            after(target, target_id)
        return target_id

    return Item(source, copy)


class ImportLog:
    """JSON lines: ``{"source", "target"}`` per copied item, ``{"source", "error"}`` per failure. fsync'd."""

    def __init__(self, path: Path, kind: str, source_url: str) -> None:
        self.path = path
        self.done: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash
                if entry.get("kind") not in (None, kind) or entry.get("source_url") not in (None, source_url):
                    raise ConfigError(
                        f"{path} is the log of another import ({entry.get('kind')} {entry.get('source_url')})"
                    )
                if "target" in entry:
                    self.done[entry["source"]] = entry["target"]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file: TextIO = os.fdopen(fd, "a")
        if not self.done and path.stat().st_size == 0:
            self._write({"kind": kind, "source_url": source_url})

    def _write(self, entry: dict[str, Any]) -> None:
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def copied(self, source: str, target: str) -> None:
        # Written before it counts as done: an interrupt between the two logs it again (the same line), never
        # leaves it done in memory and missing on disk.
        self._write({"source": source, "target": target})
        self.done[source] = target

    def failed(self, source: str, error: str) -> None:
        self._write({"source": source, "error": error})

    def close(self) -> None:
        self._file.close()


def copy_all(
    target: BarbicanAPI, items: list[Item], log: ImportLog, verify: bool, label: str, jobs: int = 1
) -> tuple[int, int, int]:
    """Copy every item not in the log, ``jobs`` at a time; ``(copied, skipped, failed)``.

    Copies run in worker threads (each is a few round trips to the source and the target, so the wait is the
    network's); only this thread writes the log. On Ctrl-C, copies not yet started are dropped and the ones
    under way are finished and logged, so a resumed run copies nothing twice.
    """
    todo = [item for item in items if item.source not in log.done]
    skipped = len(items) - len(todo)
    copied = failed = 0
    progress: Any = click.progressbar(length=len(items), label=label, file=sys.stderr, show_pos=True)
    with progress as bar, ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="import") as pool:
        bar.update(skipped)
        futures = {pool.submit(item.copy, target, verify): item for item in todo}
        pending = set(futures)
        try:
            for future in as_completed(futures):
                item = futures[future]
                try:
                    target_id = future.result()
                except ClientError as exc:
                    failed += 1
                    log.failed(item.source, exc.message)
                    click.echo(f"\nfailed {item.source}: {exc.message}", err=True)
                else:
                    log.copied(item.source, target_id)
                    copied += 1
                pending.discard(future)  # only once logged: an interrupt before this logs it below, unless written
                bar.update(1)
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            for future in pending:
                if future.cancelled() or future.exception() is not None:
                    continue
                source, target_id = futures[future].source, future.result()
                if log.done.get(source) != target_id:  # not logged yet (the interrupt came before its line)
                    log.copied(source, target_id)
            raise
    return copied, skipped, failed


def _store(target: BarbicanAPI, body: dict[str, Any], payload: bytes | None) -> str:
    fields = {k: body.get(k) for k in ("name", "algorithm", "bit_length", "mode", "expiration")}
    secret_type = body.get("secret_type") or "opaque"
    if payload is None:
        clean = {k: v for k, v in fields.items() if v is not None}
        return ref_id(target.create_secret({"secret_type": secret_type, **clean}))
    content_type = ((body.get("content_types") or {}).get("default")) or "application/octet-stream"
    if content_type.startswith("text/plain"):
        try:
            payload.decode("utf-8")
            content_type = "text/plain"
        except UnicodeDecodeError:
            content_type = "application/octet-stream"
    elif content_type != "application/pkcs8":
        content_type = "application/octet-stream"
    return ref_id(target.store_bytes(payload, secret_type=secret_type, content_type=content_type, **fields))


def _finish(copied: int, skipped: int, failed: int, log: ImportLog) -> None:
    log.close()
    click.echo(f"copied {copied}, already done {skipped}, failed {failed}; log: {log.path}", err=True)
    if failed:
        raise CommandError(f"{failed} item(s) failed; run the same command again to retry them", EXIT_PARTIAL)


@click.group("import")
def import_() -> None:
    """Copy secrets into donjon from Barbican or Vault (resumable)."""


log_option = click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Resumable log (JSON lines, no secret data); run again with the same log to resume.",
)
verify_option = click.option("--verify", is_flag=True, help="Read every copy back and compare it with the source.")
jobs_option = click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Copies under way at once (each waits on the network, not on this machine).",
)


@import_.command("barbican")
@connection_options
@click.option("--source-url", required=True, help="The Barbican endpoint to copy from.")
@click.option("--source-project-id", help="Unauthenticated Barbican: the project to copy.")
@click.option(
    "--source-token", envvar="DONJON_IMPORT_SOURCE_TOKEN", help="A Keystone token for the source (or the variable)."
)
@log_option
@verify_option
@jobs_option
def import_barbican(
    conn: Connection,
    source_url: str,
    source_project_id: str | None,
    source_token: str | None,
    log_path: Path,
    verify: bool,
    jobs: int,
) -> None:
    """Copy every secret of a Barbican project into donjon."""
    if bool(source_project_id) == bool(source_token):
        raise click.UsageError("give one of --source-project-id and --source-token")
    auth = TokenAuth(source_token) if source_token else DevAuth(str(source_project_id))
    source = BarbicanAPI(source_url, auth=auth)
    target = conn.api()
    log = ImportLog(log_path, "barbican", source.url)
    click.echo(f"listing secrets at {source.url} ...", err=True)
    items = [_barbican_secret(source, s) for s in source.list_secrets()]
    copied, skipped, failed = copy_all(target, items, log, verify, "secrets", jobs)
    # Containers after the secrets: they point at the copies, found through the log.
    click.echo(f"listing containers at {source.url} ...", err=True)
    containers = [_barbican_container(source, c, log) for c in source.list_containers()]
    more = copy_all(target, containers, log, verify, "containers", jobs)
    _finish(copied + more[0], skipped + more[1], failed + more[2], log)


def _barbican_secret(source: BarbicanAPI, listed: dict[str, Any]) -> Item:
    secret_id = ref_id(listed["secret_ref"])

    def read() -> tuple[dict[str, Any], bytes | None, dict[str, str]]:
        payload: bytes | None = None
        if listed.get("content_types"):
            payload = source.get_payload(secret_id).data
        try:
            metadata = source.secret_metadata(secret_id)
        except NotFound:
            metadata = {}
        return listed, payload, metadata

    def after(target: BarbicanAPI, target_id: str) -> None:
        _copy_access(source, target, "secrets", secret_id, target_id, listed.get("consumers"))

    return secret_item(secret_id, read, after)


# What identifies a consumer, by kind: secrets (microversion 1.1) and containers (Barbican's original shape).
_CONSUMER_KEYS = {"secrets": ("service", "resource_type", "resource_id"), "containers": ("name", "URL")}


def _copy_access(
    source: BarbicanAPI,
    target: BarbicanAPI,
    kind: str,
    source_id: str,
    target_id: str,
    listed_consumers: list[dict[str, Any]] | None,
) -> None:
    """The read ACL (when it is not the default) and the consumers of an object, onto its copy.

    ``listed_consumers``: the ``consumers`` of the object as the source listed it (secrets from microversion
    1.1, containers always carry them); None sends one more request for them.
    """
    read = source.get_acl(kind, source_id).get("read") or {}
    users = [str(u) for u in read.get("users") or []]
    project_access = read.get("project-access", True) is not False
    if users or not project_access:
        target.set_acl(kind, target_id, users, project_access)
    consumers = listed_consumers if listed_consumers is not None else source.list_consumers(kind, source_id)
    for consumer in consumers:
        target.add_consumer(kind, target_id, {k: str(consumer[k]) for k in _CONSUMER_KEYS[kind] if k in consumer})


def _barbican_container(source: BarbicanAPI, listed: dict[str, Any], log: ImportLog) -> Item:
    container_id = ref_id(listed["container_ref"])

    def copy(target: BarbicanAPI, verify: bool) -> str:
        refs: dict[str, str] = {}
        for entry in listed.get("secret_refs") or []:
            name, secret_id = str(entry.get("name") or ""), ref_id(entry["secret_ref"])
            if secret_id not in log.done:
                raise ClientError(f"its secret {secret_id} has not been copied (yet): it is retried on the next run")
            if name in refs:
                raise ClientError(f"two of its secrets are named {name!r}, which this import cannot copy")
            refs[name] = log.done[secret_id]
        target_id = ref_id(target.create_container(str(listed.get("type") or "generic"), refs, listed.get("name")))
        _copy_access(source, target, "containers", container_id, target_id, listed.get("consumers"))
        return target_id

    # Logged as "container:<id>": one log serves both kinds, and container ids never shadow secret ids.
    return Item(f"container:{container_id}", copy)


@import_.command("vault")
@connection_options
@click.option("--source-url", envvar="VAULT_ADDR", required=True, help="Vault / OpenBao address (or $VAULT_ADDR).")
@click.option(
    "--source-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the Vault token (else $VAULT_TOKEN).",
)
@click.option("--mount", default="secret", show_default=True, help="KV v2 mount.")
@click.option("--path", "kv_path", default="", help="Copy the entries under this path (recursively).")
@log_option
@verify_option
@jobs_option
def import_vault(
    conn: Connection,
    source_url: str,
    source_token_file: Path | None,
    mount: str,
    kv_path: str,
    log_path: Path,
    verify: bool,
    jobs: int,
) -> None:
    """Copy every entry of a Vault KV v2 path into donjon."""
    try:
        import hvac  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError("importing from Vault needs hvac: pip install 'donjon[vault]'") from None
    if source_token_file is not None:
        try:
            token = source_token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {source_token_file}: {exc.strerror}") from None
    else:
        token = os.environ.get("VAULT_TOKEN", "")
    if not token:
        raise ConfigError("no Vault token: --source-token-file or $VAULT_TOKEN")
    client = hvac.Client(url=source_url, token=token)
    kv = client.secrets.kv.v2
    target = conn.api()
    log = ImportLog(log_path, "vault", f"{source_url}/{mount}/{kv_path.strip('/')}")
    click.echo(f"listing {mount}/{kv_path} at {source_url} ...", err=True)
    try:
        paths = list(_walk(kv, mount, kv_path.strip("/")))
    except Exception as exc:
        raise CommandError(f"cannot list {mount}/{kv_path}: {type(exc).__name__}: {exc}", 8) from None
    items = [_vault_item(kv, mount, p, kv_path.strip("/")) for p in paths]
    _finish(*copy_all(target, items, log, verify, "importing", jobs), log)


def _walk(kv: Any, mount: str, path: str) -> Iterator[str]:
    import hvac.exceptions  # type: ignore[import-untyped]

    try:
        keys = kv.list_secrets(path=path, mount_point=mount)["data"]["keys"]
    except hvac.exceptions.InvalidPath:
        return
    for key in sorted(keys):
        full = f"{path}/{key}".strip("/") if path else key
        if key.endswith("/"):
            yield from _walk(kv, mount, full.rstrip("/"))
        else:
            yield full


def _vault_item(kv: Any, mount: str, path: str, base: str) -> Item:
    def read() -> tuple[dict[str, Any], bytes | None, dict[str, str]]:
        import base64

        try:
            data = kv.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)["data"]["data"]
        except Exception as exc:
            raise ClientError(f"cannot read {mount}/{path}: {type(exc).__name__}") from None
        if isinstance(data, dict) and {"type", "data"} <= set(data) and isinstance(data.get("data"), str):
            try:  # an entry of donjon's SDK vault backend: its own type and bytes
                payload = base64.b64decode(data["data"], validate=True)
                body = {
                    "name": data.get("name"),
                    "secret_type": data.get("type"),
                    "algorithm": data.get("algorithm"),
                    "bit_length": data.get("bit_length"),
                }
                return body, payload, {}
            except ValueError:
                pass
        name = path[len(base) :].lstrip("/") if base and path.startswith(base) else path
        body = {"name": name, "secret_type": "opaque", "content_types": {"default": "text/plain"}}
        return body, json.dumps(data, sort_keys=True, separators=(",", ":")).encode(), {"vault-path": path[:255]}

    return secret_item(path, read)
