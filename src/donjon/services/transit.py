"""The transit engine: named keys of a project used for encryption, HMAC and signatures as a service.

Vault's transit semantics over donjon's storage. A key is a donjon secret of its project, named
``transit/<name>`` and marked ``algorithm = vault-transit`` (storage/transit.py): its payload is the key ring,
every version of the key (services/transit_ring.py), sealed under the project's KEK like every payload, so
``rotate-kek`` re-seals it and a project purge shreds it. The secret is ``opaque``, one of Barbican's types,
so Barbican lists and its clients (Castellan maps types to classes) keep working; its payload is never served
through the Barbican API (services/access.py refuses it: a transit key is not exportable).

Policy is Barbican's rules on that secret: creating a key is ``secrets:post``, reading its description
``secret:get``, listing ``secrets:get``, changing it (config, rotate, trim) ``secret:put``, deleting it
``secret:delete``, and every use of it (encrypt, decrypt, rewrap, datakey, hmac, sign, verify)
``secret:decrypt``. ``random`` and ``hash`` use no key: ``secrets:get``.

Errors carry Vault's own texts (the Vault API answers them as 400 ``{"errors": [...]}``); a missing key is
NotFound only for a read (Vault's 404), InvalidInput with the operation's text elsewhere. Neither the key
material nor a plaintext ever enters an error, a log line or a repr.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from donjon.auth import Caller
from donjon.blocking import may_block
from donjon.cache import ExpiringCache
from donjon.crypto import DecryptionFailed
from donjon.crypto import transit as primitives
from donjon.errors import InvalidInput, NotFound, Unavailable
from donjon.policy import Policy
from donjon.services import access, gobase64
from donjon.services.base import Service
from donjon.services.commands import NewSecret, no_intent
from donjon.services.payload_store import PayloadStore
from donjon.services.project_keys import ProjectKeys
from donjon.services.quotas import Quotas
from donjon.services.sealing import new_secret_record
from donjon.services.transit_ring import KeyRing
from donjon.storage import quotas as quotas_repo
from donjon.storage import secrets as secrets_repo
from donjon.storage import tombstones
from donjon.storage import transit as repo
from donjon.storage.database import Database
from donjon.storage.records import SecretRecord
from donjon.stores import DATABASE
from donjon.timeutil import SYSTEM_CLOCK, Clock

MARKER_ALGORITHM = repo.MARKER_ALGORITHM
# Vault's key name pattern (path_keys.go: ``\w(([\w-.@]+)?\w)?``); the secret name column holds 255.
_NAME = re.compile(r"^\w(?:[\w\-.@]*\w)?$")
_MAX_NAME = 255 - len(repo.NAME_PREFIX)
MAX_RANDOM_BYTES = 128 * 1024
_UPDATE_ATTEMPTS = 8


def is_transit_key(record: SecretRecord) -> bool:
    return record.algorithm == MARKER_ALGORITHM


def valid_name(name: str) -> bool:
    return len(name) <= _MAX_NAME and bool(_NAME.match(name))


# --- typed commands and results --------------------------------------------------------------------------


@dataclass(frozen=True)
class NewKey:
    key_type: str = "aes256-gcm96"
    derived: bool = False
    exportable: bool = False
    convergent_encryption: bool = False
    allow_plaintext_backup: bool = False


@dataclass(frozen=True)
class KeyConfig:
    """``keys/<name>/config``: None leaves a setting as it is."""

    min_decryption_version: int | None = None
    min_encryption_version: int | None = None
    deletion_allowed: bool | None = None
    exportable: bool | None = None
    allow_plaintext_backup: bool | None = None


@dataclass(frozen=True)
class CryptoItem:
    """One item of a request (or of its ``batch_input``): base64 and ``vault:`` strings, not yet decoded."""

    plaintext: str | None = field(default=None, repr=False)
    ciphertext: str | None = None
    input: str | None = field(default=None, repr=False)
    signature: str | None = None
    hmac: str | None = None
    context: str | None = None
    associated_data: str | None = None
    key_version: int = 0
    reference: str = ""


@dataclass(frozen=True)
class ItemResult:
    """``data`` (or one ``batch_results`` entry) in Vault's key order; ``error`` set when the item failed."""

    values: dict[str, object] = field(repr=False)
    error: str | None = None


