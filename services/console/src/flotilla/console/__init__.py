"""console: the local trace store (an OTLP/HTTP receiver on SQLite) and its query API."""

from ._ingest import ExportTooLarge, UnsupportedMediaType, decode_export
from ._otlp import DecodedExport, MalformedExport, SpanRecord, decode_json, decode_protobuf
from ._settings import ConsoleSettings
from ._store import SpanStore
from ._summary import SpanOutline, TraceOutline, root_span, summarise_trace
from .api.app import create_app

__all__ = [
    "ConsoleSettings",
    "DecodedExport",
    "ExportTooLarge",
    "MalformedExport",
    "SpanOutline",
    "SpanRecord",
    "SpanStore",
    "TraceOutline",
    "UnsupportedMediaType",
    "create_app",
    "decode_export",
    "decode_json",
    "decode_protobuf",
    "root_span",
    "summarise_trace",
]
