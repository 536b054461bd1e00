"""Brokers from URLs, enqueue failures and the worker's graceful drain."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flotilla.contracts import FulfilOrder
from flotilla.core import (
    BrokerUnavailable,
    BrokerURLError,
    TraceContextMiddleware,
    broker_from_url,
    broker_holds,
    build_message,
    drain_timeout_for,
    pod_of_worker,
    publish,
    run_worker,
    send_message,
    worker_identity,
)
from tests.support.ports import free_port
from tests.support.servers import silent_server
from tests.support.slow_proxy import slow_proxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_urls_choose_the_broker_and_every_broker_traces() -> None:
    redis_broker = broker_from_url("redis://127.0.0.1:6379/3?namespace=shop")
    assert isinstance(redis_broker, RedisBroker)
    assert redis_broker.namespace == "shop"
    assert any(isinstance(m, TraceContextMiddleware) for m in redis_broker.middleware)
    bare = broker_from_url("redis://127.0.0.1:6379/3", tracing=False)
    assert not any(isinstance(m, TraceContextMiddleware) for m in bare.middleware)


def test_amqp_url_builds_a_rabbitmq_broker(rabbitmq_url: str) -> None:
    broker = broker_from_url(rabbitmq_url)
    try:
        assert isinstance(broker, RabbitmqBroker)
        middleware = next(m for m in broker.middleware if isinstance(m, TraceContextMiddleware))
        assert middleware.system == "rabbitmq"
    finally:
        broker.close()


def test_unknown_scheme_is_refused_with_the_supported_forms() -> None:
    with pytest.raises(BrokerURLError, match=r"redis://host:6379/0 or amqp://"):
        broker_from_url("kafka://127.0.0.1:9092")


def test_message_schema_decides_queue_actor_and_payload() -> None:
    order_id = uuid.uuid4()
    message = build_message(FulfilOrder(order_id=order_id))
    assert message.queue_name == "orders"
    assert message.actor_name == "fulfil_order"
    assert message.args == ({"order_id": str(order_id)},)
    assert FulfilOrder.from_payload(message.args[0]).order_id == order_id


def test_enqueue_on_an_unreachable_broker_raises_our_error_and_an_error_span(
    spans: InMemorySpanExporter,
) -> None:
    broker = broker_from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerUnavailable, match="could not enqueue on 'orders'"):
        send_message(broker, FulfilOrder(order_id=uuid.uuid4()))
    (publish,) = [s for s in spans.get_finished_spans() if s.name == "publish orders"]
    assert publish.status.status_code.name == "ERROR"


def test_worker_drains_on_stop_finishing_the_message_it_holds(redis_url: str) -> None:
    """Given a message being processed, when the worker is told to stop, it finishes it first."""
    broker = broker_from_url(redis_url)
    queue = f"core-drain-{uuid.uuid4().hex[:8]}"
    started, finished = threading.Event(), threading.Event()

    @dramatiq.actor(broker=broker, queue_name=queue)
    def slow_job() -> None:
        started.set()
        time.sleep(1.0)
        finished.set()

    slow_job.send()
    stop = threading.Event()
    runner = threading.Thread(
        target=run_worker, args=(broker,), kwargs={"queues": [queue], "threads": 1, "stop": stop}
    )
    runner.start()
    assert started.wait(15)
    stop.set()
    runner.join(30)
    assert not runner.is_alive()
    assert finished.is_set(), "the worker exited before finishing the job it held"


def test_the_drain_waits_as_long_as_the_longest_actor_may_run(redis_url: str) -> None:
    """Given actors with 30 s and 90 s time limits on two queues, a worker on both drains for
    95 s, one on the first for 35 s; an actor without a limit counts Dramatiq's 10 minutes."""
    broker = broker_from_url(redis_url)

    @dramatiq.actor(broker=broker, queue_name="fast", time_limit=30_000)
    def quick() -> None: ...

    @dramatiq.actor(broker=broker, queue_name="slow", time_limit=90_000)
    def long() -> None: ...

    @dramatiq.actor(broker=broker, queue_name="unbounded")
    def forever() -> None: ...

    assert drain_timeout_for(broker, ["fast", "slow"]) == 95
    assert drain_timeout_for(broker, ["fast"]) == 35
    assert drain_timeout_for(broker, ["unbounded"]) == 605
    broker.close()


