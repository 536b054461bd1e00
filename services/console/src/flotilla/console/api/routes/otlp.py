"""The OTLP/HTTP receivers: traces, ``POST /v1/traces``, and logs, ``POST /v1/logs``.

Answers as the OTLP specification asks of a server: 200 with an ``Export…ServiceResponse``
in the request's encoding (with ``partial_success`` when some records could not be stored);
errors are problems (400 malformed, 413 too large, 415 unsupported type or coding, 503 with
``Retry-After`` when the store is busy: OTLP exporters retry 503, never 4xx).
"""

from __future__ import annotations

import hmac
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.concurrency import run_in_threadpool

from flotilla.core import ProblemError

from ..._deps import Settings, Store
from ..._ingest import (
    LOGS,
    PROTOBUF,
    TRACES,
    ExportTooLarge,
    Signal,
    UnsupportedMediaType,
    decode_export,
    media_type,
)
from ..._otlp import DecodedExport, MalformedExport
from ..._settings import ConsoleSettings
from ..._store import SpanStore

router = APIRouter(tags=["otlp"])
logger = logging.getLogger(__name__)


def _too_large(max_bytes: int) -> ProblemError:
    return ProblemError(
        413,
        "Export too large",
        f"an export may be at most {max_bytes} bytes (compressed or not); send smaller batches",
        slug="export-too-large",
        field="body",
    )


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:  # a chunked body states no length: stop reading at the limit
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_token(request: Request, token: str) -> None:
    if not token:
        return
    sent = request.headers.get("authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        raise ProblemError(
            401,
            "Unauthorized",
            "send Authorization: Bearer <FLOTILLA_CONSOLE_INGEST_TOKEN>"
            " (exporters: OTEL_EXPORTER_OTLP_HEADERS)",
            slug="unauthorized",
            field="Authorization",
            headers={"WWW-Authenticate": 'Bearer realm="flotilla-console"'},
        )


@dataclass(frozen=True)
class _Receiver:
    """One signal's receiver: how its export is decoded, where it is stored, what answers."""

    signal: Signal
    store: Callable[[SpanStore, list[Any]], None]
    response: type[Message]  # the Export…ServiceResponse
    rejected_field: str  # its partial_success count of what could not be stored


SPANS = _Receiver(
    TRACES,
    lambda store, records: store.add_spans(spans=records),
    ExportTraceServiceResponse,
    "rejected_spans",
)
LOG_RECORDS = _Receiver(
    LOGS,
    lambda store, records: store.add_logs(lines=records),
    ExportLogsServiceResponse,
    "rejected_log_records",
)


def _ingest(
    store: SpanStore,
    receiver: _Receiver,
    body: bytes,
    content_type: str,
    content_encoding: str | None,
    max_bytes: int,
) -> DecodedExport[Any]:
    # Decoding and writing run together in a worker thread: both are CPU or disk work.
    decoded = decode_export(
        body,
        content_type=content_type,
        content_encoding=content_encoding,
        max_bytes=max_bytes,
        signal=receiver.signal,
    )
    receiver.store(store, decoded.records)
    return decoded


def _answer(decoded: DecodedExport[Any], receiver: _Receiver, content_type: str) -> Response:
    answer = receiver.response()
    if decoded.rejected:
        partial = answer.partial_success  # every Export…ServiceResponse has one
        setattr(partial, receiver.rejected_field, decoded.rejected)
        partial.error_message = decoded.reason
    if content_type == PROTOBUF:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(answer, indent=None), media_type="application/json")


async def _receive(
    request: Request, store: SpanStore, settings: ConsoleSettings, receiver: _Receiver
) -> Response:
    _check_token(request, settings.ingest_token.get_secret_value())
    max_bytes = settings.max_request_bytes
    try:
        content_type = media_type(request.headers.get("content-type"))
        body = await _read_body(request, max_bytes)
        decoded = await run_in_threadpool(
            _ingest,
            store,
            receiver,
            body,
            content_type,
            request.headers.get("content-encoding"),
            max_bytes,
        )
    except UnsupportedMediaType as exc:
        raise ProblemError(
            415, "Unsupported media type", str(exc), slug="unsupported-media-type", field=exc.header
        ) from exc
    except ExportTooLarge as exc:
        raise _too_large(max_bytes) from exc
    except MalformedExport as exc:
        raise ProblemError(
            400, "Malformed export", str(exc), slug="malformed-export", field="body"
        ) from exc
    except sqlite3.OperationalError as exc:  # locked or full: worth a retry, unlike a 4xx
        logger.warning(f"{receiver.signal.name} records not stored", extra={"error": str(exc)})
        raise ProblemError(
            503,
            "Span store busy",
            f"the {receiver.signal.name} records could not be stored now ({exc}); retry later",
            slug="span-store-busy",
            headers={"Retry-After": "1"},
        ) from exc
    return _answer(decoded, receiver, content_type)


def _receiver_doc(what: str, response: str) -> dict[str, Any]:
    """The OpenAPI of a receiver, whose body is read raw (two encodings, maybe compressed)."""
    return {
        "responses": {
            200: {"content": {PROTOBUF: {}}, "description": response},
            400: {"description": f"not an OTLP {what} export"},
            401: {"description": "FLOTILLA_CONSOLE_INGEST_TOKEN is set and was not sent"},
            413: {"description": "over FLOTILLA_CONSOLE_MAX_REQUEST_BYTES"},
            415: {"description": "neither application/x-protobuf nor application/json"},
            503: {"description": "the store is busy; retry after Retry-After"},
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {
                    PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            }
        },
    }


@router.post("/v1/traces", **_receiver_doc("trace", "ExportTraceServiceResponse"))
async def receive_traces(request: Request, store: Store, settings: Settings) -> Response:
    """OTLP/HTTP trace receiver (``application/x-protobuf`` or ``application/json``)."""
    return await _receive(request, store, settings, SPANS)


@router.post("/v1/logs", **_receiver_doc("logs", "ExportLogsServiceResponse"))
async def receive_logs(request: Request, store: Store, settings: Settings) -> Response:
    """OTLP/HTTP log receiver (``application/x-protobuf`` or ``application/json``): records
    with a trace id are shown on their trace's page."""
    return await _receive(request, store, settings, LOG_RECORDS)
