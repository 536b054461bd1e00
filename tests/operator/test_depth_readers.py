"""Depth readers against real brokers, filled by real Dramatiq producers and workers."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq import Worker

from flotilla.core import broker_from_url
from flotilla.operator import DepthUnavailable, RabbitmqDepthReader, RedisDepthReader, depth_reader
from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def queue() -> str:
    return f"depth-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_broker(redis_url: str) -> Iterator[dramatiq.Broker]:
    broker = broker_from_url(redis_url)
    yield broker
    broker.close()


def test_ready_messages_are_counted(
    redis_url: str, redis_broker: dramatiq.Broker, queue: str
) -> None:
    @dramatiq.actor(broker=redis_broker, queue_name=queue)
    def job(i: int) -> None: ...

    for i in range(5):
        job.send(i)
    reading = RedisDepthReader(redis_url).read([queue])
    assert (reading.depth.ready, reading.depth.in_flight, reading.depth.delayed_due) == (5, 0, 0)
    assert reading.note is None


def test_delayed_messages_count_once_their_eta_has_passed(
    redis_url: str, redis_broker: dramatiq.Broker, queue: str
) -> None:
    @dramatiq.actor(broker=redis_broker, queue_name=queue)
    def later() -> None: ...

    later.send_with_options(delay=300)
    later.send_with_options(delay=3_600_000)
    reader = RedisDepthReader(redis_url)
    assert reader.read([queue]).depth.delayed_due == 0
    time.sleep(0.4)
    assert reader.read([queue]).depth.delayed_due == 1  # the hour-long one is not due


def test_a_delayed_message_leaves_the_eta_index_when_a_worker_has_run_it(
    redis_url: str, redis_broker: dramatiq.Broker, queue: str
) -> None:
    """The index holds what is delayed, no more: once a real worker moved the message to its
    queue and ran it, nothing of it is left to count (no leak as messages flow)."""
    ran = threading.Event()

    @dramatiq.actor(broker=redis_broker, queue_name=queue)
    def later() -> None:
        ran.set()

    later.send_with_options(delay=200)
    client = redis_broker.client  # type: ignore[attr-defined]
    index = f"{redis_broker.namespace}:{queue}.DQ.etas"  # type: ignore[attr-defined]
    assert client.zcard(index) == 1
    worker = Worker(redis_broker, worker_timeout=50)
    worker.start()
    try:
        assert ran.wait(10)
        wait_for(lambda: client.zcard(index) == 0, timeout_s=5)
        assert RedisDepthReader(redis_url).read([queue]).depth.delayed_due == 0
    finally:
        worker.stop()


def test_due_messages_of_a_plain_dramatiq_producer_are_counted_a_bounded_page_a_read(
    redis_url: str, queue: str
) -> None:
    """Another team's service enqueues with plain Dramatiq (no eta index): its delayed
    messages that are due count too. The reader indexes them itself, at most INDEX_PAGES
    pages of INDEX_BATCH a read, so 6,000 of them are all counted within a few reads and no
    read looks at more than its pages; an hour-long one is indexed but not due."""
    from dramatiq.brokers.redis import RedisBroker

    from flotilla.core import redis_namespace
    from flotilla.operator._depth import INDEX_BATCH, INDEX_PAGES

    clean, namespace = redis_namespace(redis_url)
    plain = RedisBroker(url=clean, namespace=namespace)

    @dramatiq.actor(broker=plain, queue_name=queue)
    def later() -> None: ...

    try:
        for _ in range(6000):
            later.send_with_options(delay=1)
        later.send_with_options(delay=3_600_000)
        time.sleep(0.05)
        reader = RedisDepthReader(redis_url)
        first = reader.read([queue])
        assert first.note is not None and "not indexed yet" in first.note
        readings, pages = [first], [reader.pages]
        while readings[-1].depth.delayed_due < 6000:
            readings.append(reader.read([queue]))
            pages.append(reader.pages)
            assert len(readings) <= 10, [r.depth for r in readings]
        per_read = [b - a for a, b in zip([0, *pages], pages, strict=False)]
        assert max(per_read) <= INDEX_PAGES  # bounded pages of INDEX_BATCH, never the backlog
        assert len(readings) >= 6001 // (INDEX_BATCH * INDEX_PAGES * 2)
        assert readings[-1].depth.delayed_due == 6000  # the hour-long one is not due
        while reader.read([queue]).note is not None:  # the last page, then nothing to say
            assert reader.indexed <= 6001
        assert reader.read([queue]).depth.delayed_due == 6000
    finally:
        plain.close()


def test_messages_held_by_a_live_worker_are_in_flight(
    redis_url: str, redis_broker: dramatiq.Broker, queue: str
) -> None:
    """Work being processed (and prefetched) counts: KEDA's list length would say zero."""
    release = threading.Event()
    started = threading.Semaphore(0)

    @dramatiq.actor(broker=redis_broker, queue_name=queue, max_retries=0)
    def long_job() -> None:
        started.release()
        release.wait(30)

    for _ in range(3):
        long_job.send()
    reader = RedisDepthReader(redis_url)
    worker = Worker(redis_broker, queues={queue}, worker_threads=2)
    worker.start()
    try:
        assert started.acquire(timeout=15) and started.acquire(timeout=15)
        reading = wait_for(lambda: (d := reader.read([queue]).depth).ready == 0 and d)
        assert reading.in_flight == 3  # two running, one prefetched, none left in the list
        release.set()
        wait_for(lambda: reader.read([queue]).depth.total == 0)
    finally:
        release.set()
        worker.stop()


def test_redis_down_is_a_depth_error() -> None:
    with pytest.raises(DepthUnavailable, match="redis"):
        RedisDepthReader(f"redis://127.0.0.1:{free_port()}/0").read(["orders"])


def test_rabbitmq_ready_messages_are_counted(rabbitmq_url: str, queue: str) -> None:
    broker = broker_from_url(rabbitmq_url)
    try:

        @dramatiq.actor(broker=broker, queue_name=queue)
        def job(i: int) -> None: ...

        for i in range(4):
            job.send(i)
        reader = depth_reader(rabbitmq_url)
        assert isinstance(reader, RabbitmqDepthReader)
        reading = wait_for(lambda: (r := reader.read([queue])).depth.ready == 4 and r)
        if reading.note is not None:  # no management API here: say what is not counted
            assert "in-flight and delayed messages are not counted" in reading.note
    finally:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)
        broker.close()


def test_rabbitmq_down_is_a_depth_error() -> None:
    reader = RabbitmqDepthReader(
        f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        management_url=f"http://127.0.0.1:{free_port()}",
    )
    with pytest.raises(DepthUnavailable, match="rabbitmq"):
        reader.read(["orders"])


def test_unknown_scheme_has_no_reader() -> None:
    with pytest.raises(ValueError, match="redis:// or amqp://"):
        depth_reader("kafka://x")
