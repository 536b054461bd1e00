from __future__ import annotations

import gzip
import zlib

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from flotilla.core import ProblemError

from ..._otlp import MalformedExport, decode_json, decode_protobuf
from ..._store import SpanStore

router = APIRouter(tags=["otlp"])


@router.post("/v1/traces")
async def receive_traces(request: Request) -> Response:
    """OTLP/HTTP trace receiver (``application/x-protobuf`` or ``application/json``)."""
    limit: int = request.app.state.max_request_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-protobuf", "application/json"):
        raise ProblemError(
            415,
            "Unsupported media type",
            "send application/x-protobuf or application/json (OTLP/HTTP)",
            slug="unsupported-media-type",
            field="Content-Type",
        )
    body = await request.body()
    if len(body) > limit:
        raise ProblemError(413, "Export too large", f"at most {limit} bytes", slug="too-large")
    try:
        if request.headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        decode = decode_protobuf if content_type == "application/x-protobuf" else decode_json
        records = decode(body)
    except (MalformedExport, OSError, EOFError, zlib.error) as exc:
        raise ProblemError(
            400, "Malformed export", str(exc), slug="malformed-export", field="body"
        ) from exc
    store: SpanStore = request.app.state.store
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(store.add, records)
    if content_type == "application/x-protobuf":
        return Response(
            ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
        )
    return Response(b"{}", media_type="application/json")
