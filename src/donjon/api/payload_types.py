"""Payload content types on the Barbican wire: how a JSON payload is decoded on the way in, and
the Accept header's negotiation on the way out (Barbican's exact matching)."""

from __future__ import annotations

from dataclasses import dataclass

from donjon.errors import InvalidInput, NotAcceptable
from donjon.services.payloads import OCTET_STREAM, PKCS8, SUPPORTED, TEXT, decode_base64

# What a 406 lists: the spellings that work, without the charset variants of text/plain.
ACCEPTABLE = (OCTET_STREAM, TEXT, PKCS8, "*/*")


def decode_payload(payload: str, content_type: str, encoding: str | None) -> bytes:
    """Bytes to store for a JSON ``payload`` of a normalized content type."""
    if content_type == TEXT:
        if encoding is not None:
            raise InvalidInput("payload_content_encoding is not one of ['base64'] for text/plain payloads")
        return payload.encode("utf-8")
    if encoding is None:
        raise InvalidInput("payload_content_encoding is required for binary payloads")
    return decode_base64(payload)


@dataclass(frozen=True)
class AcceptHeader:
    """A payload GET's ``Accept`` header as a services.commands.PayloadFormat."""

    accept: str | None

    def choose(self, stored: str) -> str:
        """The content type a payload GET answers with (Barbican's exact matching)."""
        accept = self.accept
        if accept is None or not accept.strip():
            return OCTET_STREAM
        accept = accept.strip()
        if accept == "*/*":
            return stored
        if accept in SUPPORTED:
            return accept
        # Barbican's words first (clients may match them), then what would have worked.
        raise NotAcceptable(f"Wrong payload content-type: Accept one of {', '.join(ACCEPTABLE)}")

    def render(self, payload: bytes, chosen: str) -> bytes:
        """The response body for ``chosen``; text must be valid UTF-8 (else 406, as Barbican)."""
        if chosen.startswith(TEXT):
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                raise NotAcceptable(
                    "Wrong payload content-type: the payload is not UTF-8 text; Accept application/octet-stream"
                ) from None
        return payload
