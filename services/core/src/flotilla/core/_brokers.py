"""Dramatiq brokers built from a URL: ``redis://…`` or ``amqp://…``.

Every broker the platform builds carries :class:`~flotilla.core.TraceContextMiddleware` first,
:class:`~flotilla.core.MessagingMetrics` second, then Dramatiq's default middleware and
``CurrentMessage``. Its connections have connect and
read timeouts, so a broker that hangs (rather than refuses) fails a call instead of stalling a
request or the outbox relay for ever, and each worker names itself in the broker after its pod
(or local replica), so the operator can tell which pod holds which messages.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dramatiq
from dramatiq.middleware import CurrentMessage, default_middleware
from opentelemetry.instrumentation.utils import suppress_instrumentation

from ._broker_urls import (
    BLOCKED_TIMEOUT_S,
    HEARTBEAT_TIMEOUT_MS,
    MAINTENANCE_CHANCE,
    READ_TIMEOUT_S,
    BrokerUnavailable,
    broker_system,
    redis_client,
    redis_namespace,
    worker_identity,
)
from ._messaging_metrics import MessagingMetrics
from ._tracing_middleware import TraceContextMiddleware

logger = logging.getLogger(__name__)

#: Redis: the sorted set of a delay queue's message ids by eta (ms), beside Dramatiq's own keys
ETA_INDEX_SUFFIX = ".etas"


def eta_index_key(namespace: str, delay_queue: str) -> str:
    """``{ns}:{queue}.DQ.etas``: where :class:`EtaIndex` keeps a delay queue's etas."""
    return f"{namespace}:{delay_queue}{ETA_INDEX_SUFFIX}"


class EtaIndex(dramatiq.Middleware):
    """Redis: each delayed message's eta in a sorted set, from its enqueue to its ack.

    Dramatiq keeps a delayed message's eta only inside its JSON body, so counting the due ones
    meant decoding every delayed message on every depth read (160-190 ms with 60,000 messages,
    blocking every other Redis client meanwhile). With the index, the operator's depth reader
    counts them with one ``ZCOUNT`` (O(log n)). The index is best effort: a failed write is
    logged and the reader says how many delayed messages it could not place.
    """

    # NOTE: broker is a RedisBroker (namespace, client): only Redis brokers get this middleware
    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        eta = message.options.get("eta")
        if delay is None or eta is None or not message.queue_name.endswith(".DQ"):
            return
        key = eta_index_key(broker.namespace, message.queue_name)
        try:
            broker.client.zadd(key, {message.message_id: int(eta)})
        except Exception:  # redis errors and OSError: the message itself is enqueued
            logger.warning("could not index the eta of %s", message.message_id, exc_info=True)

    def _forget(self, broker: Any, message: Any) -> None:
        if message.queue_name.endswith(".DQ"):
            key = eta_index_key(broker.namespace, message.queue_name)
            try:
                broker.client.zrem(key, message.message_id)
            except Exception:
                logger.warning("could not unindex %s", message.message_id, exc_info=True)

    def after_ack(self, broker: Any, message: Any) -> None:
        self._forget(broker, message)

    def after_nack(self, broker: Any, message: Any) -> None:
        self._forget(broker, message)


def _end_abandoned_producer(broker: dramatiq.Broker, message: Any, error: BaseException) -> None:
    for middleware in broker.middleware:
        if isinstance(middleware, TraceContextMiddleware):
            middleware.abandon_enqueue(message, error)


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

    It also waits for work on the queue's doorbell (:meth:`_PlatformRedis.ring`) instead of
    Dramatiq's sleeps, which grow to the worker's idle timeout (1 s) while a queue is empty:
    a message sent to an idle worker is taken at once, not at its next poll.
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


class _PlatformRedis:
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


@cache
def _traced(system: str) -> Any:
    """Dramatiq's broker class for ``system``, whose enqueue always ends its PRODUCER span.

    Built on first use: importing pika and Dramatiq's brokers costs every process start.
    On Redis it also rings queues and knows which messages it holds (:class:`_PlatformRedis`).
    """
    if system == "redis":
        from dramatiq.brokers.redis import RedisBroker

        redis_broker: Any = RedisBroker  # partly untyped

        class TracedRedisBroker(_PlatformRedis, redis_broker):  # type: ignore[misc]
            def __init__(self, **options: Any) -> None:
                self._init_orphans()
                super().__init__(**options)

            def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
                sent = super().enqueue(message, delay=delay)
                self.ring(sent.queue_name)  # the delay queue's name for a delayed message
                return sent

        base: Any = TracedRedisBroker
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        base = RabbitmqBroker

    class Traced(base):  # type: ignore[misc]
        def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
            try:
                return super().enqueue(message, delay=delay)
            except BaseException as exc:
                _end_abandoned_producer(self, message, exc)
                raise

    Traced.__name__ = Traced.__qualname__ = f"Traced{base.__name__.removeprefix('Traced')}"
    return Traced


