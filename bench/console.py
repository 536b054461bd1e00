"""How the console's waterfall page holds up as a trace grows: 42 spans (one order) against
1,000 spans, side by side in one run.

A real console process on a free port receives both traces from the OpenTelemetry SDK (OTLP);
then each page is fetched over HTTP (server rendering) and opened in headless Chromium
(parse, layout, script) several times. Prints medians and the 1,000/42 ratio::

    uv run python bench/console.py
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import httpx
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from playwright.sync_api import sync_playwright
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._support import console_process
from tests.support.browser import CHROMIUM, FLAGS

SERVICES = ("edge", "orders-api", "inventory-api", "orders-worker", "notifications-worker")


def send_trace(console: str, spans: int, seed: int) -> str:
    """One trace of ``spans`` spans over five services (a chain, then fan-out)."""
    rng = random.Random(seed)
    providers = {}
    for name in SERVICES:
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{console}/v1/traces"))
        )
        providers[name] = provider
    tracer = providers["edge"].get_tracer("bench")
    with tracer.start_as_current_span("POST /api/orders") as root:
        opened = [root]
        for i in range(spans - 1):
            parent = opened[-1] if i < 20 else rng.choice(opened)
            owner = providers[SERVICES[min(i * len(SERVICES) // spans, 4)]].get_tracer("bench")
            span = owner.start_span(
                f"step {i}", context=trace.set_span_in_context(parent), attributes={"i": i}
            )
            opened.append(span)
        for span in reversed(opened[1:]):
            span.end()
    for provider in providers.values():
        provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def main() -> None:
    out = Console()
    with console_process() as (console, _):
        traces = {size: send_trace(console, size, size) for size in (42, 1000)}
        server: dict[int, list[float]] = {size: [] for size in traces}
        browser_ms: dict[int, list[float]] = {size: [] for size in traces}
        with httpx.Client(timeout=30) as client:
            for _ in range(20):
                for size, trace_id in traces.items():
                    started = time.perf_counter()
                    client.get(f"{console}/traces/{trace_id}").raise_for_status()
                    server[size].append((time.perf_counter() - started) * 1000)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            for _ in range(6):
                for size, trace_id in traces.items():
                    page.goto(f"{console}/traces/{trace_id}", wait_until="load")
                    timing = page.evaluate(
                        "(() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return t.loadEventEnd - t.startTime; })()"
                    )
                    browser_ms[size].append(float(timing))
            browser.close()
    table = Table(title="console waterfall page: 42 vs 1,000 spans (medians)")
    for column in ("spans", "server render + transfer", "Chromium navigation to load"):
        table.add_column(column, justify="right")
    for size in traces:
        table.add_row(
            str(size),
            f"{statistics.median(server[size]):.1f} ms",
            f"{statistics.median(browser_ms[size][1:]):.1f} ms",
        )
    out.print(table)
    for label, data in (("server", server), ("browser", browser_ms)):
        ratio = statistics.median(data[1000]) / statistics.median(data[42])
        out.print(f"{label}: 1,000 spans cost {ratio:.1f}x the 42-span page")


if __name__ == "__main__":
    main()
