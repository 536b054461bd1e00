"""Dramatiq brokers built from a URL: ``redis://…`` or ``amqp://…``.

Every broker the platform builds carries Dramatiq's default middleware (minus Prometheus,
whose per-host HTTP server clashes with several worker processes) plus
:class:`~flotilla.core.TraceContextMiddleware`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import dramatiq
from dramatiq.middleware import default_middleware

from ._tracing_middleware import TraceContextMiddleware


class BrokerURLError(ValueError):
    """The broker URL names a scheme the platform does not support."""


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached to enqueue a message."""


def broker_system(url: str) -> str:
    """The messaging system a URL names: ``"redis"`` or ``"rabbitmq"``."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return "redis"
    if scheme in ("amqp", "amqps"):
        return "rabbitmq"
    raise BrokerURLError(
        f"unsupported broker URL scheme {scheme!r}: use redis://host:6379/0 or "
        f"amqp://user:password@host:5672/"
    )


def redis_namespace(url: str) -> tuple[str, str]:
    """Split a Redis broker URL into the URL redis-py takes and Dramatiq's key namespace.

    ``redis://h:6379/0?namespace=shop`` → (``redis://h:6379/0``, ``shop``); without the
    parameter the namespace is Dramatiq's default, ``dramatiq``.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    namespace = query.pop("namespace", ["dramatiq"])[0]
    rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), namespace


def broker_from_url(url: str, *, tracing: bool = True) -> dramatiq.Broker:
    """Build a Dramatiq broker for ``url``.

    A ``namespace`` query parameter on a Redis URL sets the key prefix (default
    ``dramatiq``), so several platforms can share one Redis.

    Args:
        url: ``redis://host:port/db[?namespace=…]`` or ``amqp://user:pass@host:port/vhost``.
        tracing: add the trace-context middleware (benchmarks compare without it).

    Raises:
        BrokerURLError: for any other scheme.
    """
    system = broker_system(url)
    middleware: list[Any] = [m() for m in default_middleware]
    if tracing:
        middleware.append(TraceContextMiddleware(system=system))
    if system == "redis":
        from dramatiq.brokers.redis import RedisBroker

        clean, namespace = redis_namespace(url)
        # dramatiq's RedisBroker has no annotations
        return RedisBroker(  # type: ignore[no-untyped-call]
            url=clean, namespace=namespace, middleware=middleware
        )
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url, middleware=middleware)
