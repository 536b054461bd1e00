"""Trace context crosses a real broker: the consumer's span continues the producer's trace.

Given a real Redis or RabbitMQ broker built by ``broker_from_url`` and a real Dramatiq worker,
when a message is sent inside a request span, then the worker's ``process <queue>`` span is a
child of the ``publish <queue>`` span, which is a child of the request span.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import dramatiq
import pytest
import redis
from dramatiq import Worker
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from flotilla.core import (
    ATTEMPT_ATTRIBUTE,
    DELAY_ATTRIBUTE,
    QUEUE_WAIT_ATTRIBUTE,
    TRACE_CONTEXT_OPTION,
    broker_from_url,
)
from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

BrokerFactory = Callable[[], tuple[dramatiq.Broker, str]]


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_and_queue(request: pytest.FixtureRequest) -> Iterator[tuple[dramatiq.Broker, str]]:
    """One test body, two brokers: a fresh queue on real Redis and on real RabbitMQ."""
    url = request.getfixturevalue(f"{request.param}_url")
    broker = broker_from_url(url)
    queue = f"core-test-{uuid.uuid4().hex[:8]}"
    yield broker, queue
    if request.param == "rabbitmq":
        channel = broker.channel
        channel.queue_delete(queue)
        channel.queue_delete(f"{queue}.DQ")
        channel.queue_delete(f"{queue}.XQ")
    broker.close()


def test_consumer_span_continues_the_producer_span(
    broker_and_queue: tuple[dramatiq.Broker, str], spans: InMemorySpanExporter
) -> None:
    broker, queue = broker_and_queue
    seen: list[str] = []
    done = threading.Event()

    @dramatiq.actor(broker=broker, queue_name=queue, actor_name=f"echo_{queue}")
    def echo(payload: dict[str, str]) -> None:
        seen.append(payload["text"])
        with trace.get_tracer("test").start_as_current_span("inside actor"):
            pass
        done.set()

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("http request", kind=SpanKind.SERVER) as request_span:
        message = echo.send({"text": "hello"})
    assert TRACE_CONTEXT_OPTION in message.options  # the context travels with the message

    worker = Worker(broker, worker_threads=1)
    worker.start()
    try:
        assert done.wait(15), "the worker never processed the message"
        wait_for(lambda: any(s.name == f"process {queue}" for s in spans.get_finished_spans()))
    finally:
        worker.stop()

    assert seen == ["hello"]
    by_name = {s.name: s for s in spans.get_finished_spans()}
    publish, process, inner = (
        by_name[f"publish {queue}"],
        by_name[f"process {queue}"],
        by_name["inside actor"],
    )
    trace_id = request_span.get_span_context().trace_id
    assert {publish.context.trace_id, process.context.trace_id, inner.context.trace_id} == {
        trace_id
    }
    assert publish.kind is SpanKind.PRODUCER
    assert process.kind is SpanKind.CONSUMER
    assert publish.parent is not None and process.parent is not None and inner.parent is not None
    assert publish.parent.span_id == request_span.get_span_context().span_id
    assert process.parent.span_id == publish.context.span_id
    assert inner.parent.span_id == process.context.span_id
    assert process.attributes is not None and publish.attributes is not None
    assert process.attributes["messaging.destination.name"] == queue
    assert process.attributes["messaging.operation.type"] == "process"
    assert publish.attributes["messaging.operation.type"] == "publish"
    assert process.attributes["messaging.message.id"] == message.message_id
    assert process.attributes[QUEUE_WAIT_ATTRIBUTE] >= 0


def test_failed_message_marks_the_consumer_span_as_error(
    redis_url: str, spans: InMemorySpanExporter
) -> None:
    """An actor that raises leaves an ERROR consumer span with the exception recorded."""
    broker = broker_from_url(redis_url)
    queue = f"core-fail-{uuid.uuid4().hex[:8]}"
    attempts = threading.Event()

    @dramatiq.actor(broker=broker, queue_name=queue, max_retries=0)
    def explode() -> None:
        attempts.set()
        raise RuntimeError("payment declined")

    explode.send()
    worker = Worker(broker, worker_threads=1)
    worker.start()
    try:
        assert attempts.wait(15)
        wait_for(lambda: any(s.name == f"process {queue}" for s in spans.get_finished_spans()))
    finally:
        worker.stop()
        broker.close()
    (process,) = [s for s in spans.get_finished_spans() if s.name == f"process {queue}"]
    assert process.status.status_code.name == "ERROR"
    assert any(e.name == "exception" for e in process.events)


def test_queue_wait_counts_the_time_spent_in_the_queue(
    redis_url: str, spans: InMemorySpanExporter
) -> None:
    """A message that sat 300 ms before a worker started reports at least that wait."""
    broker = broker_from_url(redis_url)
    queue = f"core-wait-{uuid.uuid4().hex[:8]}"
    done = threading.Event()

    @dramatiq.actor(broker=broker, queue_name=queue)
    def noop() -> None:
        done.set()

    noop.send()
    time.sleep(0.3)
    worker = Worker(broker, worker_threads=1)
    worker.start()
    try:
        assert done.wait(15)
        wait_for(lambda: any(s.name == f"process {queue}" for s in spans.get_finished_spans()))
    finally:
        worker.stop()
        broker.close()
    (process,) = [s for s in spans.get_finished_spans() if s.name == f"process {queue}"]
    assert process.attributes is not None
    assert process.attributes[QUEUE_WAIT_ATTRIBUTE] >= 300


def test_every_attempt_of_a_retried_message_is_in_the_trace_that_sent_it(
    broker_and_queue: tuple[dramatiq.Broker, str], spans: InMemorySpanExporter
) -> None:
    """Given an actor that fails twice and then succeeds, when a request sends it, then the
    request's trace holds three ``process`` spans numbered 1, 2, 3; each retry's PRODUCER span
    is a child of the attempt that failed, each attempt a child of its PRODUCER; the back-off
    is reported apart from the wait in the queue (so the wait does not include it)."""
    broker, queue = broker_and_queue
    calls: list[int] = []
    done = threading.Event()

    @dramatiq.actor(broker=broker, queue_name=queue, max_retries=5, min_backoff=100)
    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"attempt {len(calls)} fails")
        done.set()

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("http request", kind=SpanKind.SERVER) as request_span:
        flaky.send()
    worker = Worker(broker, worker_threads=1)
    worker.start()
    try:
        assert done.wait(30), "the third attempt never ran"
        wait_for(
            lambda: (
                len([s for s in spans.get_finished_spans() if s.name == f"process {queue}"]) == 3
            )
        )
    finally:
        worker.stop()
    finished = spans.get_finished_spans()
    mine = [s for s in finished if s.name in (f"process {queue}", f"publish {queue}")]
    assert {s.context.trace_id for s in mine} == {request_span.get_span_context().trace_id}
    by_id = {s.context.span_id: s for s in finished}
    processes = sorted(
        (s for s in mine if s.name == f"process {queue}"),
        key=lambda s: s.attributes[ATTEMPT_ATTRIBUTE],  # type: ignore[index]
    )
    assert [s.attributes[ATTEMPT_ATTRIBUTE] for s in processes] == [1, 2, 3]  # type: ignore[index]
    assert [s.status.status_code.name for s in processes] == ["ERROR", "ERROR", "UNSET"]
    publishes = [by_id[s.parent.span_id] for s in processes]  # type: ignore[union-attr]
    assert all(p.kind is SpanKind.PRODUCER for p in publishes)
    assert publishes[0].parent.span_id == request_span.get_span_context().span_id  # type: ignore[union-attr]
    for failed, retry in zip(processes, publishes[1:], strict=False):
        assert retry.parent.span_id == failed.context.span_id  # type: ignore[union-attr]
    assert processes[0].attributes[DELAY_ATTRIBUTE] == 0  # type: ignore[index]
    for publish, process in zip(publishes[1:], processes[1:], strict=True):
        attributes = process.attributes
        assert attributes is not None and publish.attributes is not None
        delay = attributes[DELAY_ATTRIBUTE]
        assert delay == publish.attributes[DELAY_ATTRIBUTE] and delay >= 100  # type: ignore[operator]
        between_ms = (process.start_time - publish.start_time) / 1e6  # type: ignore[operator]
        # the time from the retry's publish to its start is the back-off plus the queue wait
        assert abs(between_ms - (delay + attributes[QUEUE_WAIT_ATTRIBUTE])) < 25  # type: ignore[operator]


def test_a_send_that_fails_still_ends_its_producer_span(spans: InMemorySpanExporter) -> None:
    """An actor's own ``send`` on a broker that is gone (not just ``send_message``): the
    PRODUCER span is ended, as an error, instead of being left open for ever."""
    broker = broker_from_url(f"redis://127.0.0.1:{free_port()}/0")

    @dramatiq.actor(broker=broker, queue_name="nowhere")
    def job() -> None: ...

    with pytest.raises(redis.ConnectionError):
        job.send()
    (publish,) = [s for s in spans.get_finished_spans() if s.name == "publish nowhere"]
    assert publish.status.status_code.name == "ERROR"
    assert publish.end_time is not None
