"""Random ids in the canonical UUID version 4 form, for the ids made on every request.

``str(uuid.uuid4())`` builds a ``uuid.UUID`` (an int, its checks, its ``__str__``) only to print it: ~2.5 µs,
two or more per request (the request id, each audit event's id, a new secret's id). The same 122 random bits
from ``os.urandom``, with the version and variant bits set as RFC 4122 has them, printed directly: half that.
"""

from __future__ import annotations

import os


def uuid4_text() -> str:
    """A new random UUID (version 4) as ``str(uuid.uuid4())`` prints one: lower-case hex, 8-4-4-4-12."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
