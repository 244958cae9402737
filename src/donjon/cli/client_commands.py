"""``donjon secret|order|container|acl|consumer``: the Barbican v1 API from the shell, on the SDK.

Resources are named by id or by their full ref. Payloads come from ``--file PATH``, ``--file -`` (stdin), a
hidden prompt on a terminal, or ``secret store -p TEXT`` as Barbican's CLI has it; they go to stdout (never
binary to a terminal), a 0600 ``--file``, or a ``-f json`` record (base64 when not text).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from donjon.cli import client_lifecycle as lifecycle
from donjon.cli.client_common import Connection, connection_options, emit, read_payload, show_payload
from donjon.client._http import BarbicanAPI, ref_id

SECRET_TYPES = ("opaque", "symmetric", "private", "public", "certificate", "passphrase")
SECRET_COLUMNS = ("id", "name", "secret_type", "algorithm", "bit_length", "mode", "created", "expiration")


def _secret_row(item: dict[str, Any]) -> dict[str, Any]:
    row = {"id": ref_id(item["secret_ref"]), **item}
    row["content_types"] = item.get("content_types")
    return row


# ------------------------------------------------------------------------------------------ secrets


@click.group()
def secret() -> None:
    """Secrets: store, get, list, update, delete."""


@secret.command("store")
@connection_options
@click.option("-n", "--name", help="Name.")
@click.option("-t", "--type", "secret_type", type=click.Choice(SECRET_TYPES), default="opaque", show_default=True)
@click.option("-a", "--algorithm", help="Algorithm (informational, e.g. aes).")
@click.option("-b", "--bit-length", type=click.IntRange(1, 32767), help="Bit length.")
@click.option("-m", "--mode", help="Mode (informational, e.g. cbc).")
@click.option("-x", "--expiration", help="Expiration: ISO 8601, or from now: +90s, +15m, +1h, +30d.")
@click.option("--max-reads", type=click.IntRange(1, 1_000_000), help="Serve the payload N times, then delete it.")
@click.option(
    "--content-type",
    type=click.Choice(["application/octet-stream", "text/plain"]),
    help="How the payload is stored and served by default (text/plain with --payload, else octet-stream).",
)
@click.option(
    "-p",
    "--payload",
    "payload_text",
    help="The payload, as barbican secret store -p (it shows in ps and shell history: prefer --file or stdin).",
)
@click.option("-F", "--file", "path", help="Read the payload from this file ('-': stdin). Default: stdin or a prompt.")
@click.option("--no-payload", is_flag=True, help="Create the secret without a payload (add it with 'secret update').")
def secret_store(
    conn: Connection,
    name: str | None,
    secret_type: str,
    algorithm: str | None,
    bit_length: int | None,
    mode: str | None,
    expiration: str | None,
    max_reads: int | None,
    content_type: str | None,
    payload_text: str | None,
    path: str | None,
    no_payload: bool,
) -> None:
    """Store a secret; print its id and ref."""
    if sum((payload_text is not None, path is not None, no_payload)) > 1:
        raise click.UsageError("give one of --payload, --file and --no-payload")
    if no_payload and max_reads is not None:
        raise click.UsageError("--max-reads needs a payload")
    expiration = lifecycle.expiration(expiration)
    api = conn.api()
    if no_payload:
        body = {"secret_type": secret_type, "name": name, "algorithm": algorithm, "bit_length": bit_length}
        body.update(mode=mode, expiration=expiration)
        ref = api.create_secret({k: v for k, v in body.items() if v is not None})
    else:
        content_type = content_type or ("text/plain" if payload_text is not None else "application/octet-stream")
        data = read_payload(path, given=payload_text, content_type=content_type)
        ref = api.store_bytes(
            data,
            secret_type=secret_type,
            name=name,
            algorithm=algorithm,
            bit_length=bit_length,
            mode=mode,
            expiration=expiration,
            content_type=content_type,
            max_reads=max_reads,
        )
    emit({"id": ref_id(ref), "secret_ref": ref}, conn.output)


@secret.command("get")
@connection_options
@click.argument("secret_id")
@click.option("-p", "--payload", is_flag=True, help="Print the payload (raw bytes) instead of the metadata.")
@click.option("-F", "--file", "path", help="With --payload: write it to this new 0600 file instead of stdout.")
@click.option(
    "--accept",
    default="application/octet-stream",
    show_default=True,
    help="With --payload: the content type to ask for (text/plain needs UTF-8 text).",
)
@click.option("--version", "version", type=click.IntRange(1), help="With --payload: a previous version (rotate).")
def secret_get(
    conn: Connection, secret_id: str, payload: bool, path: str | None, accept: str, version: int | None
) -> None:
    """Show a secret's metadata, or with --payload its payload. SECRET_ID: an id, a ref or a unique name."""
    if not payload and (path is not None or version is not None):
        raise click.UsageError(f"{'--file' if path is not None else '--version'} needs --payload")
    api = conn.api()
    secret_id = lifecycle.resolve_secret(api, secret_id)
    if payload:
        got = api.get_payload(secret_id, accept, version=version)
        show_payload(got.data, got.content_type, path, conn.output)
        return
    emit(_secret_row(api.get_secret(secret_id)), conn.output, (*SECRET_COLUMNS, "status", "content_types"))


