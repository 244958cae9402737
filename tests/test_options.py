"""Typed plugin options (donjon.options): the errors a mistake gives, where they say it was written, and the
values environment variables spell as strings. Through the model, the settings, and the real ``donjon``
executable as an operator meets them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from donjon.config import Settings
from donjon.errors import ConfigurationError
from donjon.keystores.keyring import open_chain
from donjon.options import Flag, Integer, PluginOptions, Seconds, closest, parse_options
from donjon.services.stores import StoreRegistry
from tests.live_server import DONJON


class Example(PluginOptions):
    token_label: str
    key_label: str = "donjon-root"
    create: Flag = True
    sessions: Integer = Field(8, ge=1, le=1024)
    timeout: Seconds = 10.0
    password: SecretStr | None = None


def error(options: dict[str, object]) -> str:
    with pytest.raises(ConfigurationError) as caught:
        parse_options(Example, options, "example keystore")
    return caught.value.message


def test_an_unknown_key_names_the_closest_valid_one() -> None:
    assert error({"token_label": "t", "tokn_lable": "x"}) == (
        "example keystore: unknown option 'tokn_lable' (did you mean 'token_label'?)"
    )
    assert error({"token_label": "t", "colour": "blue"}) == (
        "example keystore: unknown option 'colour' (the options are create, key_label, password, sessions, "
        "timeout, token_label)"
    )
    assert closest("sesions", ["sessions", "session_ttl"]) == "sessions"
    assert closest("zzz", ["sessions"]) is None


def test_every_mistake_is_reported_at_once() -> None:
    message = error({"sessions": 0, "create": "perhaps", "timeout": 0})
    assert message.startswith("example keystore: ")
    for part in (
        "option 'token_label' is required",
        "option 'sessions' must be 1 or more, not 0",
        "option 'create' must be true or false, not 'perhaps'",
        "option 'timeout' must be more than 0, not 0",
    ):
        assert part in message


def test_strings_from_the_environment_are_read_as_numbers_and_flags() -> None:
    parsed = parse_options(
        Example, {"token_label": 1234, "create": "No", "sessions": "16", "timeout": "2.5"}, "example keystore"
    )
    assert (parsed.token_label, parsed.create, parsed.sessions, parsed.timeout) == ("1234", False, 16, 2.5)
    for word, value in (("true", True), ("1", True), ("yes", True), ("on", True), ("off", False), ("0", False)):
        assert parse_options(Example, {"token_label": "t", "create": word}, "x").create is value


def test_a_flag_is_never_taken_for_a_number() -> None:
    assert "option 'sessions' must be a number, not True" in error({"token_label": "t", "sessions": True})
    assert "option 'timeout' must be a number, not False" in error({"token_label": "t", "timeout": False})


def test_secret_and_free_text_values_are_never_echoed() -> None:
    message = error({"token_label": "t", "password": ["hunter2-hunter2"], "key_label": ["s3cret-label"]})
    assert "hunter2" not in message and "s3cret" not in message
    assert "option 'password'" in message and "option 'key_label' must be a string" in message


# ----------------------------------------------------------------------------------- where it was written


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("DONJON_"):
            monkeypatch.delenv(name)
    return monkeypatch


def settings_from(toml: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Path]:
    config = tmp_path / "donjon.toml"
    config.write_text(toml)
    monkeypatch.setenv("DONJON_CONFIG", str(config))
    monkeypatch.setenv("DONJON_DATA_DIR", str(tmp_path / "data"))
    return Settings(), config


def test_a_typo_in_the_file_names_the_file_and_the_section(
    tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    settings, config = settings_from(
        '[keystore]\ntype = "file"\n[keystore.options]\ncrate = false\n', tmp_path, clean_environment
    )
    with pytest.raises(ConfigurationError) as caught:
        open_chain(settings.keystore_chain())
    assert caught.value.message == (
        f"file keystore: unknown option 'crate' (in {config}, keystore.options; did you mean 'create'?)"
    )


def test_a_typo_in_an_environment_variable_names_the_variable(
    tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    clean_environment.setenv("DONJON_KEYSTORE__OPTIONS__CRATE", "false")
    settings, _ = settings_from('[keystore]\ntype = "file"\n', tmp_path, clean_environment)
    named = r"unknown option 'crate' \(environment variable DONJON_KEYSTORE__OPTIONS__CRATE; did you mean 'create'"
    with pytest.raises(ConfigurationError, match=named):
        open_chain(settings.keystore_chain())
    # A bad value set in the environment overrides the file and is named as such.
    clean_environment.delenv("DONJON_KEYSTORE__OPTIONS__CRATE")
    clean_environment.setenv("DONJON_KEYSTORE__OPTIONS__CREATE", "perhaps")
    settings, _ = settings_from('[keystore]\ntype = "file"\noptions = { create = true }\n', tmp_path, clean_environment)
    with pytest.raises(ConfigurationError) as caught:
        open_chain(settings.keystore_chain())
    assert caught.value.message == (
        "file keystore: option 'create' (environment variable DONJON_KEYSTORE__OPTIONS__CREATE) must be true or "
        "false, not 'perhaps'"
    )


def test_environment_values_configure_a_keystore(tmp_path: Path, clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("DONJON_KEYSTORE__OPTIONS__CREATE", "false")
    settings, _ = settings_from('[keystore]\ntype = "file"\n', tmp_path, clean_environment)
    with pytest.raises(ConfigurationError, match="does not exist"):  # create = "false" was read as false
        open_chain(settings.keystore_chain())


def test_stores_and_previous_keystores_are_named_by_their_section(
    tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    toml = (
        '[[previous_keystores]]\ntype = "file"\noptions = { path = "/nonexistent/old.key", creat = false }\n'
        '[stores.vault-kv]\ntype = "vault"\noptions = { url = "http://127.0.0.1:1", prefx = "x" }\n'
    )
    settings, config = settings_from(toml, tmp_path, clean_environment)
    with pytest.raises(ConfigurationError) as caught:
        open_chain(settings.keystore_chain())
    assert f"unknown option 'creat' (in {config}, previous_keystores[0].options; did you mean 'create'?)" in str(
        caught.value
    )
    with pytest.raises(ConfigurationError) as caught:
        StoreRegistry.open(settings.configured_stores(), settings.default_store)
    assert caught.value.message == (
        f"vault secret store: unknown option 'prefx' (in {config}, stores.vault-kv.options; did you mean 'prefix'?)"
    )


# ----------------------------------------------------------------------------------- the donjon executable


def donjon_server(config: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    return subprocess.run(
        [DONJON, "server", "--config", str(config), "--data-dir", str(tmp_path / "data"), "--port", "1"],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_donjon_server_stops_on_a_typo_in_the_keystore_section(tmp_path: Path) -> None:
    config = tmp_path / "donjon.toml"
    config.write_text('[keystore]\ntype = "file"\n[keystore.options]\npaht = "/etc/donjon/root.key"\n')
    done = donjon_server(config, tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: file keystore: unknown option 'paht' (in {config}, keystore.options; did you mean 'path'?)"
    )


def test_donjon_server_stops_on_a_typo_in_a_store_section_before_any_worker(tmp_path: Path) -> None:
    config = tmp_path / "donjon.toml"
    config.write_text('[stores.hsm]\ntype = "kmip"\noptions = { host = "kmip.example", prot = 5696 }\n')
    done = donjon_server(config, tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(
        f"Error: kmip secret store: unknown option 'prot' (in {config}, stores.hsm.options; did you mean 'port'?); "
        "option 'certfile' is required; "
    )


def test_donjon_server_names_the_environment_variable_of_a_typo(tmp_path: Path) -> None:
    config = tmp_path / "donjon.toml"
    config.write_text("")
    done = donjon_server(config, tmp_path, DONJON_KEYSTORE__OPTIONS__SESIONS="4")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: file keystore: unknown option 'sesions' (environment variable DONJON_KEYSTORE__OPTIONS__SESIONS; "
        "the options are create, path)"
    )
