"""``transit/``: Vault's transit engine over services/transit.py (keys are sealed secrets of the project).

This module only translates: parameters in (JSON or the CLI's strings, Go's conversions), Vault's ``data``
out. A single request's failure is a 400 ``{"errors": [...]}``; a ``batch_input`` answers every item, and
if any failed, the full envelope with a 400 status (captured from OpenBao 2.7.2). ``data`` maps have their
keys sorted, as Go encodes a map; batch items keep Vault's struct order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from donjon.api.audit_middleware import before_effect
from donjon.api.common import ctx, run_read
from donjon.api.vault import responses
from donjon.api.vault.errors import bad_request, not_found
from donjon.api.vault.router import PathTable, VaultCall
from donjon.auth import Caller
from donjon.services.transit import CryptoItem, ItemResult, KeyConfig, NewKey, SignOptions, TransitService

# Vault's key name pattern (builtin/logical/transit: framework.GenericNameRegex).
_NAME = r"(?P<name>\w(?:[\w\-.@]*\w)?)"
_ALGO = r"(?:/(?P<algo>[\w\-]+))?"


def _service(call: VaultCall) -> TransitService:
    service = ctx(call.request).transit
    assert service is not None
    return service


async def _caller(call: VaultCall) -> Caller:
    return (await call.identity()).caller


# --- parameters, converted as Vault's framework converts them ---------------------------------------------


def _conversion_error(name: str, value: Any, kind: str) -> Exception:
    return bad_request(f'error converting input {value!r} for field "{name}": expected {kind}')


def _int(params: dict[str, Any], name: str, default: int = 0) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _conversion_error(name, value, "an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _conversion_error(name, value, "an integer")


def _bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "t", "f"):
        return value.lower() in ("true", "1", "t")
    if isinstance(value, int):
        return value != 0
    raise _conversion_error(name, value, "a boolean")


def _str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    raise _conversion_error(name, "<value>", "a string")


def _item(params: dict[str, Any]) -> CryptoItem:
    return CryptoItem(
        plaintext=_str(params, "plaintext"),
        ciphertext=_str(params, "ciphertext"),
        input=_str(params, "input"),
        signature=_str(params, "signature"),
        hmac=_str(params, "hmac"),
        context=_str(params, "context"),
        associated_data=_str(params, "associated_data"),
        key_version=_int(params, "key_version"),
        reference=_str(params, "reference") or "",
    )


def _items(params: dict[str, Any]) -> tuple[list[CryptoItem], bool]:
    """The request's items, and whether they came as ``batch_input``."""
    batch = params.get("batch_input")
    if batch is None:
        return [_item(params)], False
    if not isinstance(batch, list) or not all(isinstance(i, dict) for i in batch):
        raise bad_request("failed to parse batch input: expected a list of objects")
    if not batch:
        raise bad_request("missing batch input to process")
    # Request-level fields (context, key_version...) are not inherited by items, as in Vault.
    return [_item(i) for i in batch], True


def _sign_options(params: dict[str, Any], algo: str | None) -> SignOptions:
    # The path's, else ``hash_algorithm``, else the deprecated ``algorithm`` (Vault's order).
    hash_algorithm = algo or _str(params, "hash_algorithm") or _str(params, "algorithm") or "sha2-256"
    return SignOptions(
        hash_algorithm=hash_algorithm,
        prehashed=_bool(params, "prehashed"),
        signature_algorithm=_str(params, "signature_algorithm") or "pss",
        marshaling_algorithm=_str(params, "marshaling_algorithm") or "asn1",
    )


# --- answers ---------------------------------------------------------------------------------------


def _answer(call: VaultCall, results: list[ItemResult], items: list[CryptoItem], batch: bool) -> Response:
    if not batch:
        [result] = results
        if result.error is not None:
            raise bad_request(result.error)
        return responses.logical(call.request, dict(sorted(result.values.items())))
    out: list[dict[str, object]] = []
    for result, item in zip(results, items, strict=True):
        entry = dict(result.values)
        if result.error is not None:
            entry["error"] = result.error
        entry["reference"] = item.reference  # last, as in Vault's struct; "" when the item gave none
        out.append(entry)
    failed = any(r.error is not None for r in results)
    return responses.logical(call.request, {"batch_results": out}, status=400 if failed else 200)


