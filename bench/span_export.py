"""What a span costs from its start to the console's store, per step: OTLP protobuf against
OTLP JSON (``opentelemetry-exporter-otlp-json-http``), side by side in one run.

    uv run python bench/span_export.py [--spans 512] [--rounds 20]

The spans are shaped like an order's (a SERVER span with the HTTP attributes uvicorn's
instrumentation sets, its SQL statements, a PRODUCER span): made with the SDK as the services
make them, then encoded as each exporter encodes a batch (512 spans, the batch processor's
default) and decoded as the console's ``/v1/traces`` decodes it. Best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.exporter.otlp.json.common._internal.trace_encoder import (
    encode_spans as encode_json,
)
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_proto
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from flotilla.console._otlp import decode_json, decode_protobuf
from flotilla.contracts.catalogue import port

SERVER = {
    "http.request.method": "POST",
    "url.path": "/orders",
    "url.scheme": "http",
    "http.route": "/orders",
    "http.response.status_code": 202,
    "server.address": "127.0.0.1",
    "server.port": port("orders-api"),
    "client.address": "127.0.0.1",
    "network.protocol.version": "1.1",
    "user_agent.original": "wrk",
}
STATEMENT = {
    "db.system.name": "sqlite",
    "db.namespace": "orders.db",
    "db.query.text": "INSERT INTO orders (id, client_id, status, customer_email, items, "
    "amount_cents, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
}
PRODUCER = {
    "messaging.system": "dramatiq",
    "messaging.destination.name": "orders",
    "messaging.operation.type": "send",
    "messaging.message.id": "6f1c3f0e-0f5e-4c2e-9d0a-4f8c2b8f3e1a",
}


def make_spans(count: int) -> tuple[list[ReadableSpan], float]:
    """``count`` spans in groups of four (server, two statements, producer); and what making
    one cost (µs), the SDK's processor included."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "orders-api"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    started = time.perf_counter()
    for _ in range(count // 4):
        with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER, attributes=SERVER):
            for _ in range(2):
                with tracer.start_as_current_span(
                    "INSERT orders.db", kind=SpanKind.CLIENT, attributes=STATEMENT
                ):
                    pass
            with tracer.start_as_current_span(
                "publish orders", kind=SpanKind.PRODUCER, attributes=PRODUCER
            ):
                pass
    made = time.perf_counter() - started
    spans = list(memory.get_finished_spans())
    return spans, made * 1e6 / len(spans)


def best(step: Callable[[], Any], rounds: int) -> float:
    fastest = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        step()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    spans, made_us = make_spans(args.spans)
    proto = encode_proto(spans).SerializePartialToString()
    json_body = encode_json(spans).to_json().encode()
    assert len(decode_protobuf(proto).records) == len(decode_json(json_body).records) == len(spans)
    per_span = 1e6 / len(spans)
    rows = {
        "OTLP protobuf": (
            best(lambda: encode_proto(spans).SerializePartialToString(), args.rounds),
            best(lambda: decode_protobuf(proto), args.rounds),
            len(proto),
        ),
        "OTLP JSON": (
            best(lambda: encode_json(spans).to_json().encode(), args.rounds),
            best(lambda: decode_json(json_body), args.rounds),
            len(json_body),
        ),
    }
    print(f"{len(spans)} spans; making one with the SDK: {made_us:.1f} µs\n")
    print("| encoding | encode, µs/span | vs protobuf | console decode, µs/span | bytes/span |")
    print("|---|---:|---:|---:|---:|")
    base = rows["OTLP protobuf"][0]
    for name, (encode_s, decode_s, size) in rows.items():
        print(
            f"| {name} | {encode_s * per_span:.1f} | {encode_s / base:.2f}x | "
            f"{decode_s * per_span:.1f} | {size / len(spans):.0f} |"
        )


if __name__ == "__main__":
    main()
