"""The parts of Dramatiq that are not its public API and that ``flotilla.core`` relies on.

``flotilla.core._held_redis`` subclasses Dramatiq's private ``_RedisConsumer`` (the consumer that
remembers what it holds and waits on the doorbell), calls Dramatiq's ``dispatch.lua`` itself
(the heartbeat sweep) and reads attributes of ``RedisBroker`` and ``Worker`` that Dramatiq does
not document. A Dramatiq upgrade that changes any of them fails here, naming what changed and
what of ours depends on it, instead of somewhere in the middle of a chaos run.
"""

from __future__ import annotations

import inspect
import re

import dramatiq
import pytest
from dramatiq.brokers import redis as dramatiq_redis

pytestmark = pytest.mark.unit

#: a broker that never connects: building one and its consumer touches no server
NOWHERE = "redis://127.0.0.1:1/0"


def changed(what: str, ours: str) -> str:
    return (
        f"Dramatiq {dramatiq.__version__} changed {what}, which {ours} relies on: "
        "read the new Dramatiq code and adapt it, or pin the version that works"
    )


@pytest.fixture
def broker() -> dramatiq_redis.RedisBroker:
    return dramatiq_redis.RedisBroker(url=NOWHERE)


def test_the_private_redis_consumer_still_has_what_the_held_consumer_overrides_and_reads(
    broker: dramatiq_redis.RedisBroker,
) -> None:
    ours = "flotilla.core._held_redis.HeldConsumer"
    consumer_class = getattr(dramatiq_redis, "_RedisConsumer", None)
    assert consumer_class is not None, changed("dramatiq.brokers.redis._RedisConsumer", ours)
    parameters = list(inspect.signature(consumer_class.__init__).parameters)
    assert parameters[:5] == ["self", "broker", "queue_name", "prefetch", "timeout"], changed(
        f"_RedisConsumer.__init__'s parameters (now {parameters})", ours
    )
    consumer = consumer_class(broker, "surface", 2, 1000)
    for attribute in (
        "message_cache", "misses", "outstanding_message_count", "prefetch", "queue_name",
        "timeout", "broker",
    ):  # fmt: skip
        assert hasattr(consumer, attribute), changed(f"_RedisConsumer.{attribute}", ours)
    assert isinstance(consumer.message_cache, list), changed("_RedisConsumer.message_cache", ours)
    for method in ("__next__", "ack", "nack", "requeue", "close"):
        assert callable(getattr(consumer_class, method, None)), changed(
            f"_RedisConsumer.{method}", ours
        )


def test_the_redis_broker_still_has_the_attributes_the_heartbeat_sweep_reads(
    broker: dramatiq_redis.RedisBroker,
) -> None:
    ours = "flotilla.core._held_redis (requeue_dead_workers, HeldConsumer)"
    for attribute in ("client", "namespace", "broker_id", "heartbeat_timeout", "dead_message_ttl"):
        assert hasattr(broker, attribute), changed(f"RedisBroker.{attribute}", ours)
    assert "dispatch" in broker.scripts, changed("RedisBroker.scripts['dispatch']", ours)
    assert callable(getattr(broker, "_max_unpack_size", None)), changed(
        "RedisBroker._max_unpack_size()", ours
    )
    assert callable(broker.do_requeue), changed("RedisBroker.do_requeue (do_* to dispatch)", ours)


def test_dispatch_lua_still_takes_its_arguments_in_the_order_the_sweep_passes_them() -> None:
    """The sweep calls ``dispatch`` with ``requeue, now, queue, worker id, heartbeat timeout,
    dead message ttl, do maintenance, max unpack size``."""
    scripts = getattr(dramatiq_redis, "_scripts", {})  # NOTE: what RedisBroker registers
    assert "dispatch" in scripts, changed(
        "dramatiq.brokers.redis._scripts['dispatch']", "the sweep"
    )
    source = scripts["dispatch"].decode()
    found = dict(re.findall(r"^local (\w+) = ARGV\[(\d+)\]", source, re.M))
    expected = {
        "command": "1", "timestamp": "2", "queue_name": "3", "worker_id": "4",
        "heartbeat_timeout": "5", "dead_message_ttl": "6", "do_maintenance": "7",
        "max_unpack_size": "8",
    }  # fmt: skip
    assert {k: found.get(k) for k in expected} == expected, changed(
        "dispatch.lua's arguments", "flotilla.core._held_redis.requeue_dead_workers"
    )
    assert 'command == "requeue"' in source, changed("dispatch.lua's requeue command", "the sweep")


def test_the_worker_still_lists_its_consumer_and_worker_threads(
    broker: dramatiq_redis.RedisBroker,
) -> None:
    ours = "flotilla.core._worker's heartbeat (is every thread of the worker alive?)"
    worker = dramatiq.Worker(broker, worker_threads=1)
    assert isinstance(worker.consumers, dict), changed("Worker.consumers", ours)
    assert isinstance(worker.workers, list), changed("Worker.workers", ours)
