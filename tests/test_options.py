"""Typed plugin options (donjon.options): the errors a mistake gives, and the values environment variables spell
as strings."""

from __future__ import annotations

import pytest
from pydantic import Field, SecretStr

from donjon.errors import ConfigurationError
from donjon.options import Flag, Integer, PluginOptions, Seconds, closest, parse_options


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
