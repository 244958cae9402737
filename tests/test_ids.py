"""The request path's UUID text: what ``str(uuid.uuid4())`` would print, made without a ``uuid.UUID``."""

import re
import uuid

from donjon.ids import uuid4_text

CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_ids_are_canonical_version_4_uuids() -> None:
    for _ in range(2000):
        text = uuid4_text()
        assert CANONICAL.fullmatch(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # the stdlib prints it back unchanged


def test_ids_do_not_repeat_and_use_every_random_bit() -> None:
    ids = [uuid.UUID(uuid4_text()).int for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    # The 122 random bits: each is set in some ids and clear in others (fixed bits would be a weak id).
    fixed = (0xF << 76) | (0x3 << 62)  # the version nibble and the variant's two bits
    varying_set = 0
    varying_clear = 0
    for value in ids:
        varying_set |= value
        varying_clear |= ~value
    mask = (1 << 128) - 1
    assert (varying_set & varying_clear & mask) == mask & ~fixed
