"""The content types a payload may be stored as (normalised), and base64 as a PUT's Content-Encoding decodes
it; how the Barbican API decodes a JSON payload and negotiates Accept is api/payload_types.py."""

from __future__ import annotations

import base64
import binascii
import re

from donjon.errors import InvalidInput

TEXT = "text/plain"
OCTET_STREAM = "application/octet-stream"
PKCS8 = "application/pkcs8"

# Barbican's accepted spellings; the Accept header of a payload GET must be one of these exactly.
SUPPORTED = ("text/plain", "text/plain;charset=utf-8", "text/plain; charset=utf-8", OCTET_STREAM, PKCS8)


def normalize_content_type(value: str, schema: str = "Secret") -> str:
    """The stored form of a request content type; raises InvalidInput for an unsupported one.

    The refusal is worded as Barbican's validator words it (its functional tests match the text); ``schema``
    is the name Barbican gives the object, e.g. ``Secret' within 'Order`` for an order's meta.
    """
    main, _, params = value.partition(";")
    main = main.strip().lower()
    if main == TEXT:
        params = params.strip().lower().replace(" ", "")
        if params in ("", "charset=utf-8"):
            return TEXT
    elif main in (OCTET_STREAM, PKCS8) and not params.strip():
        return main
    raise InvalidInput(
        f"Provided object does not match schema '{schema}': payload_content_type is not one of {list(SUPPORTED)}."
        " Invalid property: 'payload_content_type'"
    )


# ASCII whitespace, which RFC 2045 line-wrapping (``base64`` without ``-w0``, PEM bodies) puts inside base64.
_WHITESPACE = re.compile(rb"[ \t\r\n\f\v]+")


def decode_base64(text: str | bytes) -> bytes:
    """Strict base64, except that whitespace anywhere is ignored.

    Barbican calls ``base64.b64decode`` without ``validate``: it drops *every* character outside the alphabet
    and stores what is left, so ``"ab!cd"`` or a URL-safe ``"-_"`` silently become other bytes than the
    client meant. Only whitespace is dropped here (it cannot change what the text encodes); anything else
    outside the alphabet, or bad padding, is Barbican's 400 (docs/api-compatibility.md).
    """
    raw = text.encode("utf-8") if isinstance(text, str) else text
    try:
        return base64.b64decode(_WHITESPACE.sub(b"", raw), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("Invalid payload for payload_content_encoding") from None
