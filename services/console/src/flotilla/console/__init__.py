"""console: the local trace store (OTLP/HTTP receiver) and its query API."""

from ._otlp import MalformedExport, SpanRecord, decode_json, decode_protobuf
from ._settings import ConsoleSettings
from ._store import SpanStore
from .api.app import create_app

__all__ = [
    "ConsoleSettings",
    "MalformedExport",
    "SpanRecord",
    "SpanStore",
    "create_app",
    "decode_json",
    "decode_protobuf",
]
