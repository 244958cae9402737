"""Go durations as Vault reads and writes them: ``"1h0m0s"``, ``"90s"``, ``"1.5h"``, or integer seconds."""

from __future__ import annotations

import re
from typing import Any

from donjon.api.vault.errors import bad_request

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
# Vault also takes a bare number of seconds, and "d" for days in TTL fields (parseutil).
_DAYS = re.compile(r"(\d+)d")


def seconds(value: Any) -> int:
    """Whole seconds of a Vault TTL field; 400 ``time: invalid duration "…"`` as Vault when it is not one."""
    if isinstance(value, bool):
        raise bad_request(f'time: invalid duration "{value}"')
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text == "":
        return 0
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    match = _DAYS.fullmatch(text)
    if match is not None:
        return int(match.group(1)) * 86400
    rest, sign = text, 1
    if rest[:1] in "+-":
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    total, pos = 0.0, 0
    while pos < len(rest):
        part = _PART.match(rest, pos)
        if part is None:
            raise bad_request(f'time: invalid duration "{text}"')
        total += float(part.group(1)) * _UNITS[part.group(2)]
        pos = part.end()
    if rest in ("", "0") and text not in ("0",):
        raise bad_request(f'time: invalid duration "{text}"')
    return sign * int(total)


def go_format(total: int) -> str:
    """Seconds as Go prints a ``time.Duration`` (``"3h25m19s"``, ``"0s"``)."""
    if total == 0:
        return "0s"
    sign, total = ("-" if total < 0 else ""), abs(total)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"
