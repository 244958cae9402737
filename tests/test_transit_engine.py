"""The transit engine as a service (no HTTP): Vault's semantics and texts, the ring stored as a sealed secret.

Runs on each configured database (the ring is a row of ``secrets``; updates are compare-and-set swaps).
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from donjon.auth import Caller
from donjon.config import Settings
from donjon.errors import Forbidden, InvalidInput, NotFound
from donjon.keystores import open_keystore
from donjon.policy import Policy
from donjon.services.gobase64 import Base64Error, decode_walking
from donjon.services.gobase64 import decode as go_b64decode
from donjon.services.project_keys import ProjectKeys
from donjon.services.quotas import Quotas
from donjon.services.secrets import SecretQuery, SecretService
from donjon.services.transit import CryptoItem, KeyConfig, NewKey, SignOptions, TransitService
from donjon.services.transit_ring import KeyRing
from donjon.storage.database import Database
from donjon.storage.tables import secrets


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.effective_database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def keys(settings: Settings, db: Database) -> ProjectKeys:
    return ProjectKeys(db, open_keystore(settings.keystore.type, settings.keystore_options()), 60)


@pytest.fixture(scope="module")
def transit(settings: Settings, db: Database, keys: ProjectKeys) -> TransitService:
    return TransitService(db, keys, Policy(), Quotas(settings.quotas))


@pytest.fixture
def caller() -> Caller:
    return Caller(project_id=f"p-{uuid.uuid4()}", user_id="u1", roles=("admin",))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def enc(t: TransitService, c: Caller, name: str, plaintext: bytes, **kw: object) -> str:
    [result] = t.encrypt(c, name, [CryptoItem(plaintext=b64(plaintext), **kw)], NewKey())  # type: ignore[arg-type]
    if result.error is not None:
        raise InvalidInput(result.error)
    return str(result.values["ciphertext"])


def dec(t: TransitService, c: Caller, name: str, ciphertext: str, **kw: object) -> bytes:
    [result] = t.decrypt(c, name, [CryptoItem(ciphertext=ciphertext, **kw)])  # type: ignore[arg-type]
    if result.error is not None:
        raise InvalidInput(result.error)
    return base64.b64decode(str(result.values["plaintext"]))


def test_aes_key_info_has_vaults_shape(transit: TransitService, caller: Caller) -> None:
    info = transit.create_key(caller, "app", NewKey())
    assert set(info) == {
        "allow_plaintext_backup", "auto_rotate_period", "deletion_allowed", "derived", "exportable",
        "imported_key", "keys", "latest_version", "min_available_version", "min_decryption_version",
        "min_encryption_version", "name", "soft_deleted", "supports_decryption", "supports_derivation",
        "supports_encryption", "supports_signing", "type",
    }  # fmt: skip
    assert info["type"] == "aes256-gcm96" and info["name"] == "app" and info["latest_version"] == 1
    assert info["exportable"] is False and info["supports_signing"] is False and info["supports_encryption"] is True
    keys = info["keys"]
    assert isinstance(keys, dict) and list(keys) == ["1"] and isinstance(keys["1"], int)
    # Creating it again is a no-op that answers the same key.
    assert transit.create_key(caller, "app", NewKey()) == info
    assert transit.read_key(caller, "app") == info
    assert transit.list_keys(caller) == ["app"]


@pytest.mark.parametrize("key_type", ["aes256-gcm96", "chacha20-poly1305", "rsa-2048"])
def test_encrypt_decrypt_round_trip_per_type(transit: TransitService, caller: Caller, key_type: str) -> None:
    transit.create_key(caller, "k", NewKey(key_type=key_type))
    ciphertext = enc(transit, caller, "k", b"hello world")
    assert ciphertext.startswith("vault:v1:")
    assert dec(transit, caller, "k", ciphertext) == b"hello world"
    assert enc(transit, caller, "k", b"hello world") != ciphertext  # a fresh nonce (or OAEP seed) each time


@pytest.mark.parametrize(
    ("key_type", "public_name"),
    [("ed25519", "ed25519"), ("ecdsa-p256", "P-256"), ("ecdsa-p384", "P-384"), ("rsa-2048", "rsa-2048")],
)
def test_sign_verify_per_type(transit: TransitService, caller: Caller, key_type: str, public_name: str) -> None:
    info = transit.create_key(caller, "s", NewKey(key_type=key_type))
    entry = info["keys"]["1"]  # type: ignore[index]
    assert entry["name"] == public_name and entry["certificate_chain"] == ""
    assert entry["public_key"].startswith("-----BEGIN PUBLIC KEY-----") != (key_type == "ed25519")
    [signed] = transit.sign(caller, "s", SignOptions(), 0, [CryptoItem(input=b64(b"msg"))])
    signature = str(signed.values["signature"])
    assert signature.startswith("vault:v1:") and signed.values["key_version"] == 1
    good, bad = transit.verify(
        caller,
        "s",
        "sha2-256",
        SignOptions(),
        [CryptoItem(input=b64(b"msg"), signature=signature), CryptoItem(input=b64(b"other"), signature=signature)],
        batch=True,
    )
    assert good.values == {"valid": True} and bad.values == {"valid": False}


def test_ed25519_signature_checks_with_the_published_public_key(transit: TransitService, caller: Caller) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    info = transit.create_key(caller, "ed", NewKey(key_type="ed25519"))
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(info["keys"]["1"]["public_key"]))  # type: ignore[index]
    [signed] = transit.sign(caller, "ed", SignOptions(), 0, [CryptoItem(input=b64(b"msg"))])
    public.verify(base64.b64decode(str(signed.values["signature"]).split(":")[2]), b"msg")  # raises if wrong


def test_rotation_versions_and_minimums(transit: TransitService, caller: Caller) -> None:
    transit.create_key(caller, "r", NewKey())
    v1 = enc(transit, caller, "r", b"one")
    info = transit.rotate(caller, "r")
    assert info["latest_version"] == 2 and list(info["keys"]) == ["1", "2"]  # type: ignore[call-overload]
    v2 = enc(transit, caller, "r", b"two")
    assert v2.startswith("vault:v2:")
    assert enc(transit, caller, "r", b"one", key_version=1).startswith("vault:v1:")
    assert dec(transit, caller, "r", v1) == b"one"
    [rewrapped] = transit.rewrap(caller, "r", [CryptoItem(ciphertext=v1)])
    assert str(rewrapped.values["ciphertext"]).startswith("vault:v2:") and rewrapped.values["key_version"] == 2
    assert dec(transit, caller, "r", str(rewrapped.values["ciphertext"])) == b"one"

    transit.configure(caller, "r", KeyConfig(min_decryption_version=2))
    with pytest.raises(InvalidInput, match=r"^invalid ciphertext: version is disallowed by policy \(too old\)$"):
        dec(transit, caller, "r", v1)
    with pytest.raises(InvalidInput, match="^cannot set min decryption version of 5, latest key version is 2$"):
        transit.configure(caller, "r", KeyConfig(min_decryption_version=5))
    with pytest.raises(InvalidInput, match="^requested version for encryption is higher than the latest"):
        enc(transit, caller, "r", b"x", key_version=3)

    with pytest.raises(InvalidInput, match="^minimum available version cannot be set when minimum encryption"):
        transit.trim(caller, "r", 2)
    transit.configure(caller, "r", KeyConfig(min_encryption_version=2))
    info = transit.trim(caller, "r", 2)
    assert list(info["keys"]) == ["2"] and info["min_available_version"] == 2  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match="^minimum available version cannot be greater than minmum encryption"):
        transit.trim(caller, "r", 3)
    with pytest.raises(InvalidInput, match="^minimum available version cannot be decremented$"):
        transit.trim(caller, "r", 1)
    assert dec(transit, caller, "r", v2) == b"two"


def test_vaults_error_texts(transit: TransitService, caller: Caller) -> None:
    transit.create_key(caller, "app", NewKey())
    transit.create_key(caller, "signer", NewKey(key_type="ed25519"))
    cases = [
        (lambda: transit.create_key(caller, "bad", NewKey(key_type="nope")), "unknown key type nope"),
        (lambda: dec(transit, caller, "nosuch", "vault:v1:AAAA"), "encryption key not found"),
        (lambda: dec(transit, caller, "app", "vault:v1:AAAA"), "invalid ciphertext length"),
        (lambda: dec(transit, caller, "app", "garbage"), "invalid ciphertext: no prefix"),
        (lambda: dec(transit, caller, "app", "vault:v9:" + "A" * 40), "invalid ciphertext: version is too new"),
        (lambda: enc(transit, caller, "signer", b"x"), "message encryption not supported for key type ed25519"),
        (
            lambda: transit.sign(caller, "app", SignOptions(), 0, [CryptoItem(input="eA==")]),
            "key type aes256-gcm96 does not support signing",
        ),
        (lambda: transit.sign(caller, "nosuch", SignOptions(), 0, []), "signing key not found"),
        (lambda: transit.rotate(caller, "nosuch"), "key not found"),
        (
            lambda: transit.configure(caller, "nosuch", KeyConfig(deletion_allowed=True)),
            "no existing key named nosuch could be found",
        ),
        (
            lambda: transit.delete_key(caller, "app"),
            "error deleting policy app: deletion is not allowed for this key",
        ),
        (
            lambda: transit.delete_key(caller, "nosuch"),
            "error deleting policy nosuch: could not delete key; not found",
        ),
        (
            lambda: transit.datakey(caller, "app", "other", 256, CryptoItem()),
            "Invalid path, must be 'plaintext' or 'wrapped'",
        ),
        (lambda: transit.random(caller, 999999, "base64"), "'bytes' should be less than 131072"),
        (lambda: transit.create_key(caller, "c", NewKey(convergent_encryption=True, derived=True)), "convergent"),
    ]
    for run, message in cases:
        with pytest.raises(InvalidInput) as raised:
            run()
        assert message in raised.value.message
    with pytest.raises(NotFound):
        transit.read_key(caller, "nosuch")


def test_batch_items_fail_alone_with_their_reference(transit: TransitService, caller: Caller) -> None:
    results = transit.encrypt(
        caller,
        "auto",  # encrypting with an unknown name creates an aes256-gcm96 key (Vault's upsert)
        [CryptoItem(plaintext="YQ=="), CryptoItem(plaintext="%%%"), CryptoItem(plaintext="Yw==", reference="ref-c")],
        NewKey(),
    )
    assert results[1].error == "illegal base64 data at input byte 0" and results[1].values == {}
    assert results[0].error is None and results[2].error is None
    assert transit.read_key(caller, "auto")["type"] == "aes256-gcm96"
    decrypted = transit.decrypt(caller, "auto", [CryptoItem(ciphertext="vault:v1:AAAA"), CryptoItem(ciphertext="bad")])
    assert [(r.values, r.error) for r in decrypted] == [
        ({"plaintext": ""}, "invalid ciphertext length"),
        ({"plaintext": ""}, "invalid ciphertext: no prefix"),
    ]


def test_tampered_ciphertext_and_associated_data(transit: TransitService, caller: Caller) -> None:
    transit.create_key(caller, "t", NewKey())
    ciphertext = enc(transit, caller, "t", b"payload", associated_data=b64(b"ctx"))
    assert dec(transit, caller, "t", ciphertext, associated_data=b64(b"ctx")) == b"payload"
    with pytest.raises(InvalidInput, match="^cipher: message authentication failed$"):
        dec(transit, caller, "t", ciphertext, associated_data=b64(b"other"))
    raw = bytearray(base64.b64decode(ciphertext.split(":")[2]))
    raw[-1] ^= 1
    with pytest.raises(InvalidInput, match="^cipher: message authentication failed$"):
        dec(transit, caller, "t", "vault:v1:" + b64(bytes(raw)), associated_data=b64(b"ctx"))


def test_derived_keys_need_the_context(transit: TransitService, caller: Caller) -> None:
    info = transit.create_key(caller, "d", NewKey(derived=True))
    assert info["derived"] is True and info["kdf"] == "hkdf_sha256"
    assert list(info) == sorted(info)  # in Go's map order, "convergent_encryption" and "kdf" included
    ciphertext = enc(transit, caller, "d", b"x", context=b64(b"tenant-1"))
    assert dec(transit, caller, "d", ciphertext, context=b64(b"tenant-1")) == b"x"
    with pytest.raises(InvalidInput, match="^cipher: message authentication failed$"):
        dec(transit, caller, "d", ciphertext, context=b64(b"tenant-2"))
    with pytest.raises(InvalidInput, match="^missing 'context' for key derivation"):
        enc(transit, caller, "d", b"x")


def test_datakey_hmac_random_hash(transit: TransitService, caller: Caller) -> None:
    transit.create_key(caller, "h", NewKey())
    plain = transit.datakey(caller, "h", "plaintext", 512, CryptoItem())
    key = base64.b64decode(str(plain["plaintext"]))
    assert len(key) == 64 and dec(transit, caller, "h", str(plain["ciphertext"])) == key
    assert set(transit.datakey(caller, "h", "wrapped", 128, CryptoItem())) == {"ciphertext", "key_version"}

    [mac] = transit.hmac(caller, "h", "sha2-512", 0, [CryptoItem(input="bXNn")])
    assert len(base64.b64decode(str(mac.values["hmac"]).split(":")[2])) == 64
    [mac256] = transit.hmac(caller, "h", "sha2-256", 0, [CryptoItem(input="bXNn")])
    ok, wrong = transit.verify(
        caller,
        "h",
        "sha2-256",
        SignOptions(),
        [
            CryptoItem(input="bXNn", hmac=str(mac256.values["hmac"])),
            CryptoItem(input="eA==", hmac=str(mac256.values["hmac"])),
        ],
        batch=True,
    )
    assert ok.values == {"valid": True} and wrong.values == {"valid": False}

    assert len(transit.random(caller, 16, "hex")) == 32
    assert len(base64.b64decode(transit.random(caller, 32, "base64"))) == 32
    assert transit.hash(caller, "sha2-256", "bXNn", "hex") == (
        "e46b320165eec91e6344fa10340d5b3208304d6cad29d0d5aed18466d1d9d80e"  # OpenBao's answer (captured)
    )


def test_keys_are_per_project(transit: TransitService, caller: Caller) -> None:
    transit.create_key(caller, "mine", NewKey())
    ciphertext = enc(transit, caller, "mine", b"x")
    other = Caller(project_id=f"p-{uuid.uuid4()}", user_id="u2", roles=("admin",))
    with pytest.raises(NotFound):
        transit.read_key(other, "mine")
    with pytest.raises(InvalidInput, match="^encryption key not found$"):
        dec(transit, other, "mine", ciphertext)
    assert transit.list_keys(other) == []
    reader = Caller(project_id=caller.project_id, user_id="u3", roles=("reader",))
    with pytest.raises(Forbidden):
        enc(transit, reader, "mine", b"x")


def test_ring_is_a_sealed_opaque_secret_never_served_by_barbican(
    settings: Settings, db: Database, keys: ProjectKeys, transit: TransitService, caller: Caller
) -> None:
    transit.create_key(caller, "sealed", NewKey(key_type="ed25519"))
    with db.read() as conn:
        row = conn.execute(select(secrets).where(secrets.c.project_id == caller.project_id)).one()
    assert (row.name, row.secret_type, row.algorithm, row.mode) == (
        "transit/sealed",
        "opaque",
        "vault-transit",
        "ed25519",
    )
    assert b"donjon-transit-ring" not in row.ciphertext and row.kek_id is not None  # sealed, not plain JSON
    service = SecretService(db, keys, Policy(), Quotas(settings.quotas), max_secret_bytes=20000)
    views, total = service.list_secrets(
        caller, SecretQuery(project_id=caller.project_id, now=row.created_at), with_consumers=False
    )
    assert total == 1 and views[0].secret.id == row.id  # Barbican lists show it
    with pytest.raises(Forbidden, match="never exported"):
        service.get_payload(caller, row.id, "application/octet-stream")


def test_key_material_stays_out_of_reprs_and_errors(transit: TransitService, caller: Caller) -> None:
    transit.create_key(caller, "quiet", NewKey())
    ring = KeyRing(name="x", key_type="aes256-gcm96")
    ring.add_version(0)
    material = ring.versions[1].material
    assert material.hex() not in repr(ring) and repr(material) not in repr(ring)
    assert repr(material) not in repr(ring.versions[1])
    # The plaintext of an item is not in its repr either.
    assert "c2VjcmV0" not in repr(CryptoItem(plaintext="c2VjcmV0"))


def test_deletion_when_allowed(transit: TransitService, caller: Caller) -> None:
    transit.create_key(caller, "gone", NewKey())
    transit.configure(caller, "gone", KeyConfig(deletion_allowed=True))
    transit.delete_key(caller, "gone")
    with pytest.raises(NotFound):
        transit.read_key(caller, "gone")
    assert transit.list_keys(caller) == []


def test_go_base64_positions() -> None:
    assert go_b64decode("aGVsbG8gd29ybGQ=") == b"hello world"
    for text, position in [("not base64!!", 3), ("%%%", 0), ("YQ", 0)]:
        with pytest.raises(ValueError, match=f"^illegal base64 data at input byte {position}$"):
            go_b64decode(text)


def _outcome(decode: Callable[[str], bytes], text: str) -> bytes | int:
    try:
        return decode(text)
    except Base64Error as exc:
        return exc.position


def test_go_base64_fast_path_decides_as_the_walk() -> None:
    """Every string of up to 6 characters over a small alphabet (padding, CR/LF, a stranger, a non-ASCII
    letter), and long random ones: the C fast path gives the walk's bytes or its error position. Python's
    strict decoder alone takes "AAAA=" and "AAAA====", which Go refuses."""
    alphabet = "AB+=\n%é"
    texts = ["".join(chars) for length in range(7) for chars in itertools.product(alphabet, repeat=length)]
    rng = random.Random(16)
    texts += ["".join(rng.choices("ABCxyz019+/=\n", k=rng.randrange(40))) for _ in range(20_000)]
    texts += [base64.b64encode(os.urandom(n)).decode() for n in range(64)]
    mismatches = [t for t in texts if _outcome(go_b64decode, t) != _outcome(decode_walking, t)]
    assert mismatches == []
    assert _outcome(go_b64decode, "AAAA====") == 4 and _outcome(go_b64decode, "AAAA=") == 4


def test_rings_reseal_with_a_kek_rotation(settings: Settings, db: Database, caller: Caller) -> None:
    """``rotate-kek`` re-seals a ring like every payload; the key's versions and ciphertexts live on."""
    from donjon.services.rotation import KekRotation

    keystore = open_keystore(settings.keystore.type, settings.keystore_options())
    service = TransitService(db, ProjectKeys(db, keystore, 60), Policy(), Quotas(settings.quotas))
    service.create_key(caller, "kept", NewKey())
    ciphertext = enc(service, caller, "kept", b"before")
    with db.read() as conn:
        before = conn.execute(select(secrets.c.kek_id).where(secrets.c.project_id == caller.project_id)).scalar_one()
    report = KekRotation(db, keystore).rotate(caller.project_id, settle_seconds=0, sleep=lambda _: None)
    with db.read() as conn:
        after = conn.execute(select(secrets.c.kek_id).where(secrets.c.project_id == caller.project_id)).scalar_one()
    assert report.new_kek_id == after != before
    fresh = TransitService(db, ProjectKeys(db, keystore, 60), Policy(), Quotas(settings.quotas))  # no cached KEK
    assert dec(fresh, caller, "kept", ciphertext) == b"before"
    fresh.rotate(caller, "kept")  # and the ring can still change afterwards
    assert dec(fresh, caller, "kept", enc(fresh, caller, "kept", b"after")) == b"after"