@secret.command("list")
@connection_options
@click.option("-n", "--name", help="Only secrets with this name (SQL LIKE: % and _ are wildcards).")
@click.option("-t", "--type", "secret_type", type=click.Choice(SECRET_TYPES), help="Only this type.")
@click.option("-a", "--algorithm", help="Only this algorithm.")
@click.option("-b", "--bit-length", type=int, help="Only this bit length.")
@click.option("-l", "--limit", type=click.IntRange(1), help="At most this many (default: all, every page).")
def secret_list(
    conn: Connection,
    name: str | None,
    secret_type: str | None,
    algorithm: str | None,
    bit_length: int | None,
    limit: int | None,
) -> None:
    """List secrets (all pages)."""
    rows = []
    for item in conn.api().list_secrets(name=name, secret_type=secret_type, alg=algorithm, bits=bit_length):
        rows.append(_secret_row(item))
        if limit is not None and len(rows) >= limit:
            break
    emit(rows, conn.output, SECRET_COLUMNS)


@secret.command("update")
@connection_options
@click.argument("secret_id")
@click.option("-F", "--file", "path", help="Read the payload from this file ('-': stdin). Default: stdin or a prompt.")
@click.option(
    "--content-type",
    type=click.Choice(["application/octet-stream", "text/plain"]),
    default="application/octet-stream",
    show_default=True,
)
def secret_update(conn: Connection, secret_id: str, path: str | None, content_type: str) -> None:
    """Give a secret created without a payload its payload (later payloads: secret rotate)."""
    api = conn.api()
    secret_id = lifecycle.resolve_secret(api, secret_id)
    api.put_payload(secret_id, read_payload(path), content_type)
    click.echo(f"updated {ref_id(secret_id)}", err=True)


