"""KV v2 at the configured mount (``secret/``): Vault's paths and bodies over ``services.kv``.

``data/``, ``metadata/``, ``delete/``, ``undelete/``, ``destroy/``, ``subkeys/`` and ``config``, as OpenBao
2.7.2 answers them (captures in the spec). Maps in answers are sorted as Go marshals them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from donjon.api.common import ctx, query_params, run_read
from donjon.api.vault import durations, responses
from donjon.api.vault.errors import VaultError, bad_request, not_found
from donjon.api.vault.router import PathTable, VaultCall
from donjon.auth import Caller
from donjon.errors import NotFound
from donjon.services.kv import KvMetadata, KvService, KvVersion

_PATH = r"(?P<path>.+)"
_V1_STYLE = (
    "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. "
    "If using the OpenBao CLI, use 'bao kv {verb}' for this operation."
)
_MAX_PATH = 255  # a secret's name


def _service(call: VaultCall) -> KvService:
    return ctx(call.request).kv


def _path(match: re.Match[str]) -> str:
    path = match["path"].strip("/")
    if len(path) > _MAX_PATH or "\x00" in path:
        raise bad_request(f"path is longer than {_MAX_PATH} characters or holds a NUL character")
    return path


def go_time(moment: datetime | None) -> str:
    """Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped), or "" for no time."""
    if moment is None:
        return ""
    text = moment.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def go_sorted(value: Any) -> Any:
    """A JSON value with every object's keys sorted, as Go's encoding/json writes maps."""
    if isinstance(value, dict):
        return {k: go_sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [go_sorted(v) for v in value]
    return value


def _version_metadata(version: KvVersion) -> dict[str, Any]:
    # OpenBao 2.7.2 answers custom_metadata null here even when the key has some (captured): metadata/ has it.
    return {
        "created_time": go_time(version.created_at),
        "custom_metadata": None,
        "deletion_time": go_time(version.deletion_time),
        "destroyed": version.destroyed,
        "version": version.version,
    }


def _int_param(call: VaultCall, name: str) -> int:
    raw = query_params(call.request).get(name, "")
    if raw == "":
        return 0
    try:
        return int(raw)
    except ValueError:
        raise bad_request(
            f"Field validation failed: error converting input for field \"{name}\": '' cannot parse value as "
            "'int': strconv.ParseInt: invalid syntax"
        ) from None


# --- data/ ---------------------------------------------------------------------------------------------


async def _read_data(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    path, version = _path(match), _int_param(call, "version")
    # SQLite: on the event loop unless a step would wait (donjon.blocking); a read has no effect to repeat.
    found = await run_read(ctx(call.request), _service(call).read, caller, path, version)
    metadata = _version_metadata(found.version)
    if found.data is None:
        # Deleted or destroyed: a 404 that still says which (the CLI prints it, `kv rollback` refuses it).
        return responses.logical(call.request, {"data": None, "metadata": metadata}, status=404)
    return responses.logical(call.request, {"data": go_sorted(found.data), "metadata": metadata})


def _options_cas(params: dict[str, Any]) -> int | None:
    options = params.get("options")
    if options is None:
        return None
    if not isinstance(options, dict):
        raise bad_request(
            "error converting input for field \"options\": '' expected a map, got '" + type(options).__name__ + "'"
        )
    cas = options.get("cas")
    if cas is None:
        return None
    try:
        return int(cas)
    except (TypeError, ValueError):
        raise bad_request('error converting input for field "cas": cas must be an integer') from None


def _data_of(params: dict[str, Any]) -> dict[str, Any]:
    if "data" not in params or params["data"] is None:
        raise bad_request("no data provided")
    data = params["data"]
    if not isinstance(data, dict):
        kind = {str: "string", list: "slice", bool: "bool", int: "int", float: "float64"}.get(type(data), "value")
        raise bad_request(
            "error converting input for field \"data\": '' expected type 'map[string]interface {}', "
            f"got unconvertible type '{kind}'"
        )
    return data


async def _write_data(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    path = _path(match)
    params = await call.json()
    data, cas = _data_of(params), _options_cas(params)
    made = await _write(call, caller, path, data, cas)
    return responses.logical(call.request, _version_metadata(made))


async def _write(call: VaultCall, caller: Caller, path: str, data: dict[str, Any], cas: int | None) -> KvVersion:
    # On SQLite the version joins the next group commit from the loop; otherwise, or when a step would wait,
    # in a worker thread (over the network its preparation reads the key's entry; its commit is still grouped).
    context = ctx(call.request)
    made = await _service(call).write_on_loop(caller, path, data, cas) if context.reads_on_loop else None
    return made if made is not None else await run_in_threadpool(_service(call).write, caller, path, data, cas)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _require_merge_patch(call: VaultCall) -> None:
    provided = call.request.headers.get("content-type", "").split(";", 1)[0].strip()
    if provided.lower() != "application/merge-patch+json":
        raise VaultError(415, f"PATCH requires Content-Type of application/merge-patch+json, provided {provided}")


async def _patch_data(call: VaultCall, match: re.Match[str]) -> Response:
    _require_merge_patch(call)
    caller = (await call.identity()).caller
    path = _path(match)
    params = await call.json()
    data, cas = _data_of(params), _options_cas(params)
    service = _service(call)
    try:
        current, document = await run_in_threadpool(service.latest_for_patch, caller, path)
    except NotFound:
        return Response(b"", status_code=404, media_type="application/json", headers=responses.HEADERS)
    if cas is not None and cas != current:
        raise bad_request("check-and-set parameter did not match the current version")
    # The write is fenced on the version the patch was computed from: a concurrent write fails it (400).
    made = await _write(call, caller, path, merge_patch(document, data), current)
    return responses.logical(call.request, _version_metadata(made))


async def _delete_data(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    await run_in_threadpool(_service(call).delete_latest, caller, _path(match))
    return responses.no_content()


# --- delete/ undelete/ destroy/ -------------------------------------------------------------------------


async def _versions_param(call: VaultCall) -> list[int]:
    raw = (await call.json()).get("versions")
    if isinstance(raw, str | int):
        raw = [raw] if not isinstance(raw, str) else [v for v in raw.split(",") if v.strip()]
    if not raw:
        raise bad_request("No version number provided")
    if not isinstance(raw, list):
        raise bad_request("No version number provided")
    try:
        return [int(v) for v in raw]
    except (TypeError, ValueError):
        raise bad_request('error converting input for field "versions": versions must be integers') from None


async def _delete_versions(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    numbers = await _versions_param(call)
    await run_in_threadpool(_service(call).set_deleted, caller, _path(match), numbers, True)
    return responses.no_content()


async def _undelete_versions(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    numbers = await _versions_param(call)
    await run_in_threadpool(_service(call).set_deleted, caller, _path(match), numbers, False)
    return responses.no_content()


async def _destroy_versions(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    numbers = await _versions_param(call)
    await run_in_threadpool(_service(call).destroy, caller, _path(match), numbers)
    return responses.no_content()


# --- metadata/ -----------------------------------------------------------------------------------------


def _metadata_body(meta: KvMetadata) -> dict[str, Any]:
    settings = meta.settings
    return {
        "cas_required": settings.cas_required,
        "created_time": go_time(meta.created_at),
        "current_metadata_version": meta.metadata_version,
        "current_version": meta.current_version,
        "custom_metadata": go_sorted(settings.custom_metadata) if settings.custom_metadata is not None else None,
        "delete_version_after": durations.go_format(settings.delete_version_after),
        "max_versions": settings.max_versions,
        "metadata_cas_required": False,
        "oldest_version": meta.oldest_version,
        "updated_time": go_time(meta.updated_at),
        "versions": {
            str(v.version): {
                "created_time": go_time(v.created_at),
                "deletion_time": go_time(v.deletion_time),
                "destroyed": v.destroyed,
            }
            for v in sorted(meta.versions, key=lambda v: str(v.version))
        },
    }


async def _read_metadata(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    meta = await run_in_threadpool(_service(call).metadata, caller, _path(match))
    return responses.logical(call.request, _metadata_body(meta))


def _settings_changes(params: dict[str, Any], *, merge_into: dict[str, str] | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "max_versions" in params:
        try:
            changes["max_versions"] = int(params["max_versions"])
        except (TypeError, ValueError):
            raise bad_request('error converting input for field "max_versions": not an integer') from None
        if changes["max_versions"] < 0:
            raise bad_request("max_versions must not be negative")
    if "cas_required" in params:
        value = params["cas_required"]
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise bad_request('error converting input for field "cas_required": not a boolean')
        changes["cas_required"] = value
    if "delete_version_after" in params:
        after = durations.seconds(params["delete_version_after"])
        changes["delete_version_after"] = max(after, 0)
    if "custom_metadata" in params:
        custom = params["custom_metadata"]
        if custom is not None and (
            not isinstance(custom, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in custom.items())
        ):
            raise bad_request("custom_metadata must be a map of strings to strings")
        if merge_into is not None and custom is not None:
            merged = {**merge_into, **custom}
            changes["custom_metadata"] = {k: v for k, v in merged.items() if v is not None} or None
        else:
            changes["custom_metadata"] = custom or None
        if changes["custom_metadata"] is not None and len(changes["custom_metadata"]) > 64:
            raise bad_request("custom_metadata may hold at most 64 keys")
    return changes


async def _write_metadata(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    changes = _settings_changes(await call.json())
    await run_in_threadpool(_service(call).write_metadata, caller, _path(match), changes)
    return responses.no_content()


async def _patch_metadata(call: VaultCall, match: re.Match[str]) -> Response:
    _require_merge_patch(call)
    caller = (await call.identity()).caller
    path = _path(match)
    params = await call.json()
    service = _service(call)
    try:
        current = await run_in_threadpool(service.metadata, caller, path)
    except NotFound:
        raise not_found() from None
    changes = _settings_changes(params, merge_into=current.settings.custom_metadata or {})
    await run_in_threadpool(service.write_metadata, caller, path, changes)
    return responses.no_content()


async def _delete_metadata(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    await run_in_threadpool(_service(call).delete_key, caller, _path(match))
    return responses.no_content()


async def _list_metadata(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    raw = match.groupdict().get("path") or ""
    prefix = raw.strip("/")
    keys = await run_in_threadpool(_service(call).list_keys, caller, f"{prefix}/" if prefix else "")
    if not keys:
        raise not_found()
    return responses.logical(call.request, {"keys": keys})


# --- subkeys/ and config --------------------------------------------------------------------------------


def subkeys(value: Any, depth: int, level: int = 1) -> Any:
    if not isinstance(value, dict):
        return None
    return {k: (None if depth and level >= depth else subkeys(v, depth, level + 1)) for k, v in sorted(value.items())}


async def _read_subkeys(call: VaultCall, match: re.Match[str]) -> Response:
    caller = (await call.identity()).caller
    path, version, depth = _path(match), _int_param(call, "version"), _int_param(call, "depth")
    found = await run_in_threadpool(_service(call).read, caller, path, version)
    metadata = _version_metadata(found.version)
    if found.data is None:
        return responses.logical(call.request, {"metadata": metadata, "subkeys": None}, status=404)
    return responses.logical(call.request, {"metadata": metadata, "subkeys": subkeys(found.data, depth)})


async def _read_config(call: VaultCall, match: re.Match[str]) -> Response:
    await call.identity()
    body = {"cas_required": False, "delete_version_after": "0s", "max_versions": 0, "metadata_cas_required": False}
    return responses.logical(call.request, body)


async def _write_config(call: VaultCall, match: re.Match[str]) -> Response:
    await call.identity()
    raise bad_request("the KV mount's configuration is donjon's: set max_versions and the rest per key (metadata/)")


async def _v1_style(call: VaultCall) -> Response:
    verb = {"read": "get", "write": "put", "delete": "delete", "list": "list", "patch": "patch"}[call.operation]
    await call.identity()
    return responses.logical(call.request, None, status=404, warnings=[_V1_STYLE.format(verb=verb)])


ENGINE = PathTable(fallback=_v1_style)
ENGINE.route(f"data/{_PATH}", read=_read_data, write=_write_data, patch=_patch_data, delete=_delete_data)
ENGINE.route("metadata", list=_list_metadata)
ENGINE.route(
    f"metadata/{_PATH}",
    read=_read_metadata,
    write=_write_metadata,
    patch=_patch_metadata,
    delete=_delete_metadata,
    list=_list_metadata,
)
ENGINE.route(f"delete/{_PATH}", write=_delete_versions)
ENGINE.route(f"undelete/{_PATH}", write=_undelete_versions)
ENGINE.route(f"destroy/{_PATH}", write=_destroy_versions)
ENGINE.route(f"subkeys/{_PATH}", read=_read_subkeys)
ENGINE.route("config", read=_read_config, write=_write_config)


def mount_entry() -> dict[str, Any]:
    return responses.mount_entry("kv", "kv_donjon", "key/value secret storage", {"version": "2"})
