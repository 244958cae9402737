"""One conformance suite for every external secret store: ``exercise_store`` passes on each, unchanged."""

from __future__ import annotations

import datetime
import os
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from donjon.stores import PayloadInfo, PayloadMissing, SecretStore, StoredPayload


def samples() -> list[tuple[str, str | None, bytes]]:
    """(secret_type, algorithm, payload) for every kind of payload a client stores."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pkcs8, nothing = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    pem, der = serialization.Encoding.PEM, serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "donjon store test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ec_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ec_key, hashes.SHA256())
    )
    return [
        ("symmetric", "aes", os.urandom(32)),
        ("symmetric", "hmacsha256", os.urandom(64)),
        ("symmetric", "camellia", os.urandom(16)),  # an algorithm no store types: kept opaque, byte-exact
        ("private", "rsa", rsa_key.private_bytes(pem, pkcs8, nothing)),
        ("private", "ec", ec_key.private_bytes(der, pkcs8, nothing)),
        ("private", "rsa", rsa_key.private_bytes(pem, pkcs8, serialization.BestAvailableEncryption(b"pw"))),
        ("private", "rsa", rsa_key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, nothing)),
        ("public", "rsa", rsa_key.public_key().public_bytes(pem, spki)),
        ("public", "ec", ec_key.public_key().public_bytes(der, spki)),
        ("certificate", None, cert.public_bytes(pem)),
        ("certificate", None, cert.public_bytes(der)),
        ("passphrase", None, b"correct horse battery staple"),
        ("opaque", None, bytes(range(256))),
        ("private", None, b"not a key at all"),
    ]


def exercise_store(store: SecretStore) -> list[tuple[PayloadInfo, StoredPayload]]:
    """Check the contract; returns what it stored (and deleted) for backend-specific checks."""
    project = f"project-{uuid.uuid4()}"
    stored: list[tuple[PayloadInfo, StoredPayload, bytes]] = []
    for secret_type, algorithm, payload in samples():
        info = PayloadInfo(str(uuid.uuid4()), project, secret_type, algorithm, len(payload) * 8)
        ref = store.put(info, payload)
        # An external store's row keeps a reference only, never the payload.
        assert isinstance(ref.ref, str) and ref.ref and (ref.kek_id, ref.ciphertext) == (None, None)
        assert payload.hex() not in ref.ref
        stored.append((info, ref, payload))

    for info, ref, payload in stored:
        assert store.get(info, ref) == payload, f"{info.secret_type}/{info.algorithm} is not byte-exact"

    # A reference is bound to its secret: another secret (or the same id in another project) cannot use it.
    info, ref, _ = stored[0]
    for other in (
        PayloadInfo(str(uuid.uuid4()), info.project_id, info.secret_type, info.algorithm),
        PayloadInfo(info.secret_id, f"project-{uuid.uuid4()}", info.secret_type, info.algorithm),
    ):
        with pytest.raises(PayloadMissing):
            store.get(other, ref)
        with pytest.raises(PayloadMissing):
            store.delete(other, ref)
    assert store.get(info, ref) == stored[0][2], "a refused delete must not delete"

    for info, ref, _ in stored:
        store.delete(info, ref)
        with pytest.raises(PayloadMissing):
            store.get(info, ref)
        store.delete(info, ref)  # deleting what is gone is fine

    assert all(p.hex() not in repr(store) for _, _, p in stored)
    return [(info, ref) for info, ref, _ in stored]
