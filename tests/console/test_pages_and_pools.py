"""The console's pool view, trace search and waterfall, through a real console over HTTP with
spans sent by the real OpenTelemetry SDK (the browser tests are in tests/e2e)."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from flotilla.console import ConsoleSettings, create_app
from flotilla.console._otlp import SpanRecord
from flotilla.console._store import SpanStore
from flotilla.console.web._waterfall import build
from flotilla.operator import (
    DECISION_SPAN,
    History,
    Observation,
    QueueDepth,
    ScalingSpec,
    decide,
    decision_attributes,
)
from tests.console.conftest import ServiceTracer
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration


def report_decision(tracer: trace.Tracer, current: int, depth: QueueDepth) -> None:
    """What the operator and the local autoscaler do for every decision."""
    spec = ScalingSpec(min_replicas=1, max_replicas=8, target_per_replica=20)
    observation = Observation(current, depth)
    decision = decide(spec, observation, History(), time.monotonic())
    with tracer.start_as_current_span(DECISION_SPAN) as span:
        span.set_attributes(
            decision_attributes(
                autoscaler="shop/orders-worker",
                target="orders-worker",
                queues=["orders"],
                spec=spec,
                observation=observation,
                decision=decision,
            )
        )


def test_decisions_fill_the_pool_view_not_the_trace_list(
    console: str, service_tracer: ServiceTracer
) -> None:
    tracer = service_tracer("operator").get_tracer("test")
    report_decision(tracer, 1, QueueDepth(ready=0))
    report_decision(tracer, 1, QueueDepth(ready=90, in_flight=10))  # 1→5
    pools = httpx.get(f"{console}/api/pools").json()["pools"]
    assert [p["name"] for p in pools] == ["shop/orders-worker"]
    (pool,) = pools
    assert (pool["service"], pool["queues"], pool["depth"], pool["in_flight"]) == (
        "operator",
        ["orders"],
        100,
        10,
    )
    assert pool["last_decision"].startswith("1→5: depth 100")
    assert [c["action"] for c in pool["changes"]] == ["scale-up"]
    assert httpx.get(f"{console}/api/traces").json()["traces"] == []

    page = httpx.get(f"{console}/pools")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "shop/orders-worker" in page.text and "<svg" in page.text
    assert "1→5: depth 100 (ready 90, delayed 0, in-flight 10)" in page.text


def test_the_trace_list_searches_by_service_operation_duration_errors_and_id(
    console: str, service_tracer: ServiceTracer
) -> None:
    edge = service_tracer("edge").get_tracer("test")
    worker = service_tracer("orders-worker").get_tracer("test")
    with edge.start_as_current_span("GET /api/orders", kind=SpanKind.SERVER) as quick:
        pass
    with (
        edge.start_as_current_span("POST /api/orders", kind=SpanKind.SERVER) as slow,
        worker.start_as_current_span("process orders", kind=SpanKind.CONSUMER) as failed,
    ):
        failed.set_status(Status(StatusCode.ERROR, "boom"))
        time.sleep(0.06)
    quick_id = format(quick.get_span_context().trace_id, "032x")
    slow_id = format(slow.get_span_context().trace_id, "032x")

    def found(**query: str) -> list[str]:
        answer = httpx.get(f"{console}/api/traces", params=query)
        assert answer.status_code == 200, answer.text
        return [t["trace_id"] for t in answer.json()["traces"]]

    assert found() == [slow_id, quick_id]
    assert found(service="orders-worker") == [slow_id]
    assert found(operation="get /api") == [quick_id]
    assert found(min_duration_ms="50") == [slow_id]
    assert found(errors="true") == [slow_id]
    assert found(trace_id=quick_id[:6]) == [quick_id]
    bad = httpx.get(f"{console}/api/traces", params={"trace_id": "xyz"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "trace_id"

    page = httpx.get(f"{console}/", params={"service": "orders-worker"}).text
    assert f"/traces/{slow_id}" in page and f"/traces/{quick_id}" not in page
    wrong = httpx.get(f"{console}/", params={"min_ms": "-3"}).text
    assert "min duration: a number of milliseconds" in wrong


def test_a_thousand_span_trace_renders_every_span_in_tree_order(
    console: str, service_tracer: ServiceTracer
) -> None:
    """1,000 spans: a chain 200 deep plus fan-out; every span is a row, each after its parent."""
    tracer = service_tracer("edge").get_tracer("test")
    rng = random.Random(7)
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        open_spans = [root]
        for i in range(999):
            parent = open_spans[-1] if i < 199 else rng.choice(open_spans)
            context = trace.set_span_in_context(parent)
            span = tracer.start_span(f"step {i}", context=context)
            open_spans.append(span)
        for span in reversed(open_spans[1:]):
            span.end()
    trace_id = format(root.get_span_context().trace_id, "032x")
    detail = httpx.get(f"{console}/api/traces/{trace_id}").json()
    assert len(detail["spans"]) == 1000

    page = httpx.get(f"{console}/traces/{trace_id}", timeout=30)
    assert page.status_code == 200
    rows = re.findall(r'data-span="([0-9a-f]{16})"', page.text)
    assert len(rows) == 1000
    position = {span_id: i for i, span_id in enumerate(rows)}
    for span in detail["spans"]:
        if span["parent_span_id"]:
            assert position[span["parent_span_id"]] < position[span["span_id"]]
    assert 'style="--depth: 199;' in page.text


def record(span_id: str, parent: str | None, *, start: int, end: int) -> SpanRecord:
    return SpanRecord(
        "t" * 32, span_id, parent, span_id, "INTERNAL", "edge", start, end, "UNSET", ""
    )


def test_a_span_whose_parent_never_arrived_is_drawn_as_a_root() -> None:
    spans = [
        record("a", None, start=0, end=10),
        record("b", "a", start=1, end=5),
        record("c", "missing", start=2, end=3),
    ]
    waterfall = build(spans)
    assert [(r.span.span_id, r.depth) for r in waterfall.rows] == [("a", 0), ("b", 1), ("c", 0)]
    assert waterfall.rows[0].left == 0 and waterfall.rows[0].width == 100


def test_each_trace_links_to_jaeger_when_the_console_knows_it(tmp_path: Path) -> None:
    settings = ConsoleSettings(
        database_path=str(tmp_path / "jaeger.db"), jaeger_url="http://jaeger.example:16686/"
    )
    with serve_in_thread(create_app(settings)) as console:
        provider = TracerProvider(resource=Resource.create({"service.name": "edge"}))
        exporter = OTLPSpanExporter(endpoint=f"{console}/v1/traces")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("test").start_as_current_span("GET /") as span:
            pass
        provider.shutdown()
        trace_id = format(span.get_span_context().trace_id, "032x")
        link = f'href="http://jaeger.example:16686/trace/{trace_id}"'
        assert link in httpx.get(f"{console}/").text
        assert link in httpx.get(f"{console}/traces/{trace_id}").text


def test_an_idle_platform_whose_only_exports_are_decisions_still_prunes_them(
    tmp_path: Path,
) -> None:
    """Decisions count toward retention like spans: 30 decision-only exports to a store that
    keeps 10 leave about 10, not 30."""
    store = SpanStore(str(tmp_path / "pools.db"), max_spans=10, max_age_s=86_400)
    now = time.time_ns()
    for i in range(30):
        span = record(f"{i:016x}", None, start=now + i, end=now + i + 1)
        decision = dataclasses.replace(
            span,
            name=DECISION_SPAN,
            attributes={"flotilla.autoscaler": "orders-worker", "flotilla.action": "hold"},
        )
        store.add_spans(spans=[decision])
    (pool,) = store.pools(since_ns=now - 1)
    assert len(pool.series) <= 11
    store.close()


def test_health_chips_show_a_restarting_process_from_the_supervisor(tmp_path: Path) -> None:
    """Locally the console reads `flotilla up`'s status file: a service that restarted says
    how often and how it last exited, and a worker waiting to restart gets a chip of its own."""
    status = tmp_path / "status.json"
    status.write_text(
        json.dumps(
            {
                "updated_at": time.time(),
                "processes": [
                    {"name": "orders-api", "state": "running", "restarts": 2, "last_exit_code": -9},
                    {"name": "orders-worker-3", "state": "restarting", "restarts": 1,
                     "last_exit_code": -9},
                    {"name": "mail-sink", "state": "running", "restarts": 0},
                ],
            }
        )
    )  # fmt: skip
    with serve_in_thread(create_app(ConsoleSettings(database_path=str(tmp_path / "c.db")))) as up:
        settings = ConsoleSettings(
            database_path=str(tmp_path / "console.db"),
            services={"orders-api": up},
            platform_status=str(status),
        )
        with serve_in_thread(create_app(settings)) as console:
            chips = httpx.get(f"{console}/fragments/health").text
    assert 'class="chip ok" title="orders-api: ready; 2 restarts, last exit -9"' in chips
    assert (
        'class="chip restarting" title="orders-worker-3: restarting; 1 restart, last exit -9"'
        in (chips)
    )
    assert "mail-sink" not in chips  # running and not a probed service: no chip
