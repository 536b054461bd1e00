"""A real console served by uvicorn on a free port, and real OpenTelemetry SDK pipelines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from flotilla.console import ConsoleSettings, create_app
from tests.support.servers import serve_in_thread

ServiceTracer = Callable[..., TracerProvider]


@pytest.fixture
def console_settings(tmp_path: Path) -> ConsoleSettings:
    """Settings of a console with its own database under the test's temporary folder."""
    return ConsoleSettings(database_path=str(tmp_path / "var" / "console.db"))


@pytest.fixture
def console(console_settings: ConsoleSettings) -> Iterator[str]:
    """The base URL of a real console (uvicorn in a thread)."""
    with serve_in_thread(create_app(console_settings)) as base_url:
        yield base_url


@pytest.fixture
def service_tracer(console: str) -> Iterator[ServiceTracer]:
    """Make the SDK pipeline of one service: OTLP/HTTP protobuf export to the console.

    SimpleSpanProcessor exports each span when it ends, so it is stored once ``end()`` returns.
    """
    providers: list[TracerProvider] = []

    def make(service: str, *, gzip: bool = False) -> TracerProvider:
        exporter = OTLPSpanExporter(
            endpoint=f"{console}/v1/traces",
            compression=Compression.Gzip if gzip else Compression.NoCompression,
        )
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.shutdown()
