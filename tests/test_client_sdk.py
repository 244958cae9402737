"""The SDK's own surface: importable without the server, immutable objects that never show their bytes,
configuration errors, the public names."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import donjon.client
from donjon.client import (
    BACKENDS,
    Certificate,
    ConfigError,
    OpaqueData,
    Passphrase,
    PrivateKey,
    SymmetricKey,
    open_key_manager,
)
from donjon.client._errors import BackendError, ClientError, Conflict, Forbidden, InvalidRequest, NotFound, for_status

SERVER_ONLY = ("starlette", "sqlalchemy", "uvicorn", "oslo_policy", "alembic", "pydantic_settings")

BLOCKER = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SERVER_ONLY!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import donjon.client
from donjon.client import open_key_manager, SymmetricKey
# (not _kmip: PyKMIP itself imports SQLAlchemy, for its server's models)
from donjon.client import _donjon, _vault, _pkcs11, _generate
import donjon.cli.client_commands, donjon.cli.client_import, donjon.client.castellan_driver
km = open_key_manager({{"type": "donjon", "url": "http://127.0.0.1:1", "project_id": "p"}})
km.close()
# The shared Vault driver and typed options, and the orders' key generator, need none of the server either.
open_key_manager({{"type": "vault", "url": "http://127.0.0.1:1", "token": "t"}}).close()
assert len(_generate.symmetric_key("aes", 512, "xts")) == 64 and _generate.key_pair("ec", 256)
print("ok", sorted(m for m in sys.modules if m.split(".")[0] in {SERVER_ONLY!r}))
"""


def test_importable_without_the_server_dependencies() -> None:
    result = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok []"


def test_all_is_sorted_and_complete() -> None:
    # Submodules (castellan_driver, once imported) are attributes too, but not part of the API.
    public = {n for n, v in vars(donjon.client).items() if not n.startswith("_") and not isinstance(v, ModuleType)}
    assert sorted(donjon.client.__all__, key=str.casefold) == sorted(public, key=str.casefold)


@pytest.mark.parametrize(
    "obj",
    [
        SymmetricKey(data=b"\x01" * 32, algorithm="aes"),
        PrivateKey(data=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Passphrase(data=b"hunter2-hunter2"),
        OpaqueData(data=b"opaque-bytes-here"),
        Certificate(data=b"certificate-bytes"),
    ],
    ids=lambda o: type(o).__name__,
)
def test_objects_are_immutable_and_never_show_their_bytes(obj: donjon.client.ManagedObject) -> None:
    for text in (repr(obj), str(obj), f"{obj}", repr([obj])):
        assert obj.data.decode("latin-1") not in text
        assert obj.data.hex() not in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.data = b"other"  # type: ignore[misc]
    assert obj == dataclasses.replace(obj)
    assert len(obj.fingerprint) == 16


def test_objects_validate_their_input() -> None:
    with pytest.raises(TypeError):
        OpaqueData(data="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Passphrase(data=b"")
    with pytest.raises(ValueError):
        SymmetricKey(data=b"k", bit_length=0)
    assert SymmetricKey(data=b"k" * 24).bit_length == 192


@pytest.mark.parametrize(
    "config, match",
    [
        ({}, "needs a 'type'"),
        ({"type": "nope"}, "unknown key manager type"),
        ({"type": "donjon"}, "'url' is required"),
        ({"type": "donjon", "url": "ftp://x"}, "not an http"),
        ({"type": "donjon", "url": "http://x", "bogus": 1}, r"unknown option 'bogus' \(the options are"),
        (
            {"type": "donjon", "url": "http://x", "projet_id": "p"},
            r"unknown option 'projet_id' \(did you mean 'project_id'",
        ),
        ({"type": "donjon", "url": "http://x", "project_id": "p", "token": "t"}, "choose one"),
        ({"type": "donjon", "options": {"url": "http://x"}, "url": "y"}, "nothing else"),
        ({"type": "vault", "url": "http://127.0.0.1:1"}, "token"),
        (
            {"type": "vault", "url": "http://127.0.0.1:1", "token": "t", "transit_mnt": "x"},
            r"did you mean 'transit_mount'",
        ),
        ({"type": "kmip", "host": "h", "certfile": "c", "keyfile": "k", "ca_certs": "a", "pool": 2}, r"'pool_size'"),
        ({"type": "pkcs11", "library": "l", "token_label": "t", "pin_fiel": "p"}, r"did you mean 'pin_file'"),
        ({"type": "pkcs11", "library": "l", "token_label": "t", "sessions": "many"}, "'sessions' must be a whole"),
        ({"type": "pkcs11"}, "required"),
    ],
)
def test_configuration_errors(config: dict[str, object], match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("VAULT_TOKEN", "BAO_TOKEN", "VAULT_ADDR"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match=match):
        open_key_manager(config)


def test_every_backend_is_registered() -> None:
    assert set(BACKENDS) == {"donjon", "barbican", "vault", "kmip", "pkcs11"}


def test_status_table() -> None:
    assert for_status(404) is NotFound and for_status(403) is Forbidden and for_status(409) is Conflict
    assert for_status(400) is InvalidRequest and for_status(413) is InvalidRequest
    assert for_status(500) is BackendError and for_status(503) is BackendError
    assert all(issubclass(for_status(s), ClientError) for s in range(400, 600))


def test_an_unreachable_server_is_a_backend_error() -> None:
    from tests.live_server import free_port

    with open_key_manager({"type": "donjon", "url": f"http://127.0.0.1:{free_port()}", "project_id": "p"}) as km:
        with pytest.raises(BackendError, match="cannot reach"):
            km.get("x")


def test_token_is_not_in_the_repr() -> None:
    with open_key_manager({"type": "donjon", "url": "http://127.0.0.1:1", "token": "tok-very-secret"}) as km:
        assert "tok-very-secret" not in repr(km) and "tok-very-secret" not in repr(km.api._http.auth)  # type: ignore[attr-defined]


def test_the_vault_backend_reads_its_token_file_as_the_server_does(tmp_path: Path) -> None:
    # One Vault driver for the SDK and the server: a token file others may read is refused by both.
    token_file = tmp_path / "token"
    token_file.write_text("s.sdk-token\n")
    token_file.chmod(0o600)
    config = {"type": "vault", "url": "http://127.0.0.1:1", "token_file": str(token_file)}
    open_key_manager(config).close()
    token_file.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others") as caught:
        open_key_manager(config)
    assert "s.sdk-token" not in str(caught.value)