def test_a_running_worker_keeps_its_liveness_probe_green(redis_url: str) -> None:
    """The heartbeat a worker pod's liveness probe reads (python -m flotilla.core.alive)."""
    from flotilla.core import alive
    from flotilla.core._worker import HEARTBEAT_FILE

    HEARTBEAT_FILE.unlink(missing_ok=True)
    assert alive.main(["60"]) == 1  # no heartbeat yet: not alive
    broker = broker_from_url(redis_url)

    @dramatiq.actor(broker=broker, queue_name=f"alive-{uuid.uuid4().hex[:6]}")
    def nothing() -> None: ...

    stop = threading.Event()
    runner = threading.Thread(
        target=run_worker, args=(broker,), kwargs={"threads": 1, "stop": stop}, daemon=True
    )
    runner.start()
    try:
        wait_for(lambda: alive.main(["60"]) == 0, timeout_s=20)
    finally:
        stop.set()
        runner.join(30)
    assert alive.main(["0"]) == 1  # a stale heartbeat fails the probe


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_broker_that_hangs_fails_the_enqueue_instead_of_hanging_it(scheme: str) -> None:
    """Given a broker that accepts connections and never answers, an enqueue gives up with
    our error (read and connect timeouts) instead of blocking the relay or a request for ever."""
    outcome: list[BaseException] = []

    def enqueue() -> None:
        try:
            send_message(broker_from_url(url), FulfilOrder(order_id=uuid.uuid4()))
        except BaseException as exc:
            outcome.append(exc)

    with silent_server() as hung:
        url = (
            f"redis://127.0.0.1:{hung.port}/0"
            if scheme == "redis"
            else f"amqp://guest:guest@127.0.0.1:{hung.port}/"
        )
        attempt = threading.Thread(target=enqueue, daemon=True)
        attempt.start()
        attempt.join(60)
    assert not attempt.is_alive(), "the enqueue is still waiting on a silent broker"
    assert len(outcome) == 1 and isinstance(outcome[0], BrokerUnavailable)


def test_the_broker_says_whether_it_still_holds_a_message(redis_url: str) -> None:
    """On Redis: held while queued and while in flight, gone once processed, gone when the
    server lost its data (a restart without persistence)."""
    broker = broker_from_url(redis_url)
    started, release = threading.Event(), threading.Event()

    @dramatiq.actor(broker=broker, queue_name=FulfilOrder.queue, actor_name=FulfilOrder.actor)
    def fulfil_order(payload: dict[str, str]) -> None:
        started.set()
        release.wait(10)

    try:
        first = publish(broker, FulfilOrder(order_id=uuid.uuid4())).reference
        assert broker_holds(broker, "orders", first)
        worker = Worker(broker, worker_threads=1)
        worker.start()
        try:
            assert started.wait(10)
            assert broker_holds(broker, "orders", first)  # in flight: not acked yet
            release.set()
            wait_for(lambda: not broker_holds(broker, "orders", first))
        finally:
            worker.stop()
        second = publish(broker, FulfilOrder(order_id=uuid.uuid4())).reference
        assert broker_holds(broker, "orders", second)
        broker.flush_all()  # what a Redis restart without persistence does to the queues
        assert not broker_holds(broker, "orders", second)
    finally:
        broker.close()