async def _run(
    call: VaultCall,
    work: Callable[[], list[ItemResult]],
    items: list[CryptoItem],
    batch: bool,
    *,
    on_loop: bool = False,
) -> Response:
    """``work`` in a worker thread; ``on_loop``: a single item tried on the event loop first (SQLite,
    donjon.blocking), moved to a thread before any effect if a step would wait (a KEK to unwrap, a key to
    create). A batch is CPU enough to keep off the loop."""
    if on_loop and len(items) == 1:
        return _answer(call, await run_read(ctx(call.request), work), items, batch)
    return _answer(call, await run_in_threadpool(work), items, batch)


async def _params_and_items(call: VaultCall) -> tuple[dict[str, Any], list[CryptoItem], bool]:
    params = await call.json()
    items, batch = _items(params)
    return params, items, batch


# --- keys ------------------------------------------------------------------------------------------


async def _list_keys(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    names = await run_in_threadpool(_service(call).list_keys, caller)
    if not names:
        raise not_found()  # Vault: a LIST with nothing under it is a 404
    return responses.logical(call.request, {"keys": names})


async def _read_key(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    info = await run_in_threadpool(_service(call).read_key, caller, match["name"])
    return responses.logical(call.request, info)


async def _create_key(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    params = await call.json()
    new = NewKey(
        key_type=_str(params, "type") or "aes256-gcm96",
        derived=_bool(params, "derived"),
        exportable=_bool(params, "exportable"),
        convergent_encryption=_bool(params, "convergent_encryption"),
        allow_plaintext_backup=_bool(params, "allow_plaintext_backup"),
    )
    if params.get("auto_rotate_period") not in (None, 0, "", "0", "0s"):
        raise bad_request("auto_rotate_period is not supported: rotate keys with transit/keys/<name>/rotate")
    info = await run_in_threadpool(_service(call).create_key, caller, match["name"], new)
    return responses.logical(call.request, info)


async def _delete_key(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    await run_in_threadpool(_service(call).delete_key, caller, match["name"])
    return responses.no_content()


def _optional_int(params: dict[str, Any], name: str) -> int | None:
    return _int(params, name) if params.get(name) not in (None, "") else None


def _optional_bool(params: dict[str, Any], name: str) -> bool | None:
    return _bool(params, name) if params.get(name) not in (None, "") else None


async def _config(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    params = await call.json()
    config = KeyConfig(
        min_decryption_version=_optional_int(params, "min_decryption_version"),
        min_encryption_version=_optional_int(params, "min_encryption_version"),
        deletion_allowed=_optional_bool(params, "deletion_allowed"),
        exportable=_optional_bool(params, "exportable"),
        allow_plaintext_backup=_optional_bool(params, "allow_plaintext_backup"),
    )
    info = await run_in_threadpool(_service(call).configure, caller, match["name"], config)
    return responses.logical(call.request, info)


async def _rotate(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    await call.json()  # a malformed body is still Vault's 400
    info = await run_in_threadpool(_service(call).rotate, caller, match["name"])
    return responses.logical(call.request, info)


async def _trim(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    params = await call.json()
    if params.get("min_available_version") is None:
        raise bad_request("missing min_available_version")
    minimum = _int(params, "min_available_version")
    info = await run_in_threadpool(_service(call).trim, caller, match["name"], minimum)
    return responses.logical(call.request, info)


# --- using keys ------------------------------------------------------------------------------------


async def _encrypt(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    params, items, batch = await _params_and_items(call)
    upsert = NewKey(
        key_type=_str(params, "type") or "aes256-gcm96",
        # Vault creates a derived key when the first encrypt names a context.
        derived=_bool(params, "derived") or any(i.context for i in items),
        convergent_encryption=_bool(params, "convergent_encryption"),
    )
    service, name = _service(call), match["name"]
    # Its one possible effect, the key's creation, goes on record as intended first (before_effect).
    announce = before_effect(call.request)
    return await _run(
        call, lambda: service.encrypt(caller, name, items, upsert, before_effect=announce), items, batch, on_loop=True
    )


async def _decrypt(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    _, items, batch = await _params_and_items(call)
    service, name = _service(call), match["name"]
    return await _run(call, lambda: service.decrypt(caller, name, items), items, batch)


async def _rewrap(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    _, items, batch = await _params_and_items(call)
    service, name = _service(call), match["name"]
    return await _run(call, lambda: service.rewrap(caller, name, items), items, batch)


async def _datakey(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    params = await call.json()
    item = _item(params)
    bits = _int(params, "bits", 256)
    data = await run_in_threadpool(_service(call).datakey, caller, match["name"], match["kind"], bits, item)
    return responses.logical(call.request, dict(sorted(data.items())))


def _hmac_algorithm(params: dict[str, Any], match: re.Match[str]) -> str:
    """The path's algorithm, else ``algorithm``: Vault reads no other name for an HMAC (it ignores
    ``hash_algorithm`` there)."""
    return match["algo"] or _str(params, "algorithm") or "sha2-256"


async def _hmac(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    params, items, batch = await _params_and_items(call)
    algorithm, key_version = _hmac_algorithm(params, match), _int(params, "key_version")
    service, name = _service(call), match["name"]
    return await _run(call, lambda: service.hmac(caller, name, algorithm, key_version, items), items, batch)


async def _signing(
    call: VaultCall, match: re.Match[str]
) -> tuple[Caller, dict[str, Any], list[CryptoItem], bool, SignOptions]:
    """What sign and verify both read first: the caller, the body, its items and the signing options."""
    caller = await _caller(call)
    params, items, batch = await _params_and_items(call)
    return caller, params, items, batch, _sign_options(params, match["algo"])


async def _sign(call: VaultCall, match: re.Match[str]) -> Response:
    caller, params, items, batch, options = await _signing(call, match)
    key_version = _int(params, "key_version")
    service, name = _service(call), match["name"]
    return await _run(call, lambda: service.sign(caller, name, options, key_version, items), items, batch)


async def _verify(call: VaultCall, match: re.Match[str]) -> Response:
    caller, params, items, batch, options = await _signing(call, match)
    hmac_algorithm = _hmac_algorithm(params, match)
    service, name = _service(call), match["name"]
    return await _run(
        call, lambda: service.verify(caller, name, hmac_algorithm, options, items, batch=batch), items, batch
    )


# --- no key ----------------------------------------------------------------------------------------


async def _random(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    params = await call.json()
    count = _int(params, "bytes", 32)
    for segment in (match["a"], match["b"]):
        if segment is None or segment in ("platform", "all"):
            continue
        if segment == "seal":
            raise bad_request("donjon has no seal to draw randomness from: use source 'platform'")
        try:
            count = int(segment)
        except ValueError:
            raise bad_request(
                f'error parsing url-set byte count: strconv.Atoi: parsing "{segment}": invalid syntax'
            ) from None
    source = _str(params, "source") or "platform"
    if source not in ("platform", "all"):
        raise bad_request(f"unsupported entropy source {source!r}; donjon draws from 'platform'")
    output = _str(params, "format") or "base64"
    data = await run_in_threadpool(_service(call).random, caller, count, output)
    return responses.logical(call.request, {"random_bytes": data})


async def _hash(call: VaultCall, match: re.Match[str]) -> Response:
    caller = await _caller(call)
    params = await call.json()
    algorithm = match["algo"] or _str(params, "algorithm") or "sha2-256"
    output = _str(params, "format") or "hex"
    data = await run_in_threadpool(_service(call).hash, caller, algorithm, _str(params, "input") or "", output)
    return responses.logical(call.request, {"sum": data})


ENGINE = PathTable()
ENGINE.route("keys/?", list=_list_keys)
ENGINE.route(f"keys/{_NAME}", read=_read_key, write=_create_key, delete=_delete_key)
ENGINE.writes(
    {
        f"keys/{_NAME}/config": _config,
        f"keys/{_NAME}/rotate": _rotate,
        f"keys/{_NAME}/trim": _trim,
        f"encrypt/{_NAME}": _encrypt,
        f"decrypt/{_NAME}": _decrypt,
        f"rewrap/{_NAME}": _rewrap,
        f"datakey/(?P<kind>[^/]+)/{_NAME}": _datakey,
        f"hmac/{_NAME}{_ALGO}": _hmac,
        f"sign/{_NAME}{_ALGO}": _sign,
        f"verify/{_NAME}{_ALGO}": _verify,
        r"random(?:/(?P<a>[^/]+))?(?:/(?P<b>[^/]+))?": _random,
        f"hash{_ALGO}": _hash,
    }
)
# Uses of keys change nothing (an encrypt that creates its key announces it): the audit log writes their
# outcome only, as for a read, unless an effect is announced (the key's creation, a wrapped answer, a
# use-limited token's use).
ENGINE.announce_effects(_encrypt, _decrypt, _rewrap, _datakey, _hmac, _sign, _verify, _random, _hash)
