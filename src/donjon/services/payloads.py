"""Payload content types: what may be stored, how it is decoded on the way in, negotiated on the way out."""

from __future__ import annotations

import base64
import binascii

from donjon.errors import InvalidInput, NotAcceptable

TEXT = "text/plain"
OCTET_STREAM = "application/octet-stream"
PKCS8 = "application/pkcs8"

# Barbican's accepted spellings; the Accept header of a payload GET must be one of these exactly.
SUPPORTED = ("text/plain", "text/plain;charset=utf-8", "text/plain; charset=utf-8", OCTET_STREAM, PKCS8)
# What a 406 lists: the spellings that work, without the charset variants of text/plain.
ACCEPTABLE = (OCTET_STREAM, TEXT, PKCS8, "*/*")


def normalize_content_type(value: str) -> str:
    """The stored form of a request content type; raises InvalidInput for an unsupported one."""
    main, _, params = value.partition(";")
    main = main.strip().lower()
    if main == TEXT:
        params = params.strip().lower().replace(" ", "")
        if params in ("", "charset=utf-8"):
            return TEXT
    elif main in (OCTET_STREAM, PKCS8) and not params.strip():
        return main
    raise InvalidInput("Provided field value is not supported: payload_content_type")


def decode_payload(payload: str, content_type: str, encoding: str | None) -> bytes:
    """Bytes to store for a JSON ``payload`` of a normalized content type."""
    if content_type == TEXT:
        if encoding is not None:
            raise InvalidInput("payload_content_encoding is not one of ['base64'] for text/plain payloads")
        return payload.encode("utf-8")
    if encoding is None:
        raise InvalidInput("payload_content_encoding is required for binary payloads")
    return decode_base64(payload)


def decode_base64(text: str | bytes) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("Invalid payload for payload_content_encoding") from None


def negotiate(accept: str | None, stored: str) -> str:
    """The content type a payload GET answers with, from its Accept header (Barbican's exact matching)."""
    if accept is None or not accept.strip():
        return OCTET_STREAM
    accept = accept.strip()
    if accept == "*/*":
        return stored
    if accept in SUPPORTED:
        return accept
    # Barbican's words first (clients may match them), then what would have worked.
    raise NotAcceptable(f"Wrong payload content-type: Accept one of {', '.join(ACCEPTABLE)}")


def render(payload: bytes, chosen: str) -> bytes:
    """The response body for ``chosen``; text must be valid UTF-8 (else 406, as Barbican)."""
    if chosen.startswith(TEXT):
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise NotAcceptable(
                "Wrong payload content-type: the payload is not UTF-8 text; Accept application/octet-stream"
            ) from None
    return payload