def test_workers_name_themselves_after_their_pod_in_the_broker(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOTILLA_WORKER_NAME", "orders-worker-7d9f-x2k4p")
    broker = broker_from_url(redis_url)
    assert pod_of_worker(broker.broker_id) == "orders-worker-7d9f-x2k4p"  # type: ignore[attr-defined]
    assert pod_of_worker(worker_identity()) != pod_of_worker("")
    assert pod_of_worker("2f1c0c0e-uuid-of-a-plain-dramatiq-worker") == ""


@contextmanager
def _sweeping_worker(broker: dramatiq.Broker, queue: str) -> Iterator[None]:
    """``run_worker`` on ``queue`` in a thread, one worker thread, sweeping every second."""
    stop = threading.Event()
    options = {"queues": [queue], "threads": 1, "stop": stop, "orphan_sweep_s": 1.0}
    runner = threading.Thread(target=run_worker, args=(broker,), kwargs=options)
    runner.start()
    try:
        yield
    finally:
        stop.set()
        runner.join(30)


KILLABLE_WORKER = """
import pathlib, sys, time, dramatiq
from flotilla.core import broker_from_url, run_worker
url, queue, marks = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
broker = broker_from_url(url)

@dramatiq.actor(broker=broker, queue_name=queue, actor_name="slow_job")
def slow_job(n):
    (marks / f"started-{n}").touch()
    time.sleep(120)

run_worker(broker, queues=[queue], threads=2)
"""


def test_messages_a_sigkilled_worker_held_are_delivered_again(
    redis_url: str, tmp_path: Path
) -> None:
    """A worker killed with SIGKILL (the OOM killer) while holding messages never acks them:
    another worker's sweep requeues them once the dead one's heartbeat is overdue (15 s), with
    Dramatiq's random maintenance turned off. Nothing is lost."""
    queue = f"core-kill-{uuid.uuid4().hex[:8]}"
    broker = broker_from_url(redis_url)
    done: set[int] = set()

    @dramatiq.actor(broker=broker, queue_name=queue, actor_name="slow_job")
    def slow_job(n: int) -> None:
        done.add(n)

    victim = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_WORKER, redis_url, queue, str(tmp_path)],
    )
    try:
        for n in range(2):
            slow_job.send(n)
        wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 2, timeout_s=30)
        victim.kill()
        victim.wait(10)
        broker.maintenance_chance = 0  # type: ignore[attr-defined]
        with _sweeping_worker(broker, queue):
            wait_for(lambda: done == {0, 1}, timeout_s=60)
    finally:
        victim.kill()
        broker.close()


def _acks(broker: dramatiq.Broker, worker_id: str, queue: str) -> set[str]:
    """The ids Redis lists as fetched by ``worker_id`` and not settled."""
    client: Any = broker.client  # type: ignore[attr-defined]
    key = f"{broker.namespace}:__acks__.{worker_id}.{queue}"  # type: ignore[attr-defined]
    return {member.decode() for member in client.smembers(key)}


def _ready(broker: dramatiq.Broker, queue: str) -> int:
    """How many messages wait in ``queue`` for a fetch."""
    client: Any = broker.client  # type: ignore[attr-defined]
    return int(client.llen(f"{broker.namespace}:{queue}"))  # type: ignore[attr-defined]


def test_a_stopping_consumer_puts_back_what_its_last_fetch_brought(redis_url: str) -> None:
    """A worker told to stop leaves Dramatiq's consumer loop right after handing on one
    message, with the rest of its last fetch still in the consumer's cache. Closing the
    consumer (what the stop does next) puts those back on the queue: they are not left in the
    acks set of a worker that is about to be gone."""
    queue = f"core-cache-{uuid.uuid4().hex[:8]}"
    broker = broker_from_url(redis_url)

    @dramatiq.actor(broker=broker, queue_name=queue, actor_name="cached")
    def cached(n: int) -> None: ...

    for n in range(5):
        cached.send(n)
    consumer = broker.consume(queue, prefetch=10, timeout=100)
    first = next(consumer)  # one fetch took all five; four wait in the cache
    assert first is not None
    worker_id = broker.broker_id  # type: ignore[attr-defined]
    assert len(_acks(broker, worker_id, queue)) == 5
    consumer.close()
    assert _ready(broker, queue) == 4
    assert _acks(broker, worker_id, queue) == {first.options["redis_message_id"]}
    broker.close()