@dataclass(frozen=True)
class SignOptions:
    hash_algorithm: str = "sha2-256"
    prehashed: bool = False
    signature_algorithm: str = "pss"
    marshaling_algorithm: str = "asn1"


# --- the engine ---------------------------------------------------------------------------------------


class TransitService(Service):
    def __init__(
        self,
        db: Database,
        keys: ProjectKeys,
        policy: Policy,
        quotas: Quotas,
        *,
        max_cached_rings: int = 1_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(db, policy, clock=clock)
        self._keys = keys
        # The one payload path: a ring is sealed and opened by the database store like every payload.
        self._payloads = PayloadStore(keys)
        self._quotas = quotas
        # (project, key name) -> the ring opened from one exact sealed payload of its row. Each use still reads
        # the row (existence, policy) and compares it with the entry; only the unseal and parse are skipped.
        # Entries live no longer than the KEK that opened them stays cached (ProjectKeys.time_left).
        self._rings: ExpiringCache[tuple[str, str], _OpenedRing] = ExpiringCache(
            maxsize=max_cached_rings, ttl=keys.cache_seconds, timer=clock.monotonic
        )

    # --- storage of rings ---------------------------------------------------------------------------

    def _load(
        self, caller: Caller, name: str, rule: str, operation: str, *, cached: bool = True
    ) -> tuple[SecretRecord, KeyRing] | None:
        """The ring and its row if it exists in the caller's project and ``rule`` allows; None if absent.

        ``cached``: the ring may be the one this process opened from the very same sealed payload (a shared
        object: never changed); without it, a ring of the caller's own, to change and store."""
        if not valid_name(name):
            return None
        with self._db.read() as conn:
            found = repo.find_ring(conn, caller.project_id, name, caller.user_id, self._clock.now())
        if found is None:
            self._rings.pop((caller.project_id, name))  # deleted, expired or purged: its bytes go now
            return None
        # The same decision as for the secret through Barbican (403 for a private secret of another user).
        record = access.decide_secret(found, self._policy, caller, rule, operation)
        if not cached:
            return record, self._open(record)
        return record, self._open_cached(name, record)

    def _open_cached(self, name: str, record: SecretRecord) -> KeyRing:
        """``_open``, skipped when this process opened the row's current sealed payload already."""
        key = (record.project_id, name)
        hit = self._rings.get(key)
        if hit is not None:
            if hit.opens(record):
                return hit.ring
            self._rings.pop(key)  # rotated, configured, trimmed, re-created or re-sealed since: stale
        ring = self._open(record)
        assert record.kek_id is not None and record.ciphertext is not None  # _open refuses a row without them
        self._rings.put(
            key,
            _OpenedRing(record.id, record.version, record.kek_id, record.ciphertext, ring),
            ttl=self._keys.time_left(record.kek_id),
        )
        return ring

    def forget_rings(self) -> None:
        self._rings.clear()

    def expire(self) -> None:
        """Drop the rings past their TTL now (the order worker's housekeeping, as for the KEK cache)."""
        self._rings.expire()

    def cached_ring_count(self) -> int:
        return len(self._rings)

    def _open(self, record: SecretRecord) -> KeyRing:
        if record.store is not None or record.ciphertext is None:
            raise Unavailable("the transit key's ring is not in the database store")
        try:
            return KeyRing.from_bytes(self._payloads.read(record))
        except (DecryptionFailed, ValueError, NotFound):
            # A Barbican secret dressed as a ring, or a damaged row: refused, never parsed further.
            raise InvalidInput("the stored transit key is not readable") from None

    def _now_ns(self) -> int:
        return int(self._clock.now().timestamp() * 1_000_000) * 1_000

    def _create(self, caller: Caller, name: str, new: NewKey) -> KeyRing:
        """Create the ring unless one exists (then return that one: Vault's create is a no-op upsert)."""
        ring = KeyRing(name=name, key_type=new.key_type, derived=new.derived)
        ring.add_version(self._now_ns())
        payload = ring.to_bytes()

        def attempt() -> KeyRing:
            record = new_secret_record(
                self._payloads,
                NewSecret(
                    name=repo.NAME_PREFIX + name,
                    secret_type="opaque",
                    algorithm=MARKER_ALGORITHM,
                    mode=new.key_type,
                    content_type="application/octet-stream",
                    payload=payload,
                ),
                project_id=caller.project_id,
                creator_id=caller.user_id,
                now=self._clock.now(),
                store=DATABASE,  # never an external store: the ring is opened on every use
            )
            with self._db.write() as conn:
                # One creator at a time per project, so two racing creates of one name make one key.
                quotas_repo.lock_project(conn, caller.project_id)
                existing = repo.find_ring(conn, caller.project_id, name, caller.user_id, self._clock.now())
                if existing is not None:
                    return self._open(existing[0])
                self._quotas.check(conn, caller.project_id, "secrets", self._count_live)
                self._payloads.hold(conn, record)
                secrets_repo.insert_secret(conn, record)
            return ring

        return self._payloads.retry_if_retired(attempt)

    def _count_live(self, conn: Connection, project_id: str) -> int:
        return secrets_repo.count_live_secrets(conn, project_id, now=self._clock.now())

    def _update(
        self, caller: Caller, name: str, operation: str, missing: str, change: Callable[[KeyRing], None]
    ) -> KeyRing:
        """Apply ``change`` to the stored ring and store it, re-reading if another writer came in between."""
        for _ in range(_UPDATE_ATTEMPTS):
            found = self._load(caller, name, "secret:put", operation, cached=False)
            if found is None:
                raise InvalidInput(missing)
            record, ring = found
            change(ring)
            if self._payloads.retry_if_retired(functools.partial(self._store, record, ring)):
                self._rings.pop((caller.project_id, name))  # e.g. trimmed versions: their bytes go now
                return ring
        raise Unavailable("the transit key is being changed concurrently; try again")

    def _store(self, record: SecretRecord, ring: KeyRing) -> bool:
        assert record.ciphertext is not None
        sealed = self._payloads.put(record, DATABASE, ring.to_bytes())
        assert sealed.kek_id is not None and sealed.ciphertext is not None
        with self._db.write() as conn:
            self._payloads.hold(conn, sealed)
            return repo.replace_ring(
                conn,
                record.id,
                old=record.ciphertext,
                kek_id=sealed.kek_id,
                ciphertext=sealed.ciphertext,
                now=self._clock.now(),
            )

    # --- key management -----------------------------------------------------------------------------

    def create_key(self, caller: Caller, name: str, new: NewKey) -> dict[str, object]:
        self._policy.enforce("secrets:post", caller, operation="Secret creation")
        _check_new_key(new)
        if not valid_name(name):
            raise InvalidInput(f"invalid key name {name!r}")
        found = self._load(caller, name, "secret:get", "Secret retrieval")
        if found is not None:
            return found[1].info()
        return self._create(caller, name, new).info()

    def read_key(self, caller: Caller, name: str) -> dict[str, object]:
        found = self._load(caller, name, "secret:get", "Secret retrieval")
        if found is None:
            raise NotFound("")
        return found[1].info()

    def list_keys(self, caller: Caller) -> list[str]:
        self._policy.enforce("secrets:get", caller, operation="Secret(s) retrieval")
        with self._db.read() as conn:
            return repo.ring_names(conn, caller.project_id, self._clock.now())

    def configure(self, caller: Caller, name: str, config: KeyConfig) -> dict[str, object]:
        if config.exportable:
            raise InvalidInput("exportable keys are not supported: donjon never exports transit key material")
        if config.allow_plaintext_backup:
            raise InvalidInput("plaintext backups are not supported: donjon never exports transit key material")
        return self._update(
            caller,
            name,
            "Secret update",
            f"no existing key named {name} could be found",
            lambda ring: _apply_config(ring, config),
        ).info()

    def rotate(self, caller: Caller, name: str) -> dict[str, object]:
        now_ns = self._now_ns()
        return self._update(caller, name, "Secret update", "key not found", lambda ring: _rotate(ring, now_ns)).info()

    def trim(self, caller: Caller, name: str, min_available_version: int) -> dict[str, object]:
        return self._update(
            caller, name, "Secret update", "invalid key name", lambda ring: _trim(ring, min_available_version)
        ).info()

    def delete_key(self, caller: Caller, name: str) -> None:
        found = self._load(caller, name, "secret:delete", "Secret deletion")
        if found is None:
            raise InvalidInput(f"error deleting policy {name}: could not delete key; not found")
        record, ring = found
        if not ring.deletion_allowed:
            raise InvalidInput(f"error deleting policy {name}: deletion is not allowed for this key")
        with self._db.write() as conn:
            tombstones.remove_secret(conn, record, reason=tombstones.DELETED, now=self._clock.now())
        self._rings.pop((caller.project_id, name))

    # --- using a key --------------------------------------------------------------------------------

    def _key_for_use(self, caller: Caller, name: str, missing: str) -> KeyRing:
        found = self._load(caller, name, "secret:decrypt", "Secret payload retrieval")
        if found is None:
            raise InvalidInput(missing)
        return found[1]

    def encrypt(
        self,
        caller: Caller,
        name: str,
        items: list[CryptoItem],
        upsert: NewKey,
        *,
        before_effect: Callable[[], None] = no_intent,
    ) -> list[ItemResult]:
        """Encrypt ``items`` under the key ``name``. Its one possible effect, creating the key (Vault's upsert),
        has ``before_effect`` called first (the API records its intent there, and may refuse by raising)."""
        found = self._load(caller, name, "secret:decrypt", "Secret payload retrieval")
        if found is None:
            # Vault creates the key on first encrypt (an upsert), with the type and derivation asked for.
            if not valid_name(name):
                raise InvalidInput(f"invalid key name {name!r}")
            self._policy.enforce("secrets:post", caller, operation="Secret creation")
            _check_new_key(upsert)
            may_block("a transit key's creation")  # before its audit record and its writes
            before_effect()
            ring = self._create(caller, name, upsert)
        else:
            ring = found[1]
        if not ring.kind.encrypts:
            raise InvalidInput(f"message encryption not supported for key type {ring.key_type}")
        return [_item(functools.partial(_encrypt_one, ring, item)) for item in items]

    def decrypt(self, caller: Caller, name: str, items: list[CryptoItem]) -> list[ItemResult]:
        ring = self._key_for_use(caller, name, "encryption key not found")
        if not ring.kind.encrypts:
            raise InvalidInput(f"message decryption not supported for key type {ring.key_type}")

        def one(item: CryptoItem) -> dict[str, object]:
            return {"plaintext": gobase64.encode(_decrypt_one(ring, item))}

        # A failed decrypt item still carries ``"plaintext": ""`` (captured from OpenBao).
        return [_item(functools.partial(one, item), {"plaintext": ""}) for item in items]

    def rewrap(self, caller: Caller, name: str, items: list[CryptoItem]) -> list[ItemResult]:
        ring = self._key_for_use(caller, name, "encryption key not found")
        if not ring.kind.encrypts:
            raise InvalidInput(f"message encryption not supported for key type {ring.key_type}")

        def one(item: CryptoItem) -> dict[str, object]:
            plaintext = _decrypt_one(ring, item)
            version = ring.encryption_version(item.key_version)
            return _ciphertext(ring, version, plaintext, item)

        return [_item(functools.partial(one, item)) for item in items]

    def datakey(self, caller: Caller, name: str, kind: str, bits: int, item: CryptoItem) -> dict[str, object]:
        if kind not in ("plaintext", "wrapped"):
            raise InvalidInput("Invalid path, must be 'plaintext' or 'wrapped'")
        ring = self._key_for_use(caller, name, "encryption key not found")
        if bits not in (128, 256, 512):
            raise InvalidInput("invalid bit length")
        if not ring.kind.encrypts:
            raise InvalidInput(f"message encryption not supported for key type {ring.key_type}")
        key = secrets.token_bytes(bits // 8)
        version = ring.encryption_version(item.key_version)
        out = _ciphertext(ring, version, key, item)
        if kind == "plaintext":
            out["plaintext"] = gobase64.encode(key)
        return out

    def hmac(
        self, caller: Caller, name: str, algorithm: str, key_version: int, items: list[CryptoItem]
    ) -> list[ItemResult]:
        """HMACs under one key version (``key_version`` is the request's, as in Vault), per item."""
        ring = self._key_for_use(caller, name, "encryption key not found")
        if key_version == 0:
            key_version = ring.latest_version
        if key_version != ring.latest_version and ring.min_encryption_version > 0:
            if key_version < ring.min_encryption_version:
                raise InvalidInput("cannot generate HMAC: version is too old (disallowed by policy)")
        if key_version < 0:
            raise InvalidInput("key version does not exist (cannot be negative)")
        if key_version > ring.latest_version:
            raise InvalidInput(f"key version does not exist; latest key version is {ring.latest_version}")
        if key_version not in ring.versions:
            raise InvalidInput("no such key version")
        if algorithm not in primitives.HASH_ALGORITHMS:
            raise InvalidInput(f"unsupported algorithm {algorithm}")
        hmac_key = ring.versions[key_version].hmac_key

        def one(item: CryptoItem) -> dict[str, object]:
            if item.input is None:
                raise InvalidInput("missing input for HMAC")
            mac = primitives.hmac(hmac_key, algorithm, _decode_input(item.input))
            return {"hmac": f"vault:v{key_version}:{gobase64.encode(mac)}"}

        return [_item(functools.partial(one, item)) for item in items]

    def sign(
        self, caller: Caller, name: str, options: SignOptions, key_version: int, items: list[CryptoItem]
    ) -> list[ItemResult]:
        ring = self._key_for_use(caller, name, "signing key not found")
        if not ring.kind.signs:
            raise InvalidInput(f"key type {ring.key_type} does not support signing")
        opts = _sign_options(ring, options)
        version = ring.encryption_version(key_version)

        def one(item: CryptoItem) -> dict[str, object]:
            if item.input is None:
                raise InvalidInput("missing input")
            data = _decode_input(item.input)
            signature = primitives.sign(ring.key_type, _material(ring, version, item), data, opts)
            return {"signature": f"vault:v{version}:{gobase64.encode(signature)}", "key_version": version}

        return [_item(functools.partial(one, item)) for item in items]

    def verify(
        self,
        caller: Caller,
        name: str,
        hmac_algorithm: str,
        options: SignOptions,
        items: list[CryptoItem],
        *,
        batch: bool,
    ) -> list[ItemResult]:
        """Signatures or HMACs (one kind per request, as Vault): ``{"valid": …}`` per item."""
        signatures = [i.signature is not None for i in items]
        hmacs = [i.signature is None and i.hmac is not None for i in items]
        found_sig, found_hmac = any(signatures), any(hmacs)
        missing = not all(a or b for a, b in zip(signatures, hmacs, strict=True))
        if not batch and found_sig and items[0].hmac is not None:
            raise InvalidInput("provide one of 'signature' or 'hmac'")
        if not batch and not found_sig and not found_hmac:
            raise InvalidInput("neither a 'signature' nor an 'hmac' were given to verify")
        if found_sig and found_hmac:
            raise InvalidInput("elements of batch_input must all provide 'signature' or all provide 'hmac'")
        if missing and found_sig:
            raise InvalidInput("some elements of batch_input are missing 'signature'")
        if missing and found_hmac:
            raise InvalidInput("some elements of batch_input are missing 'hmac'")
        if missing:
            raise InvalidInput("no batch_input elements have 'signature' or 'hmac'")
        if found_hmac:
            return self._verify_hmacs(caller, name, hmac_algorithm, items)
        if options.hash_algorithm not in primitives.HASH_ALGORITHMS:
            raise InvalidInput(f'invalid hash algorithm "{options.hash_algorithm}"')
        ring = self._key_for_use(caller, name, "signature verification key not found")
        if not ring.kind.signs:
            raise InvalidInput(f"key type {ring.key_type} does not support verification")
        opts = _sign_options(ring, options)

        def one(item: CryptoItem) -> dict[str, object]:
            data = _decode_input(item.input or "")
            assert item.signature is not None
            version, text = _split_vault_string(item.signature, "signature")
            if version > ring.latest_version:
                raise InvalidInput("invalid signature: version is too new")
            if version < ring.min_decryption_version or version not in ring.versions:
                raise InvalidInput("cannot verify signature: version is too old (disallowed by policy)")
            try:
                signature = gobase64.decode(text)
            except gobase64.Base64Error:
                return {"valid": False}
            return {"valid": primitives.verify(ring.key_type, _material(ring, version, item), data, signature, opts)}

        return [_item(functools.partial(one, item)) for item in items]

    def _verify_hmacs(self, caller: Caller, name: str, algorithm: str, items: list[CryptoItem]) -> list[ItemResult]:
        ring = self._key_for_use(caller, name, "encryption key not found")
        if algorithm not in primitives.HASH_ALGORITHMS:
            raise InvalidInput(f"unsupported algorithm {algorithm}")

        def one(item: CryptoItem) -> dict[str, object]:
            data = _decode_input(item.input or "")
            assert item.hmac is not None
            if not item.hmac.startswith("vault:v"):
                raise InvalidInput("invalid HMAC to verify: no prefix")
            version, text = _split_vault_string(item.hmac, "HMAC")
            try:
                mac = gobase64.decode(text)
            except gobase64.Base64Error as exc:
                raise InvalidInput(f"unable to decode verification HMAC as base64: {exc}") from None
            if version > ring.latest_version:
                raise InvalidInput("invalid HMAC: version is too new")
            if version < ring.min_decryption_version or version not in ring.versions:
                raise InvalidInput("cannot verify HMAC: version is too old (disallowed by policy)")
            expected = primitives.hmac(ring.versions[version].hmac_key, algorithm, data)
            return {"valid": primitives.constant_time_equal(mac, expected)}

        return [_item(functools.partial(one, item)) for item in items]

    # --- no key -------------------------------------------------------------------------------------

    def random(self, caller: Caller, count: int, output: str) -> str:
        self._policy.enforce("secrets:get", caller, operation="Secret(s) retrieval")
        if count < 1:
            raise InvalidInput('"bytes" cannot be less than 1')
        if count >= MAX_RANDOM_BYTES:
            raise InvalidInput(f"'bytes' should be less than {MAX_RANDOM_BYTES}")
        raw = secrets.token_bytes(count)
        return _format(raw, output)

    def hash(self, caller: Caller, algorithm: str, data: str, output: str) -> str:
        self._policy.enforce("secrets:get", caller, operation="Secret(s) retrieval")
        if algorithm not in primitives.HASH_ALGORITHMS:
            raise InvalidInput(f"unsupported algorithm {algorithm}")
        if output not in ("hex", "base64"):
            raise InvalidInput(f'unsupported encoding format {output}; must be "hex" or "base64"')
        return _format(primitives.digest(algorithm, _decode(data)), output)


# --- helpers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OpenedRing:
    """A ring as opened from one exact sealed payload of its row: it stands for that payload only."""

    secret_id: str
    version: int
    kek_id: str
    ciphertext: bytes = field(repr=False)
    ring: KeyRing = field(repr=False)

    def opens(self, record: SecretRecord) -> bool:
        """Whether ``record`` holds the very payload this ring was opened from. Every change of a ring stores
        a new ciphertext (a fresh nonce), a KEK rotation re-seals it, a purge clears its KEK: any of them, in
        any process, makes this False. Same KEK, same bound secret and version, same bytes: same plaintext."""
        return (
            record.store is None
            and record.id == self.secret_id
            and record.version == self.version
            and record.kek_id == self.kek_id
            and record.ciphertext == self.ciphertext
        )


def _check_new_key(new: NewKey) -> None:
    kind = primitives.KEY_TYPES.get(new.key_type)
    if kind is None:
        raise InvalidInput(f"unknown key type {new.key_type}")
    if new.exportable or new.allow_plaintext_backup:
        raise InvalidInput("exportable keys are not supported: donjon never exports transit key material")
    if new.convergent_encryption:
        # Convergent encryption makes equal plaintexts visibly equal and rests on a nonce derived from the
        # plaintext; donjon does not offer it (docs/vault-api.md).
        raise InvalidInput(f"convergent encryption not supported for keys of type {new.key_type}")
    if new.derived and (not kind.derivable or new.key_type == "ed25519"):
        raise InvalidInput(f"key derivation not supported for keys of type {new.key_type}")


def _apply_config(ring: KeyRing, config: KeyConfig) -> None:
    """OpenBao's path_keys_config.go, check for check and text for text (the ring is a copy: an error
    leaves the stored one as it was)."""
    changed = False
    if config.min_decryption_version is not None:
        wanted = config.min_decryption_version
        if wanted < 0:
            raise InvalidInput("min decryption version cannot be negative")
        wanted = wanted or 1  # Vault forces 0 to 1 (with a warning donjon does not repeat)
        if wanted != ring.min_decryption_version:
            if wanted > ring.latest_version:
                raise InvalidInput(
                    f"cannot set min decryption version of {wanted}, latest key version is {ring.latest_version}"
                )
            ring.min_decryption_version, changed = wanted, True
    if config.min_encryption_version is not None:
        wanted = config.min_encryption_version
        if wanted < 0:
            raise InvalidInput("min encryption version cannot be negative")
        if wanted != ring.min_encryption_version:
            if wanted > ring.latest_version:
                raise InvalidInput(
                    f"cannot set min encryption version of {wanted}, latest key version is {ring.latest_version}"
                )
            ring.min_encryption_version, changed = wanted, True
    if 0 < ring.min_encryption_version < ring.min_decryption_version:
        raise InvalidInput(
            "cannot set min encryption/decryption values; min encryption version of "
            f"{ring.min_encryption_version} must be greater than or equal to min decryption version of "
            f"{ring.min_decryption_version}"
        )
    if config.deletion_allowed is not None and config.deletion_allowed != ring.deletion_allowed:
        ring.deletion_allowed, changed = config.deletion_allowed, True
    if changed and ring.min_available_version > ring.min_encryption_version:
        raise InvalidInput("min encryption version should not be less than min available version")
    if changed and ring.min_available_version > ring.min_decryption_version:
        raise InvalidInput("min decryption version should not be less then min available version")


def _rotate(ring: KeyRing, now_ns: int) -> None:
    ring.add_version(now_ns)


def _trim(ring: KeyRing, min_available: int) -> None:
    """OpenBao's path_trim.go: the checks in its order, its texts (its typo included)."""
    if min_available < ring.min_available_version:
        raise InvalidInput("minimum available version cannot be decremented")
    if ring.min_encryption_version == 0:
        raise InvalidInput("minimum available version cannot be set when minimum encryption version is not set")
    if min_available > ring.min_encryption_version:
        raise InvalidInput("minimum available version cannot be greater than minmum encryption version")
    if min_available > ring.min_decryption_version:
        raise InvalidInput("minimum available version cannot be greater than minimum decryption version")
    if min_available < 0:
        raise InvalidInput("minimum available version cannot be negative")
    if min_available == 0:
        raise InvalidInput("minimum available version should be positive")
    for number in [n for n in ring.versions if n < min_available]:
        del ring.versions[number]
    ring.min_available_version = min_available


def _item(run: Callable[[], dict[str, object]], on_error: dict[str, object] | None = None) -> ItemResult:
    """One item's result; an InvalidInput becomes the item's error (Vault's batch semantics)."""
    try:
        return ItemResult(run())
    except InvalidInput as exc:
        return ItemResult(dict(on_error or {}), exc.message)


def _decode(text: str) -> bytes:
    try:
        return gobase64.decode(text)
    except gobase64.Base64Error as exc:
        raise InvalidInput(str(exc)) from None


def _decode_input(text: str) -> bytes:
    """``input`` of hmac, sign and verify: Vault prefixes Go's base64 error for these."""
    try:
        return gobase64.decode(text)
    except gobase64.Base64Error as exc:
        raise InvalidInput(f"unable to decode input as base64: {exc}") from None


def _context(ring: KeyRing, item: CryptoItem) -> bytes | None:
    if not ring.derived:
        return None
    if not item.context:
        raise InvalidInput(
            "missing 'context' for key derivation; the key was created using a derived key, which means "
            "additional, per-request information must be included in order to perform operations with the key"
        )
    try:
        return gobase64.decode(item.context)
    except gobase64.Base64Error:
        raise InvalidInput("failed to base64-decode context") from None


def _material(ring: KeyRing, version: int, item: CryptoItem) -> bytes:
    material = ring.version(version).material
    context = _context(ring, item)
    if context is None:
        return material
    return primitives.derive(material, context)


def _associated_data(ring: KeyRing, item: CryptoItem) -> bytes | None:
    if item.associated_data is None:
        return None
    if ring.key_type.startswith("rsa-"):
        raise InvalidInput(f"associated data not supported for key type {ring.key_type}")
    try:
        return gobase64.decode(item.associated_data)
    except gobase64.Base64Error:
        raise InvalidInput("failed to base64-decode associated_data") from None


def _ciphertext(ring: KeyRing, version: int, plaintext: bytes, item: CryptoItem) -> dict[str, object]:
    blob = primitives.encrypt(ring.key_type, _material(ring, version, item), plaintext, _associated_data(ring, item))
    return {"ciphertext": f"vault:v{version}:{gobase64.encode(blob)}", "key_version": version}


def _encrypt_one(ring: KeyRing, item: CryptoItem) -> dict[str, object]:
    if item.plaintext is None:
        raise InvalidInput("missing plaintext to encrypt")
    plaintext = _decode(item.plaintext)
    version = ring.encryption_version(item.key_version)
    return _ciphertext(ring, version, plaintext, item)


def _split_vault_string(value: str, what: str) -> tuple[int, str]:
    """(version, base64 text) of ``vault:v<N>:<base64>``, with Vault's messages for each malformation."""
    if not value.startswith("vault:v"):
        raise InvalidInput(f"invalid {what}: no prefix")
    parts = value[len("vault:v") :].split(":", 1)
    if len(parts) != 2:
        raise InvalidInput(f"invalid {what}: wrong number of fields")
    number = parts[0].removeprefix("+")  # Go's Atoi takes a sign
    if not number.isascii() or not number.isdigit():
        raise InvalidInput(f"invalid {what}: version number could not be decoded")
    return int(number), parts[1]


def _decrypt_one(ring: KeyRing, item: CryptoItem) -> bytes:
    if not item.ciphertext:
        raise InvalidInput("missing ciphertext to decrypt")
    version, text = _split_vault_string(item.ciphertext, "ciphertext")
    # Version 0 is a ciphertext from before versions were numbered: version 1 (keysutil).
    version = version or 1
    ring.check_decryption_version(version)
    try:
        blob = gobase64.decode(text)
    except gobase64.Base64Error:
        raise InvalidInput("invalid ciphertext: could not decode base64") from None
    try:
        return primitives.decrypt(ring.key_type, _material(ring, version, item), blob, _associated_data(ring, item))
    except primitives.InvalidLength:
        raise InvalidInput("invalid ciphertext length") from None
    except DecryptionFailed:
        raise InvalidInput(_OPEN_FAILED[ring.key_type]) from None


# Go's errors for a ciphertext that does not open (Vault passes them on), per key type.
_OPEN_FAILED = {
    "aes256-gcm96": "cipher: message authentication failed",
    "chacha20-poly1305": "chacha20poly1305: message authentication failed",
    **{
        f"rsa-{bits}": "failed to RSA decrypt the ciphertext: crypto/rsa: decryption error"
        for bits in (2048, 3072, 4096)
    },
}


def _sign_options(ring: KeyRing, options: SignOptions) -> primitives.SignOptions:
    if options.hash_algorithm not in primitives.HASH_ALGORITHMS:
        raise InvalidInput(f'invalid hash algorithm "{options.hash_algorithm}"')
    if options.signature_algorithm not in ("pss", "pkcs1v15"):
        raise InvalidInput(f"unsupported signature algorithm {options.signature_algorithm}")
    if options.marshaling_algorithm not in ("asn1", "jws"):
        raise InvalidInput(f'invalid marshaling type "{options.marshaling_algorithm}"')
    if options.prehashed and ring.key_type == "ed25519":
        raise InvalidInput("ed25519 does not support prehashed input")
    return primitives.SignOptions(
        options.hash_algorithm, options.prehashed, options.signature_algorithm, options.marshaling_algorithm
    )


def _format(raw: bytes, output: str) -> str:
    if output == "hex":
        return raw.hex()
    if output == "base64":
        return gobase64.encode(raw)
    raise InvalidInput(f'unsupported encoding format "{output}"; must be "hex" or "base64"')