def test_rings_stay_in_the_database_store(db: Database, transit: TransitService, caller: Caller) -> None:
    """``migrate-store`` moves payloads to an external store; a ring is opened on every use and stays."""
    from donjon.storage import store_moves

    transit.create_key(caller, "stays", NewKey())
    with db.read() as conn:
        assert store_moves.secrets_in_store(conn, None, caller.project_id, after="", limit=10) == []
        assert store_moves.count_in_store(conn, None, caller.project_id) == 0


@pytest.mark.parametrize(
    ("key_type", "message"),
    [
        ("aes256-gcm96", "cipher: message authentication failed"),
        ("chacha20-poly1305", "chacha20poly1305: message authentication failed"),
        ("rsa-2048", "failed to RSA decrypt the ciphertext: crypto/rsa: decryption error"),
    ],
)
def test_a_ciphertext_that_does_not_open_gets_gos_text(
    transit: TransitService, caller: Caller, key_type: str, message: str
) -> None:
    transit.create_key(caller, "k", NewKey(key_type=key_type))
    # Long enough to hold a nonce (shorter is "invalid ciphertext length"), but not a valid ciphertext.
    with pytest.raises(InvalidInput) as raised:
        dec(transit, caller, "k", "vault:v1:" + b64(bytes(20)))
    assert raised.value.message == message


def test_concurrent_creates_make_one_key_and_concurrent_rotations_all_land(
    db: Database, transit: TransitService, caller: Caller
) -> None:
    """Creation holds the project's lock; a ring change is a compare-and-set that re-reads when it loses."""
    import threading

    errors: list[BaseException] = []

    def run_all(work: list[Callable[[], object]]) -> None:
        barrier = threading.Barrier(len(work))

        def one(job: Callable[[], object]) -> None:
            try:
                barrier.wait()
                job()
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(job,)) for job in work]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    run_all([lambda: transit.create_key(caller, "race", NewKey()) for _ in range(4)])
    assert not errors
    with db.read() as conn:
        rows = conn.execute(select(secrets.c.id).where(secrets.c.project_id == caller.project_id)).all()
    assert len(rows) == 1
    run_all([lambda: transit.rotate(caller, "race") for _ in range(4)])
    assert not errors
    info = transit.read_key(caller, "race")
    assert info["latest_version"] == 5 and list(info["keys"]) == ["1", "2", "3", "4", "5"]  # type: ignore[call-overload]