def broker_from_url(url: str, *, tracing: bool = True) -> dramatiq.Broker:
    """Build a Dramatiq broker for ``url``.

    A ``namespace`` query parameter on a Redis URL sets the key prefix (default
    ``dramatiq``), so several platforms can share one Redis. RabbitMQ publishes with
    publisher confirms: an enqueue returns once the server has the message.

    Args:
        url: ``redis://host:port/db[?namespace=…]`` or ``amqp://user:pass@host:port/vhost``.
        tracing: add the trace-context and the metrics middleware (benchmarks compare
            without them).

    Raises:
        BrokerURLError: for any other scheme.
    """
    system = broker_system(url)
    # NOTE: CurrentMessage too: an actor needs its message's id (stable across retries) to
    # claim work for it, as orders' fulfilment does.
    middleware: list[Any] = [m() for m in default_middleware] + [CurrentMessage()]
    if tracing:
        # NOTE: first, so its after_* hooks run last (see _tracing_middleware); the metrics
        # next, so theirs run after Retries has decided between a retry and a failure.
        middleware.insert(0, MessagingMetrics(system=system))
        middleware.insert(0, TraceContextMiddleware(system=system))
    identity = worker_identity()
    if system == "redis":
        middleware.append(EtaIndex())
        clean, namespace = redis_namespace(url)
        broker: dramatiq.Broker = _traced("redis")(
            client=redis_client(clean),
            namespace=namespace,
            middleware=middleware,
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=MAINTENANCE_CHANCE,
        )
        broker.broker_id = identity  # type: ignore[attr-defined]  # RedisBroker's, untyped
        return broker
    rabbitmq: Any = _traced("rabbitmq")(url=url, middleware=middleware, confirm_delivery=True)
    given = rabbitmq.parameters
    query = parse_qs(urlsplit(url).query)
    for parameters in given if isinstance(given, list) else [given]:
        if "socket_timeout" not in query:
            parameters.socket_timeout = READ_TIMEOUT_S
        if "blocked_connection_timeout" not in query:
            parameters.blocked_connection_timeout = BLOCKED_TIMEOUT_S
        # NOTE: the management API shows this name, so a pod's unacknowledged messages can be
        # told apart from another's, as on Redis.
        parameters.client_properties = {
            **(parameters.client_properties or {}),
            "connection_name": identity,
        }
    result: dramatiq.Broker = rabbitmq
    return result


def broker_kind(broker: dramatiq.Broker) -> str:
    """``"redis"`` or ``"rabbitmq"``: the system a built broker speaks."""
    return "redis" if hasattr(broker, "namespace") and hasattr(broker, "client") else "rabbitmq"


def broker_holds(broker: dramatiq.Broker, queue: str, reference: str) -> bool:
    """Whether the broker may still hold the message ``reference`` (``Published.reference``).

    On Redis the answer is exact: Dramatiq keeps a message's body in ``{ns}:{queue}.msgs``
    (or the delay queue's) from its enqueue until it is acknowledged, in flight included. On
    RabbitMQ a message cannot be looked up: any ready message in the queue or its delay queue
    counts as "may hold" (a message prefetched by a worker is not seen).

    Raises:
        BrokerUnavailable: the broker could not be asked.
    """
    try:
        if broker_kind(broker) == "redis":
            prefix = f"{broker.namespace}:{queue}"  # type: ignore[attr-defined]
            client: Any = broker.client  # type: ignore[attr-defined]
            return bool(
                client.hexists(f"{prefix}.msgs", reference)
                or client.hexists(f"{prefix}.DQ.msgs", reference)
            )
        channel: Any = broker.channel  # type: ignore[attr-defined]  # RabbitmqBroker's
        names = (queue, f"{queue}.DQ")
        ready = sum(channel.queue_declare(q, passive=True).method.message_count for q in names)
        return bool(ready > 0)
    except Exception as exc:  # redis, pika and OSError: all mean "cannot tell now"
        raise BrokerUnavailable(f"could not ask the broker about {queue!r}: {exc}") from exc
