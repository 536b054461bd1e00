"""Dramatiq brokers built from a URL: ``redis://…`` or ``amqp://…``.

Every broker the platform builds carries :class:`~flotilla.core.TraceContextMiddleware` first,
then Dramatiq's default middleware and ``CurrentMessage``. Its connections have connect and
read timeouts, so a broker that hangs (rather than refuses) fails a call instead of stalling a
request or the outbox relay for ever, and each worker names itself in the broker after its pod
(or local replica), so the operator can tell which pod holds which messages.
"""

from __future__ import annotations

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
from ._tracing_middleware import TraceContextMiddleware


def _end_abandoned_producer(broker: dramatiq.Broker, message: Any, error: BaseException) -> None:
    for middleware in broker.middleware:
        if isinstance(middleware, TraceContextMiddleware):
            middleware.abandon_enqueue(message, error)


@cache
def _traced(system: str) -> Any:
    """Dramatiq's broker class for ``system``, whose enqueue always ends its PRODUCER span.

    Built on first use: importing pika and Dramatiq's brokers costs every process start.
    """
    if system == "redis":
        from dramatiq.brokers.redis import RedisBroker as base
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker as base  # type: ignore[assignment]

    class Traced(base):
        def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
            try:
                return super().enqueue(message, delay=delay)
            except BaseException as exc:
                _end_abandoned_producer(self, message, exc)
                raise

    Traced.__name__ = Traced.__qualname__ = f"Traced{base.__name__}"
    return Traced


def broker_from_url(url: str, *, tracing: bool = True) -> dramatiq.Broker:
    """Build a Dramatiq broker for ``url``.

    A ``namespace`` query parameter on a Redis URL sets the key prefix (default
    ``dramatiq``), so several platforms can share one Redis. RabbitMQ publishes with
    publisher confirms: an enqueue returns once the server has the message.

    Args:
        url: ``redis://host:port/db[?namespace=…]`` or ``amqp://user:pass@host:port/vhost``.
        tracing: add the trace-context middleware (benchmarks compare without it).

    Raises:
        BrokerURLError: for any other scheme.
    """
    system = broker_system(url)
    # NOTE: CurrentMessage too: an actor needs its message's id (stable across retries) to
    # claim work for it, as orders' fulfilment does.
    middleware: list[Any] = [m() for m in default_middleware] + [CurrentMessage()]
    if tracing:
        # NOTE: first, so its after_* hooks run last (see _tracing_middleware).
        middleware.insert(0, TraceContextMiddleware(system=system))
    identity = worker_identity()
    if system == "redis":
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
