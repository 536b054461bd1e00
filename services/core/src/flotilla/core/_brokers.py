"""Dramatiq brokers built from a URL: ``redis://…`` or ``amqp://…``.

Every broker the platform builds carries :class:`~flotilla.core.TraceContextMiddleware` first,
:class:`~flotilla.core.MessagingMetrics` second, then Dramatiq's default middleware and
``CurrentMessage``. Its connections have connect and
read timeouts, so a broker that hangs (rather than refuses) fails a call instead of stalling a
request or the outbox relay for ever, and each worker names itself in the broker after its pod
(or local replica), so the operator can tell which pod holds which messages.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dramatiq
from dramatiq.middleware import CurrentMessage, default_middleware

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
from ._held_redis import PlatformRedis
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


@cache
def _traced(system: str) -> Any:
    """Dramatiq's broker class for ``system``, whose enqueue always ends its PRODUCER span.

    Built on first use: importing pika and Dramatiq's brokers costs every process start.
    On Redis it also rings queues and knows which messages it holds (:class:`PlatformRedis`).
    """
    if system == "redis":
        from dramatiq.brokers.redis import RedisBroker

        redis_broker: Any = RedisBroker  # partly untyped

        class TracedRedisBroker(PlatformRedis, redis_broker):  # type: ignore[misc]
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