def test_what_a_dead_worker_held_is_requeued_at_the_next_sweep(redis_url: str) -> None:
    """A worker's heartbeat stopped (SIGKILL) while Redis listed three messages as its own.
    The next sweep of a live worker on that queue requeues them, instead of Dramatiq's
    maintenance, which runs on a random 2 % of broker calls (on a quiet queue: minutes)."""
    queue = f"core-dead-{uuid.uuid4().hex[:8]}"
    dead = broker_from_url(redis_url)
    dead.broker_id = f"dead-{uuid.uuid4().hex[:6]}"  # type: ignore[attr-defined]

    @dramatiq.actor(broker=dead, queue_name=queue, actor_name="held")
    def held(n: int) -> None: ...

    for n in range(3):
        held.send(n)
    fetched = dead.do_fetch(queue, 10)  # type: ignore[attr-defined]  # and never acked
    assert len(fetched) == 3
    client: Any = dead.client  # type: ignore[attr-defined]
    heartbeats = f"{dead.namespace}:__heartbeats__"  # type: ignore[attr-defined]
    client.zadd(heartbeats, {dead.broker_id: 1})  # type: ignore[attr-defined]  # beat long ago
    live = broker_from_url(redis_url)
    live.held_messages(queue)  # type: ignore[attr-defined]  # a consumer of this queue
    live.maintenance_chance = 0  # type: ignore[attr-defined]  # only the sweep may requeue
    assert live.requeue_dead_workers() == {queue: 3}  # type: ignore[attr-defined]
    assert _ready(live, queue) == 3
    assert not _acks(live, dead.broker_id, queue)  # type: ignore[attr-defined]
    assert live.requeue_dead_workers() == {}  # type: ignore[attr-defined]  # nothing twice
    assert _ready(live, queue) == 3
    live.close()
    dead.close()


def _redis_port(redis_url: str) -> int:
    return urlsplit(redis_url).port or 6379


def _worker_through(proxy_port: int, redis_url: str) -> dramatiq.Broker:
    """A broker whose connections go through the proxy on ``proxy_port``, same namespace."""
    parts = urlsplit(redis_url)
    return broker_from_url(urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy_port}")))


def test_messages_whose_fetch_reply_was_lost_are_processed_once(redis_url: str) -> None:
    """Redis ran a worker's fetch (moving two messages to the worker's acks set) and the reply
    never arrived (the link broke mid-reply, as when Redis is stopped). The worker lives on and
    keeps beating, so Dramatiq's maintenance, which requeues only dead workers' messages, never
    would: the worker's own sweep finds them held by no thread and requeues them. The fault is
    a real TCP proxy that forwards the fetch and drops its answer."""
    queue = f"core-lost-{uuid.uuid4().hex[:8]}"
    port = _redis_port(redis_url)
    done: list[int] = []

    with slow_proxy(port) as proxy:
        broker = _worker_through(proxy.port, redis_url)

        @dramatiq.actor(broker=broker, queue_name=queue, actor_name="counted")
        def counted(n: int) -> None:
            done.append(n)

        for n in range(5):
            counted.send(n)
        marker = f"\r\n{queue}\r\n".encode()
        proxy.drop_reply_when = lambda chunk: b"\r\nfetch\r\n" in chunk and marker in chunk
        with _sweeping_worker(broker, queue):
            wait_for(lambda: len(done) >= 5, timeout_s=30)
            time.sleep(2.5)  # two more sweeps: nothing is requeued twice
        assert proxy.replies_dropped == 1
    assert sorted(done) == [0, 1, 2, 3, 4], "each message exactly once"


