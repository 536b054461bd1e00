"""Metrics every process exports: Dramatiq's by queue and actor, SQL statements' durations, the
scrape endpoint. Read the way Prometheus reads them: the text a scrape returns, parsed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from flotilla.core import broker_from_url, make_engine, run_worker, scrape
from tests.support.ports import free_port
from tests.support.servers import serve_in_thread
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def label_sets(text: str, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_a_worker_counts_processed_retried_and_failed_messages_by_queue_and_actor(
    redis_url: str, spans: InMemorySpanExporter
) -> None:
    """Six messages on a real Redis: four succeed, one fails once then succeeds, one fails
    every time (no retries left: dead-lettered). The scrape says so, by queue and actor, and
    how long each waited."""
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    broker = broker_from_url(redis_url)
    attempts: dict[int, int] = {}
    done = threading.Event()
    lock = threading.Lock()

    @dramatiq.actor(
        broker=broker, queue_name=queue, actor_name="counted", max_retries=1, min_backoff=10,
        max_backoff=20,
    )  # fmt: skip
    def counted(n: int) -> None:
        with lock:
            attempts[n] = attempts.get(n, 0) + 1
            if sum(attempts.values()) >= 8:  # 4 + 2 (flaky) + 2 (broken, retried once)
                done.set()
        if n == 4 and attempts[n] == 1:
            raise ConnectionError("flaky")
        if n == 5:
            raise ValueError("broken")

    for n in range(6):
        counted.send(n)
    stop = threading.Event()
    runner = threading.Thread(
        target=run_worker, args=(broker,), kwargs={"queues": [queue], "threads": 2, "stop": stop}
    )
    runner.start()
    try:
        assert done.wait(30), attempts
        text = ""

        def settled() -> bool:
            nonlocal text
            text = scrape().decode()
            return samples(text, "messaging_dramatiq_messages_failed_total", **labels) == 1

        labels = {"messaging_destination_name": queue, "messaging_dramatiq_actor": "counted"}
        wait_for(settled, timeout_s=10)
    finally:
        stop.set()
        runner.join(30)
    assert samples(text, "messaging_client_sent_messages_total", **labels) == 6
    assert samples(text, "messaging_client_consumed_messages_total", **labels) == 8
    assert samples(text, "messaging_dramatiq_messages_retried_total", **labels) == 2
    assert samples(text, "messaging_dramatiq_messages_in_progress", **labels) == 0
    assert samples(text, "messaging_process_duration_seconds_count", **labels) == 8
    # NOTE: Prometheus' text gives every sample of a family the same labels: "" is none
    attempts_by_error = {
        s.get("error_type", ""): samples(
            text,
            "messaging_process_duration_seconds_count",
            **labels,
            error_type=s.get("error_type", ""),
        )
        for s in label_sets(text, "messaging_process_duration_seconds_count")
        if s.get("messaging_destination_name") == queue
    }
    assert attempts_by_error == {"": 5, "ConnectionError": 1, "ValueError": 2}
    assert samples(text, "messaging_dramatiq_queue_wait_duration_seconds_count", **labels) == 8
    # NOTE: the delay queue is not a destination of its own, and no label is per message
    for sample in label_sets(text, "messaging_client_consumed_messages_total"):
        assert not sample.get("messaging_destination_name", "").endswith(".DQ")
        assert "messaging_message_id" not in sample
    broker.close()


def test_every_sql_statement_is_timed_by_database_and_operation(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """``db.client.operation.duration`` by database (the SQLite file's name), operation and,
    for a statement that failed, the error; never the statement's text or parameters."""
    name = f"metrics{uuid.uuid4().hex[:6]}"
    engine = make_engine(f"sqlite:///{tmp_path}/{name}.db")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        for n in range(3):
            connection.execute(sa.text("INSERT INTO t (v) VALUES (:v)"), {"v": f"secret-{n}"})
        connection.execute(sa.text("SELECT v FROM t")).all()
    with pytest.raises(sa.exc.OperationalError), engine.begin() as connection:
        connection.execute(sa.text("SELECT nope FROM t"))
    engine.dispose()
    text = scrape().decode()
    metric = "db_client_operation_duration_seconds_count"
    ours = {"db_namespace": name, "db_system_name": "sqlite"}
    assert samples(text, metric, **ours, db_operation_name="INSERT") == 3
    assert samples(text, metric, **ours, db_operation_name="SELECT") == 2
    assert samples(text, metric, **ours, error_type="OperationalError") == 1
    assert "secret-" not in text


def test_a_graceful_stop_leaves_the_next_scrape_as_it_was(spans: InMemorySpanExporter) -> None:
    """A worker or server flushes its telemetry when it stops (``flush_telemetry``): the next
    scrape still shows each metric once, with its labels where they belong (a flush of the
    Prometheus reader used to queue a copy of every metric for the next scrape)."""
    from opentelemetry import metrics

    from flotilla.core import flush_telemetry

    name = f"stop_probe_{uuid.uuid4().hex[:6]}"
    histogram = metrics.get_meter("tests").create_histogram(f"{name}.duration", unit="s")
    histogram.record(0.01, {"step": "one"})
    scrape()
    flush_telemetry()
    flush_telemetry()
    histogram.record(0.02, {"step": "two", "error.type": "Boom"})
    text = scrape().decode()
    assert text.count(f"# HELP {name}_duration_seconds ") == 1
    assert samples(text, f"{name}_duration_seconds_count", step="one", error_type="") == 1
    assert samples(text, f"{name}_duration_seconds_count", step="two", error_type="Boom") == 1


SERVES = """
import sys, time
from opentelemetry import metrics
from flotilla.core import configure_telemetry
configure_telemetry("metrics-probe", metrics_port=int(sys.argv[1]))
metrics.get_meter("probe").create_counter("probe.ticks", unit="{tick}").add(3)
print("up", flush=True)
time.sleep(60)
"""


def test_a_process_serves_its_metrics_on_the_port_it_is_given(tmp_path: Path) -> None:
    """Given a metrics port (its component's ``metrics_port`` setting), a process answers
    ``/metrics`` in Prometheus' format with what it recorded and the resource it runs as
    (``target_info``)."""
    port = free_port()
    env: dict[str, Any] = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
    }
    probe = subprocess.Popen(
        [sys.executable, "-c", SERVES, str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert probe.stdout is not None and probe.stdout.readline().strip() == "up"
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert samples(answer.text, "probe_ticks_total") == 3
        info = label_sets(answer.text, "target_info")
        assert info and info[0]["service_name"] == "metrics-probe"
    finally:
        probe.kill()
        probe.wait(10)


DASHBOARDS = sorted(
    (Path(__file__).resolve().parents[2] / "charts/flotilla/dashboards").glob("*.json")
)
#: a metric in a PromQL selector: its name, right before ``{`` (every dashboard query uses one)
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info", ""),
}


def exported_names(*texts: str) -> set[str]:
    """Every sample name the texts can hold, families without samples yet included."""
    names: set[str] = set()
    for text in texts:
        for family in text_string_to_metric_families(text):
            names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
            names |= {sample.name for sample in family.samples}
    return names


def test_every_dashboard_query_names_a_metric_the_platform_exports(
    redis_url: str, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """The chart's Grafana dashboards query only what the platform's own code paths export:
    a FastAPI service and its httpx client as the services build them, SQL through
    make_engine, Dramatiq messages that succeed, are retried and fail (MessagingMetrics), the
    edge's and the operator's registries. A renamed metric fails this test, not a dashboard
    in someone's Grafana."""
    from fastapi import FastAPI, HTTPException
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from prometheus_client import generate_latest

    from flotilla.core import instrument_fastapi, service_client
    from flotilla.edge._metrics import EdgeMetrics
    from flotilla.operator import QueueDepth, ScaleDecision
    from flotilla.operator._metrics import OperatorMetrics

    app = FastAPI()

    @app.get("/things/{thing_id}")
    def thing(thing_id: int) -> dict[str, int]:
        if thing_id == 0:
            raise HTTPException(status_code=503)
        return {"id": thing_id}

    instrument_fastapi(app)
    try:
        with serve_in_thread(app) as url, service_client(url) as client:
            assert client.get("/things/1").status_code == 200
            assert client.get("/things/0").status_code == 503
    finally:
        # NOTE: service_client instruments httpx for the whole process; left so, every later
        # test's client would start traces in this process (the e2e tests' orders would get
        # a parent the console never receives)
        HTTPXClientInstrumentor().uninstrument()
    engine = make_engine(f"sqlite:///{tmp_path}/dashboards.db")
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT 1"))
    engine.dispose()

    queue = f"dashboards-{uuid.uuid4().hex[:8]}"
    broker = broker_from_url(redis_url)
    seen: list[int] = []

    @dramatiq.actor(broker=broker, queue_name=queue, max_retries=1, min_backoff=10, max_backoff=20)
    def job(n: int) -> None:
        seen.append(n)
        if n:
            raise ValueError("no")

    job.send(0)
    job.send(1)  # retried once, then failed
    stop = threading.Event()
    runner = threading.Thread(
        target=run_worker, args=(broker,), kwargs={"queues": [queue], "threads": 1, "stop": stop}
    )
    runner.start()
    try:
        wait_for(lambda: len(seen) == 3, timeout_s=30)
        wait_for(lambda: "messaging_dramatiq_messages_failed_total" in scrape().decode(), 10)
    finally:
        stop.set()
        runner.join(30)
        broker.close()

    operator = OperatorMetrics()
    operator.record("shop", "orders", 1, QueueDepth(ready=3), ScaleDecision(2, "scale-up", "x"))
    edge = EdgeMetrics()
    exported = exported_names(
        scrape().decode(),
        generate_latest(edge.registry).decode(),
        generate_latest(operator.registry).decode(),
    )
    assert DASHBOARDS, "the chart ships no dashboard"
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
        assert queries, path.name
        named = {name for query in queries for name in SELECTOR.findall(query)}
        assert named, path.name
        assert named <= exported, f"{path.name} queries what nothing exports: {named - exported}"
