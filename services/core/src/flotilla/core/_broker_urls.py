"""Broker URLs, worker names and connection settings, importable without a broker client.

The edge and the operator read Redis and name workers' pods but never build a Dramatiq broker;
this module is what they take (``flotilla-core[redis]``), and :mod:`._brokers` builds on it
(``flotilla-core[messaging]``).
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

if TYPE_CHECKING:
    import redis

#: Connect and read timeouts of every broker connection (seconds). No Redis command Dramatiq
#: sends blocks on the server (its consumers poll), so a read that takes this long means the
#: server or the network is gone.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
#: RabbitMQ: how long a publisher waits on a connection the server has blocked (a memory or
#: disk alarm) before the publish fails; pika waits for ever by default.
BLOCKED_TIMEOUT_S = 30.0
#: Redis: a worker without a heartbeat this long is dead, and the messages it held go back to
#: their queue. Every consumer of a worker beats at each fetch (at least every second while
#: idle; its delay-queue consumer is nearly always idle) and at each ack, so 15 s is long
#: enough for a live worker and much shorter than Dramatiq's 60 s.
HEARTBEAT_TIMEOUT_MS = 15_000
#: Redis: per million broker calls, how many also requeue dead workers' messages (Dramatiq's
#: default, 1,000, can leave a SIGKILLed worker's messages waiting for minutes on a quiet
#: platform).
MAINTENANCE_CHANCE = 20_000
#: The environment variable a local replica's name comes in (``flotilla up`` sets it); in a
#: pod, ``HOSTNAME`` is the pod's name.
WORKER_NAME_VARIABLE = "FLOTILLA_WORKER_NAME"


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


def worker_name() -> str:
    """The name of this process's pod (``HOSTNAME``) or local replica."""
    return (
        os.environ.get(WORKER_NAME_VARIABLE) or os.environ.get("HOSTNAME") or socket.gethostname()
    )


def worker_identity(name: str | None = None) -> str:
    """The id this process uses in the broker: ``<pod or replica name>/<random>``.

    Dramatiq's Redis broker keys a worker's unacknowledged messages by this id
    (``{ns}:__acks__.{id}.{queue}``); starting it with the pod's name is what lets the operator
    count each pod's in-flight messages (:func:`pod_of_worker`).
    """
    return f"{name or worker_name()}/{uuid.uuid4().hex[:12]}"


def pod_of_worker(identity: str) -> str:
    """The pod (or local replica) a broker worker id belongs to; ``""`` for a foreign id."""
    name, slash, _ = identity.rpartition("/")
    return name if slash else ""


def redis_client(url: str, **options: Any) -> redis.Redis[bytes]:
    """A redis-py client with the platform's connect and read timeouts (overridable)."""
    import redis  # NOTE: the redis extra; imported here so naming needs no client

    options.setdefault("socket_connect_timeout", CONNECT_TIMEOUT_S)
    options.setdefault("socket_timeout", READ_TIMEOUT_S)
    options.setdefault("socket_keepalive", True)
    options.setdefault("health_check_interval", 30)
    client: redis.Redis[bytes] = redis.Redis.from_url(url, **options)
    return client