def test_a_delayed_message_a_broken_connection_dropped_is_processed(redis_url: str) -> None:
    """A worker holds a delayed message (a retry's backoff) in its consumer's delay queue when
    its connection to Redis breaks for seconds: Dramatiq's consumer thread replaces the delay
    queue when it reconnects, leaving the message in the worker's acks set with no thread
    holding it. The sweep requeues it and it runs once, when due."""
    queue = f"core-delay-{uuid.uuid4().hex[:8]}"
    port = _redis_port(redis_url)
    done: list[int] = []

    with slow_proxy(port) as proxy:
        broker = _worker_through(proxy.port, redis_url)

        @dramatiq.actor(broker=broker, queue_name=queue, actor_name="later")
        def later(n: int) -> None:
            done.append(n)

        with _sweeping_worker(broker, queue):
            later.send_with_options(args=(7,), delay=6_000)
            held = broker.held_messages(f"{queue}.DQ")  # type: ignore[attr-defined]
            wait_for(lambda: len(held) == 1, timeout_s=10)  # in the worker's delay queue
            proxy.refuse_for(8.0)  # longer than redis-py's retries
            wait_for(lambda: done, timeout_s=40)
            time.sleep(2.5)
    assert done == [7]


def _taken_once_sent(consumer: Any, send: Callable[[], Any], *, after_s: float = 0.0) -> None:
    """A thread iterates ``consumer`` while ``send`` (after ``after_s``) sends one message: the
    consumer takes that message within 10 s. The consumer is closed after."""
    taken: list[Any] = []

    def take() -> None:
        while not taken:
            message = next(consumer)
            if message is not None:
                taken.append(message)

    threading.Thread(target=take, daemon=True).start()
    time.sleep(after_s)
    sent = send()
    try:
        wait_for(lambda: taken, timeout_s=10)
        assert taken[0].message_id == sent.message_id
        consumer.ack(taken[0])
    finally:
        consumer.close()


def test_an_idle_consumer_takes_a_message_when_it_is_sent_not_at_its_next_poll(
    redis_url: str,
) -> None:
    """An idle consumer waits on its queue's doorbell, which every enqueue rings. Here it has
    been idle long enough (``misses``) that Dramatiq's back-off alone would sleep 15-30 s (half
    to all of its 30 s idle timeout) before fetching again; the message sent meanwhile is
    taken well before that."""
    queue = f"core-bell-{uuid.uuid4().hex[:8]}"
    broker = broker_from_url(redis_url)

    @dramatiq.actor(broker=broker, queue_name=queue, actor_name="rung")
    def rung() -> None: ...

    consumer = broker.consume(queue, prefetch=1, timeout=30_000)
    consumer.misses = 20  # type: ignore[attr-defined]  # as after a long idle spell
    _taken_once_sent(consumer, rung.send, after_s=0.5)  # sent while the consumer waits
    broker.close()


def test_a_message_from_a_producer_that_never_rings_is_taken_at_the_next_poll(
    redis_url: str,
) -> None:
    """Plain Dramatiq (no doorbell) enqueues on the platform's queue: the idle consumer still
    fetches at its idle timeout (1 s here)."""
    queue = f"core-quiet-{uuid.uuid4().hex[:8]}"
    broker = broker_from_url(redis_url)
    parts = urlsplit(redis_url)
    plain = RedisBroker(
        url=urlunsplit(parts._replace(query="")), namespace=parts.query.split("=", 1)[1]
    )

    @dramatiq.actor(broker=plain, queue_name=queue, actor_name="quiet")
    def quiet() -> None: ...

    consumer = broker.consume(queue, prefetch=1, timeout=1_000)
    consumer.misses = 20  # type: ignore[attr-defined]  # idle for long
    _taken_once_sent(consumer, quiet.send)
    broker.close()
    plain.close()


def test_a_worker_told_to_consume_a_queue_no_actor_is_declared_on_refuses_to_start() -> None:
    """A queue renamed on one side only would leave the worker consuming nothing, silently."""
    from dramatiq.brokers.stub import StubBroker

    broker = StubBroker()
    dramatiq.actor(lambda payload: None, actor_name="work", queue_name="orders", broker=broker)
    stop = threading.Event()
    stop.set()
    with pytest.raises(ValueError, match=r"no actor is declared on \['order'\]"):
        run_worker(broker, queues=["order"], stop=stop)
