"""The Redis broker's platform parts: a consumer that remembers which messages it holds (so
orphans are requeued) and waits on its queue's doorbell, and the broker mixin that rings the
doorbells, requeues orphans and sweeps the acks of workers whose heartbeat stopped.

``_brokers.broker_from_url`` mixes :class:`PlatformRedis` into Dramatiq's ``RedisBroker``.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from functools import cache
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation

logger = logging.getLogger(__name__)


def _redis_id(message: Any) -> str:
    return str(message.options["redis_message_id"])


@cache
def _held_consumer() -> Any:
    """Dramatiq's Redis consumer, telling its broker which fetched messages this process holds.

    Dramatiq's fetch moves message ids into ``{ns}:__acks__.{worker}.{queue}`` inside Redis
    and hands them to the consumer in its reply. Two paths leave ids there that no thread of
    the process holds, while the process keeps beating (so Dramatiq's maintenance, which only
    requeues the acks of dead workers, never touches them): a fetch whose reply is lost (Redis
    stopped or the link broke after the script ran; redis-py then retries the fetch, which
    takes new ids), and a consumer restarted after a connection error, which drops its delay
    queue. The held set is what :meth:`requeue_orphans` compares Redis's set with.

    It also waits for work on the queue's doorbell (:meth:`PlatformRedis.ring`) instead of
    Dramatiq's sleeps, which grow to the worker's idle timeout (1 s) while a queue is empty:
    a message sent to an idle worker is taken at once, not at its next poll.

    Dramatiq's private surface this relies on (and :meth:`requeue_dead_workers` with it) is
    pinned by ``tests/core/test_dramatiq_surface.py``: an upgrade that changes it fails there.
    """
    from dramatiq.brokers.redis import _RedisConsumer
    from dramatiq.errors import ConnectionClosed as closed_error
    from redis import exceptions as redis_errors

    consumer: Any = _RedisConsumer  # Dramatiq's, untyped
    connection_closed: Any = closed_error

    class HeldConsumer(consumer):  # type: ignore[misc]
        misses: int

        def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
            super().__init__(broker, queue_name, prefetch, timeout)
            self.held: set[str] = broker.held_messages(queue_name)
            self.delayed: set[str] = set()
            broker.consumers_alive.add(self)

        def __next__(self) -> Any:
            if (
                not self.message_cache
                and self.misses
                and (self.outstanding_message_count < self.prefetch)
            ):
                # NOTE: the last fetch found nothing: wait for a ring (or the idle timeout,
                # so delayed messages and a stop are still seen), then fetch at once.
                try:
                    self.broker.wait_for_ring(self.queue_name, self.timeout)
                except redis_errors.ConnectionError as exc:
                    raise connection_closed(exc) from None
                self.misses = 0
            message = super().__next__()
            if message is not None:
                self.held.add(_redis_id(message))
                if "eta" in message.options:
                    self.delayed.add(_redis_id(message))
            return message

        def _settled(self, message: Any) -> None:
            self.held.discard(_redis_id(message))
            self.delayed.discard(_redis_id(message))

        def ack(self, message: Any) -> None:
            super().ack(message)
            self._settled(message)

        def nack(self, message: Any) -> None:
            super().nack(message)
            self._settled(message)

        def requeue(self, messages: Any) -> None:
            messages = list(messages)
            super().requeue(messages)
            for message in messages:
                self._settled(message)

        def close(self) -> None:
            # NOTE: on a connection error Dramatiq's consumer thread replaces its delay queue
            # before closing the consumer: the delayed messages it held are no longer held.
            # (On a stop they were requeued just before: forgetting them changes nothing.)
            self.held.difference_update(self.delayed)
            self.delayed.clear()
            # NOTE: Dramatiq's consumer thread leaves its loop on a stop (or a connection
            # error) with whatever its last fetch returned still in the cache, and nothing
            # requeues those: they sat in the acks set of a worker that was gone until
            # maintenance happened to run. Put them back now; if Redis cannot be reached,
            # the sweeps requeue them (orphans of a live worker, or a dead worker's).
            leftovers = self.cached_ids()
            self.message_cache.clear()
            if leftovers:
                try:
                    self.broker.do_requeue(self.queue_name, *sorted(leftovers))
                except (redis_errors.RedisError, OSError) as exc:
                    logger.info("could not requeue %d fetched message(s): %s", len(leftovers), exc)
            super().close()

        def cached_ids(self) -> set[str]:
            """Ids fetched but not yet decoded by the consumer thread."""
            from dramatiq import Message

            ids = set()
            for data in list(self.message_cache):
                with contextlib.suppress(Exception):
                    ids.add(_redis_id(Message.decode(data)))
            return ids

    return HeldConsumer


#: How many rings a queue's doorbell keeps while no consumer waits (each wakes one consumer)
DOORBELL_RINGS = 64


class PlatformRedis:
    """What the platform adds to Dramatiq's Redis broker: a doorbell per queue, rung on every
    enqueue, that idle consumers wait on; and the requeue of messages Redis says this worker
    holds and the process does not."""

    namespace: str
    broker_id: str
    client: Any

    def doorbell_key(self, queue: str) -> str:
        """``{ns}:__bells__.{queue}``: a list a consumer pops, blocking, while it has no work."""
        return f"{self.namespace}:__bells__.{queue}"

    def ring(self, queue: str) -> None:
        """Wake one consumer waiting on ``queue`` (best effort: consumers also poll)."""
        key = self.doorbell_key(queue)
        try:
            # NOTE: the doorbell is the broker's own bookkeeping, rung after the PRODUCER span
            # ended: a span of its own in every order's trace would say only that it rang
            with suppress_instrumentation():
                self.client.pipeline(transaction=False).lpush(key, 1).ltrim(
                    key, 0, DOORBELL_RINGS - 1
                ).execute()
        except Exception as exc:  # redis errors and OSError: the message itself is enqueued
            logger.debug("could not ring %s: %s", key, exc)

    def wait_for_ring(self, queue: str, timeout_ms: int) -> None:
        """Block until ``queue`` is rung or ``timeout_ms`` has passed."""
        self.client.blpop([self.doorbell_key(queue)], timeout=max(timeout_ms, 10) / 1000)

    def _init_orphans(self) -> None:
        self._held: dict[str, set[str]] = {}
        self._suspects: dict[str, set[str]] = {}
        self.consumers_alive: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def consumer_class(self) -> Any:
        return _held_consumer()

    def held_messages(self, queue: str) -> set[str]:
        """The ids (Redis's) of ``queue``'s messages this process fetched and has not settled,
        shared by the consumers a consumer thread creates one after another."""
        return self._held.setdefault(queue, set())

    def requeue_orphans(self) -> dict[str, list[str]]:
        """Requeue the messages Redis lists as this worker's and no thread of it holds.

        An id counts as an orphan only when two calls in a row find it (the first call may
        see a fetch whose reply is still on its way), so call it every few seconds.
        Returns the requeued ids by queue.

        Raises:
            redis.RedisError: Redis could not be asked (nothing was requeued).
        """
        requeued: dict[str, list[str]] = {}
        for queue, held in list(self._held.items()):
            known = set(held)  # NOTE: before Redis's: an id fetched meanwhile is only suspect
            for consumer in list(self.consumers_alive):
                if consumer.queue_name == queue:
                    known |= consumer.cached_ids()
            key = f"{self.namespace}:__acks__.{self.broker_id}.{queue}"
            orphans = {member.decode() for member in self.client.smembers(key)} - known
            confirmed = orphans & self._suspects.get(queue, set())
            self._suspects[queue] = orphans - confirmed
            if confirmed:
                ids = sorted(confirmed)
                getattr(self, "do_requeue")(queue, *ids)  # noqa: B009  # Dramatiq's dispatch
                logger.warning(
                    "requeued %d message(s) of %s that Redis held for this worker and no "
                    "thread did (a lost fetch reply or a dropped delay queue)",
                    len(ids),
                    queue,
                    extra={"queue": queue, "message_ids": ids},
                )
                requeued[queue] = ids
        return requeued

    def requeue_dead_workers(self) -> dict[str, int]:
        """Requeue, on the queues this process consumes, what workers whose heartbeat is
        overdue held (a SIGKILLed pod's messages), now.

        Dramatiq does this in its "maintenance", which runs on a random few broker calls
        (``maintenance_chance``): on a quiet queue that can be minutes after the heartbeat
        timeout. Here it runs on every sweep, through Dramatiq's own script (atomic, so two
        workers sweeping at once requeue each message once). Returns how many messages were
        requeued by queue.

        Raises:
            redis.RedisError: Redis could not be asked.
        """
        from dramatiq.common import current_millis

        broker: Any = self  # NOTE: a RedisBroker's attributes (scripts, heartbeat_timeout)
        now = current_millis()
        heartbeats = f"{self.namespace}:__heartbeats__"
        overdue = now - broker.heartbeat_timeout
        dead = [w.decode() for w in self.client.zrangebyscore(heartbeats, 0, overdue)]
        requeued: dict[str, int] = {}
        for queue in list(self._held) if dead else []:
            keys = [f"{self.namespace}:__acks__.{worker}.{queue}" for worker in dead]
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.scard(key)
            held_by_dead = sum(pipe.execute())
            if not held_by_dead:
                continue
            broker.scripts["dispatch"](
                keys=[self.namespace],
                # NOTE: Dramatiq's dispatch arguments, maintenance forced on (the 1); the
                # command, a requeue of no ids, does nothing else.
                args=[
                    "requeue", now, queue, self.broker_id, broker.heartbeat_timeout,
                    broker.dead_message_ttl, 1, broker._max_unpack_size(),
                ],
            )  # fmt: skip
            logger.warning(
                "requeued %d message(s) of %s held by workers whose heartbeat stopped",
                held_by_dead,
                queue,
                extra={"queue": queue, "dead_workers": dead},
            )
            requeued[queue] = held_by_dead
        return requeued
