"""From an OTLP/HTTP request body to decoded spans or log records: media type, content coding,
size limit.

Framework-neutral so the receiver route only translates these errors into problems.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._otlp import DecodedExport, MalformedExport, decode_json, decode_protobuf
from ._otlp_logs import decode_logs_json, decode_logs_protobuf

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = (PROTOBUF, JSON)


@dataclass(frozen=True)
class Signal:
    """What an OTLP/HTTP path receives: its name and a decoder per encoding."""

    name: str
    protobuf: Callable[[bytes], DecodedExport[Any]]
    json: Callable[[bytes], DecodedExport[Any]]

    def decoder(self, media: str) -> Callable[[bytes], DecodedExport[Any]]:
        return self.protobuf if media == PROTOBUF else self.json


TRACES = Signal("trace", decode_protobuf, decode_json)
LOGS = Signal("logs", decode_logs_protobuf, decode_logs_json)
# zlib window bits: gzip framing, and zlib framing for ``deflate`` (RFC 9110 8.4.1.2).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class UnsupportedMediaType(ValueError):
    """The body is neither OTLP protobuf nor OTLP/JSON, or its content coding is unknown.

    Attributes:
        header: the request header at fault.
    """

    def __init__(self, message: str, *, header: str) -> None:
        super().__init__(message)
        self.header = header


class ExportTooLarge(ValueError):
    """The body, before or after decompression, is larger than the console accepts."""


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` value, without parameters, lower-case.

    Raises:
        UnsupportedMediaType: it is not one of OTLP/HTTP's two encodings.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in _MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"send {PROTOBUF} or {JSON} (OTLP/HTTP), not {media or 'no Content-Type'}",
            header="Content-Type",
        )
    return media


def check_coding(content_encoding: str | None) -> str:
    """The content coding of a body, lower-case (``identity`` when none is given).

    Raises:
        UnsupportedMediaType: a coding the console cannot undo.
    """
    coding = (content_encoding or "identity").strip().lower() or "identity"
    if coding != "identity" and coding not in _WBITS:
        raise UnsupportedMediaType(
            f"Content-Encoding {coding} is not supported (use gzip, deflate or none)",
            header="Content-Encoding",
        )
    return coding


def decompress(body: bytes, *, coding: str, max_bytes: int) -> bytes:
    """Undo a content coding without ever holding more than ``max_bytes`` of output.

    Raises:
        ExportTooLarge: the decompressed body is over ``max_bytes``.
        MalformedExport: the body is not validly compressed.
    """
    if coding == "identity":
        return body
    decompressor = zlib.decompressobj(wbits=_WBITS[coding])
    try:
        # PERF: bounded output, so a small "zip bomb" cannot exhaust the console's memory.
        plain = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedExport(f"the body is not valid {coding}: {exc}") from exc
    if len(plain) > max_bytes:
        raise ExportTooLarge(f"the decompressed export is over {max_bytes} bytes")
    if not decompressor.eof:
        raise MalformedExport(f"the {coding} body is truncated")
    return plain


def decode_export(
    body: bytes,
    *,
    content_type: str,
    content_encoding: str | None,
    max_bytes: int,
    signal: Signal = TRACES,
) -> DecodedExport[Any]:
    """Decompress and decode one OTLP/HTTP export (of traces unless ``signal`` says).

    Args:
        body: the request body as received.
        content_type: a media type accepted by :func:`media_type`.
        content_encoding: the ``Content-Encoding`` header, if any.
        max_bytes: the largest decompressed body accepted.
        signal: :data:`TRACES` or :data:`LOGS`.

    Raises:
        UnsupportedMediaType: unknown content coding.
        ExportTooLarge: over ``max_bytes`` once decompressed.
        MalformedExport: not an export.
    """
    plain = decompress(body, coding=check_coding(content_encoding), max_bytes=max_bytes)
    return signal.decoder(content_type)(plain)
