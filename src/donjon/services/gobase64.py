"""Standard base64 decoded as Go's ``base64.StdEncoding.DecodeString`` does, with its error text.

Vault's clients see Go's message for bad input (``illegal base64 data at input byte 3``) and some match on
it; Python's own messages say other things, so the position is computed here as Go reports it: the first
character outside the alphabet, or the start of the quantum that is cut short or wrongly padded.
"""

from __future__ import annotations

import base64
import binascii
import string

_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/")


class Base64Error(ValueError):
    def __init__(self, position: int) -> None:
        super().__init__(f"illegal base64 data at input byte {position}")
        self.position = position


def decode(text: str) -> bytes:
    """``text`` decoded, or Base64Error with the position Go's message gives."""
    if len(text) % 4 == 0 and not text.endswith("==="):
        # What clients send, canonical padded base64, decoded in C. Given whole quanta and no padding past the
        # last one ("AAAA====", which it would take), Python's strict decoder accepts only what Go decodes, to
        # the same bytes. Anything else is walked below, a character at a time, for Go's error position: ~20 us
        # for a 32-byte plaintext, ~100 ms of the event loop for 1 MB.
        try:
            return binascii.a2b_base64(text, strict_mode=True)
        except ValueError:  # binascii.Error, or a character outside ASCII
            pass
    return decode_walking(text)


def decode_walking(text: str) -> bytes:
    """``decode`` without its fast path: Go's checks, one character at a time (tests compare the two)."""
    # Go skips CR and LF anywhere (positions are counted in the original text, as Go does).
    clean: list[str] = []
    positions: list[int] = []
    for i, ch in enumerate(text):
        if ch in "\r\n":
            continue
        if ch not in _ALPHABET and ch != "=":
            raise Base64Error(i)
        clean.append(ch)
        positions.append(i)
    joined = "".join(clean)
    first_pad = joined.find("=")
    if first_pad != -1:
        # Padding only at the end of the last quantum, one or two of them, and nothing after.
        quantum = first_pad - first_pad % 4
        tail = joined[first_pad:]
        bad_tail = tail.strip("=") != "" or len(joined) % 4 != 0 or first_pad % 4 < 2
        if bad_tail or len(joined) - quantum != 4:
            raise Base64Error(positions[first_pad] if tail.strip("=") == "" else positions[quantum])
    elif len(joined) % 4 != 0:
        raise Base64Error(positions[len(joined) - len(joined) % 4] if joined else 0)
    try:
        return base64.b64decode(joined, validate=True)
    except (binascii.Error, ValueError):
        raise Base64Error(0) from None


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