@secret.command("delete")
@connection_options
@click.argument("secret_ids", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Delete even if consumers are registered.")
def secret_delete(conn: Connection, secret_ids: tuple[str, ...], force: bool) -> None:
    """Delete secrets (by id, ref or unique name)."""
    api = conn.api()
    for secret_id in [lifecycle.resolve_secret(api, ident) for ident in secret_ids]:
        if not force:
            consumers = api.get_secret(secret_id).get("consumers") or []
            if consumers:
                from donjon.client._errors import Conflict

                raise Conflict(f"secret {ref_id(secret_id)} has {len(consumers)} consumer(s); use --force")
        api.delete_secret(secret_id, force=force)
        click.echo(f"deleted {ref_id(secret_id)}", err=True)


for _command in lifecycle.COMMANDS:
    secret.add_command(_command)

# ------------------------------------------------------------------------------------------ orders

ORDER_COLUMNS = ("id", "type", "status", "secret_ref", "container_ref", "created", "error_status_code", "error_reason")


def _order_row(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": ref_id(item["order_ref"]), **item}


@click.group()
def order() -> None:
    """Orders: have the server generate keys, key pairs and passwords."""


@order.command("create")
@connection_options
@click.argument("order_type", type=click.Choice(["key", "asymmetric", "password"]))
@click.option("-n", "--name", help="Name of the secret(s) made.")
@click.option("-a", "--algorithm", help="key: aes (default), hmacsha256...; asymmetric: rsa (default), ec.")
@click.option("-b", "--bit-length", type=int, help="Bits (key: 256; asymmetric: 2048).")
@click.option("-m", "--mode", help="key: mode (e.g. cbc, xts).")
@click.option("--length", type=click.IntRange(1), help="password: characters (default 32).")
@click.option("-x", "--expiration", help="Expiration of the secret(s): ISO 8601, or +90s, +15m, +1h, +30d.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the order is ACTIVE or ERROR.")
def order_create(
    conn: Connection,
    order_type: str,
    name: str | None,
    algorithm: str | None,
    bit_length: int | None,
    mode: str | None,
    length: int | None,
    expiration: str | None,
    wait: bool,
) -> None:
    """Create an order (key, asymmetric, or donjon's password)."""
    meta: dict[str, Any] = {"name": name, "expiration": lifecycle.expiration(expiration)}
    if order_type == "key":
        meta.update(algorithm=algorithm or "aes", bit_length=bit_length or 256, mode=mode)
    elif order_type == "asymmetric":
        meta.update(algorithm=algorithm or "rsa", bit_length=bit_length or 2048)
    else:
        meta.update(length=length or 32)
    api = conn.api()
    ref = api.create_order(order_type, {k: v for k, v in meta.items() if v is not None})
    body = api.wait_for_order(ref) if wait else api.get_order(ref)
    emit(_order_row(body), conn.output, ORDER_COLUMNS)


@order.command("get")
@connection_options
@click.argument("order_id")
def order_get(conn: Connection, order_id: str) -> None:
    """Show an order."""
    row = _order_row(conn.api().get_order(order_id))
    emit(row, conn.output, (*ORDER_COLUMNS, "meta"))


@order.command("list")
@connection_options
@click.option("--type", "order_type", type=click.Choice(["key", "asymmetric", "password"]), help="Only this type.")
def order_list(conn: Connection, order_type: str | None) -> None:
    """List orders (all pages), password orders included."""
    api = conn.api()
    if order_type is not None:
        orders = list(api.list_orders(type=order_type))
    else:
        # The server lists password orders only when asked by type: Barbican's clients do not know the type
        # and would fail on it. This CLI made them, so it shows them with the others, oldest first.
        orders = [*api.list_orders(), *api.list_orders(type="password")]
        orders.sort(key=lambda o: (str(o.get("created") or ""), o["order_ref"]))
    emit([_order_row(o) for o in orders], conn.output, ORDER_COLUMNS)


@order.command("delete")
@connection_options
@click.argument("order_id")
def order_delete(conn: Connection, order_id: str) -> None:
    """Delete an order (not the secrets it made)."""
    conn.api().delete_order(order_id)
    click.echo(f"deleted {ref_id(order_id)}", err=True)


# ------------------------------------------------------------------------------------------ containers

CONTAINER_COLUMNS = ("id", "name", "type", "status", "created", "secret_refs")


def _container_row(item: dict[str, Any]) -> dict[str, Any]:
    row = {"id": ref_id(item["container_ref"]), **item}
    row["secret_refs"] = {s.get("name") or "": ref_id(s["secret_ref"]) for s in item.get("secret_refs") or []}
    return row


@click.group()
def container() -> None:
    """Containers: named groups of secrets (generic, rsa, certificate)."""


@container.command("create")
@connection_options
@click.option("-n", "--name", help="Name.")
@click.option("--type", "container_type", type=click.Choice(["generic", "rsa", "certificate"]), default="generic")
@click.option("-s", "--secret", "secrets", multiple=True, help="NAME=SECRET_ID (repeat).")
def container_create(conn: Connection, name: str | None, container_type: str, secrets: tuple[str, ...]) -> None:
    """Create a container."""
    refs: dict[str, str] = {}
    for pair in secrets:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(f"{pair!r} is not NAME=SECRET_ID", param_hint="--secret")
        refs[key] = value
    ref = conn.api().create_container(container_type, refs, name)
    emit({"id": ref_id(ref), "container_ref": ref}, conn.output)


@container.command("get")
@connection_options
@click.argument("container_id")
def container_get(conn: Connection, container_id: str) -> None:
    """Show a container."""
    emit(_container_row(conn.api().get_container(container_id)), conn.output, (*CONTAINER_COLUMNS, "consumers"))


@container.command("list")
@connection_options
@click.option("-n", "--name", help="Only containers with this name.")
@click.option("--type", "container_type", type=click.Choice(["generic", "rsa", "certificate"]))
def container_list(conn: Connection, name: str | None, container_type: str | None) -> None:
    """List containers (all pages)."""
    rows = [_container_row(c) for c in conn.api().list_containers(name=name, type=container_type)]
    emit(rows, conn.output, CONTAINER_COLUMNS)


@container.command("delete")
@connection_options
@click.argument("container_id")
def container_delete(conn: Connection, container_id: str) -> None:
    """Delete a container (not its secrets)."""
    conn.api().delete_container(container_id)
    click.echo(f"deleted {ref_id(container_id)}", err=True)


# ------------------------------------------------------------------------------------------ ACLs


def _kind(ident: str, is_container: bool) -> str:
    if "/containers/" in ident:
        return "containers"
    if "/secrets/" in ident:
        return "secrets"
    return "containers" if is_container else "secrets"


container_flag = click.option("--container", "is_container", is_flag=True, help="ID names a container, not a secret.")


@click.group()
def acl() -> None:
    """Read ACLs of secrets and containers: who outside the project may read them."""


@acl.command("get")
@connection_options
@click.argument("ident")
@container_flag
def acl_get(conn: Connection, ident: str, is_container: bool) -> None:
    """Show the read ACL."""
    body = conn.api().get_acl(_kind(ident, is_container), ident)
    read = body.get("read") or {}
    row = {"operation": "read", "users": read.get("users") or [], "project-access": read.get("project-access", True)}
    emit({**row, "created": read.get("created"), "updated": read.get("updated")}, conn.output)


@acl.command("set")
@connection_options
@click.argument("ident")
@container_flag
@click.option("-u", "--user", "users", multiple=True, help="User id allowed to read (repeat). Replaces the list.")
@click.option("--project-access/--no-project-access", default=True, show_default=True)
@click.option("--add", is_flag=True, help="Add the users to the ACL instead of replacing it.")
def acl_set(
    conn: Connection, ident: str, is_container: bool, users: tuple[str, ...], project_access: bool, add: bool
) -> None:
    """Set (or with --add, extend) the read ACL."""
    api = conn.api()
    kind = _kind(ident, is_container)
    user_list = list(users)
    if add:
        current = (api.get_acl(kind, ident).get("read") or {}).get("users") or []
        user_list = list(dict.fromkeys([*current, *users]))
    api.set_acl(kind, ident, user_list, project_access)
    click.echo(f"ACL of {ref_id(ident)} set", err=True)


@acl.command("delete")
@connection_options
@click.argument("ident")
@container_flag
def acl_delete(conn: Connection, ident: str, is_container: bool) -> None:
    """Remove the ACL (back to project access only)."""
    conn.api().delete_acl(_kind(ident, is_container), ident)
    click.echo(f"ACL of {ref_id(ident)} deleted", err=True)


# ------------------------------------------------------------------------------------------ consumers


@click.group()
def consumer() -> None:
    """Consumers: services using a secret or container (deletion is refused while they are registered)."""


ConsumerChange = Callable[[BarbicanAPI, str, str, Mapping[str, str]], None]


def _consumer_command(name: str, change: ConsumerChange, summary: str, done: str) -> None:
    """``consumer add`` and ``consumer remove``: the same consumer, given to the API's add or its remove."""

    @consumer.command(name, help=summary)
    @connection_options
    @click.argument("ident")
    @container_flag
    @click.option("-s", "--service", required=True, help="Service (e.g. cinder).")
    @click.option("-t", "--resource-type", required=True, help="Resource type (e.g. volume).")
    @click.option("-i", "--resource-id", required=True, help="Resource id.")
    def command(
        conn: Connection, ident: str, is_container: bool, service: str, resource_type: str, resource_id: str
    ) -> None:
        body = {"service": service, "resource_type": resource_type, "resource_id": resource_id}
        change(conn.api(), _kind(ident, is_container), ident, body)
        click.echo(f"consumer {done} {ref_id(ident)}", err=True)


_consumer_command("add", BarbicanAPI.add_consumer, "Register a consumer.", "added to")
_consumer_command("remove", BarbicanAPI.remove_consumer, "Remove a consumer.", "removed from")


@consumer.command("list")
@connection_options
@click.argument("ident")
@container_flag
def consumer_list(conn: Connection, ident: str, is_container: bool) -> None:
    """List consumers (all pages)."""
    rows = conn.api().list_consumers(_kind(ident, is_container), ident)
    emit(rows, conn.output, ("service", "resource_type", "resource_id", "created"))


# ------------------------------------------------------------------------------------------ completion


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(donjon completion bash)"."""
    from click.shell_completion import get_completion_class

    ctx = click.get_current_context()
    root = ctx.find_root().command
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(root, {}, "donjon", "_DONJON_COMPLETE").source())
