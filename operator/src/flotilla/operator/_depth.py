"""Reading queue depth the way Dramatiq holds its messages.

Redis (Dramatiq's RedisBroker layout, namespace ``dramatiq`` by default):
- ready: the ids in the list ``{ns}:{queue}``;
- in flight: the ids in ``{ns}:__acks__.{worker}.{queue}`` of every worker whose heartbeat in
  ``{ns}:__heartbeats__`` is recent (fetched, not yet acknowledged: being processed or
  prefetched); a dead worker's acks are not counted, Dramatiq requeues them;
- delayed and due: messages of ``{queue}.DQ`` (waiting in its list, or held by a worker until
  their eta) whose ``eta`` has passed, counted in the sorted set ``{queue}.DQ.etas`` that the
  platform's brokers keep (``flotilla.core.EtaIndex``) with one ``ZCOUNT``: a read costs the
  same for 100 and for 1,000,000 delayed messages. Delayed messages from a producer without
  the index (another team's service on plain Dramatiq) are indexed by the reader itself, at
  most ``INDEX_PAGES`` pages of ``INDEX_BATCH`` a read (``HSCAN`` pages of ``.DQ.msgs``,
  their etas added with ``ZADD NX``), so a large backlog of them is counted over a few reads
  while no single command blocks Redis for more than a small page; until then the reading's
  note says how many wait.
One Lua script reads all of it atomically in one round trip.

RabbitMQ: ready and unacknowledged counts from the management API when it answers; otherwise
the AMQP passive declare gives the ready count only, and the reading says what is missing.

Both also tell which pod holds how many unacknowledged messages (:meth:`in_flight_by_pod`):
every worker names itself in the broker after its pod (``flotilla.core.worker_identity``), so
the operator can make Kubernetes remove idle pods first when it scales in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import redis

from flotilla.core import pod_of_worker, redis_namespace

from ._policy import QueueDepth


class DepthUnavailable(RuntimeError):
    """The broker could not be read; the message says why."""


@dataclass(frozen=True)
class DepthReading:
    depth: QueueDepth
    note: str | None = None  # what this reading could not see, if anything


_REDIS_DEPTH = """
local ns, now, heartbeat_timeout = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ready, in_flight, delayed_due, unindexed = 0, 0, 0, 0
local live = redis.call('ZRANGEBYSCORE', ns .. ':__heartbeats__', now - heartbeat_timeout, '+inf')
for q = 4, #ARGV do
  local queue = ARGV[q]
  ready = ready + redis.call('LLEN', ns .. ':' .. queue)
  for _, worker in ipairs(live) do
    in_flight = in_flight + redis.call('SCARD', ns .. ':__acks__.' .. worker .. '.' .. queue)
  end
  -- every delayed message's body stays in .DQ.msgs until its ack; its eta is in .DQ.etas
  local delayed = redis.call('HLEN', ns .. ':' .. queue .. '.DQ.msgs')
  local etas = ns .. ':' .. queue .. '.DQ.etas'
  local due = redis.call('ZCOUNT', etas, '-inf', now)
  delayed_due = delayed_due + math.min(due, delayed)
  unindexed = unindexed + math.max(0, delayed - redis.call('ZCARD', etas))
end
return {ready, delayed_due, in_flight, unindexed}
"""


_REDIS_HELD = """
local ns, now, heartbeat_timeout = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local live = redis.call('ZRANGEBYSCORE', ns .. ':__heartbeats__', now - heartbeat_timeout, '+inf')
local held = {}
for _, worker in ipairs(live) do
  local count = 0
  for q = 4, #ARGV do
    count = count + redis.call('SCARD', ns .. ':__acks__.' .. worker .. '.' .. ARGV[q])
  end
  table.insert(held, worker)
  table.insert(held, count)
end
return held
"""


def _per_pod(pairs: list[tuple[str, int]]) -> dict[str, int]:
    held: dict[str, int] = {}
    for worker, count in pairs:
        pod = pod_of_worker(worker)
        if pod:
            held[pod] = held.get(pod, 0) + int(count)
    return held


#: a page of delayed messages looked at to index those a producer left unindexed (one HSCAN
#: of about this many entries: about 1.3 ms inside Redis, bench/depth.py --plain)
INDEX_BATCH = 250
#: pages one read may index at most: each command stays small, a read's work stays bounded
INDEX_PAGES = 8


class RedisDepthReader:
    """Depth of Dramatiq queues on Redis (``redis://host:port/db[?namespace=…]``)."""

    def __init__(self, url: str, *, heartbeat_timeout_ms: int = 60_000) -> None:
        clean, self.namespace = redis_namespace(url)
        self.client = redis.Redis.from_url(clean, socket_timeout=2, socket_connect_timeout=2)
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self._script = self.client.register_script(_REDIS_DEPTH)
        self._held = self.client.register_script(_REDIS_HELD)
        self._cursors: dict[str, int] = {}  # queue -> where its next HSCAN page starts
        self.indexed = 0  # etas this reader added (delayed messages of plain producers)
        self.pages = 0  # HSCAN pages it read to find them

    def _index_some(self, queues: list[str], unindexed: int) -> int:
        """Index up to INDEX_PAGES pages of the queues' delayed messages; how many it added."""
        added = 0
        for _ in range(INDEX_PAGES):
            added += sum(self._index_page(queue) for queue in queues)
            if added >= unindexed or all(self._cursors.get(q, 0) == 0 for q in queues):
                break  # NOTE: all placed, or a whole pass over every queue is done
        return added

    def _index_page(self, queue: str) -> int:
        """Index the etas of one page of ``queue``'s delayed messages; how many it added."""
        prefix = f"{self.namespace}:{queue}.DQ"
        cursor, page = self.client.hscan(
            f"{prefix}.msgs", self._cursors.get(queue, 0), count=INDEX_BATCH
        )
        self._cursors[queue] = int(cursor)
        self.pages += 1
        etas: dict[str, int] = {}
        for body in page.values():
            try:
                message = json.loads(body)
                etas[str(message["message_id"])] = int(message["options"]["eta"])
            except (ValueError, KeyError, TypeError):
                continue  # NOTE: not a JSON Dramatiq message with an eta: nothing to place
        # NOTE: NX: an eta the platform's brokers indexed already stays as it is
        mapping: Any = etas  # redis' stubs type the mapping narrower than it takes
        added = int(self.client.zadd(f"{prefix}.etas", mapping, nx=True)) if etas else 0
        self.indexed += added
        return added

    def in_flight_by_pod(self, queues: list[str]) -> dict[str, int]:
        """Unacknowledged messages of ``queues`` held by each live worker's pod.

        Raises:
            DepthUnavailable: Redis cannot be read.
        """
        now_ms = int(time.time() * 1000)
        try:
            flat = self._held(args=[self.namespace, now_ms, self.heartbeat_timeout_ms, *queues])
        except (redis.RedisError, OSError) as exc:
            raise DepthUnavailable(f"redis: {exc}") from exc
        pairs = [
            (w.decode() if isinstance(w, bytes) else str(w), int(c))
            for w, c in zip(flat[::2], flat[1::2], strict=True)
        ]
        return _per_pod(pairs)

    def read(self, queues: list[str]) -> DepthReading:
        """Raises DepthUnavailable when Redis cannot be read."""
        now_ms = int(time.time() * 1000)
        args = [self.namespace, now_ms, self.heartbeat_timeout_ms, *queues]
        try:
            ready, due, in_flight, unindexed = self._script(args=args)
            if int(unindexed) and self._index_some(queues, int(unindexed)):
                ready, due, in_flight, unindexed = self._script(args=args)
        except (redis.RedisError, OSError) as exc:
            raise DepthUnavailable(f"redis: {exc}") from exc
        note = None
        if int(unindexed):
            note = (
                f"{int(unindexed)} delayed messages not indexed yet (sent without "
                f"flotilla.core's EtaIndex): up to {INDEX_BATCH * INDEX_PAGES} are indexed a "
                "read, and counted once indexed"
            )
        depth = QueueDepth(ready=int(ready), delayed_due=int(due), in_flight=int(in_flight))
        return DepthReading(depth, note)

    def close(self) -> None:
        self.client.close()


class RabbitmqDepthReader:
    """Depth of Dramatiq queues on RabbitMQ.

    Args:
        url: the AMQP URL (``amqp://user:pass@host:5672/vhost``).
        management_url: the management API (default: same host, port 15672, same user).
    """

    def __init__(self, url: str, *, management_url: str | None = None) -> None:
        self.url = url
        parts = urlsplit(url)
        self.vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        self.auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        self.management_url = management_url or f"http://{parts.hostname}:15672"

    def _management(self, queues: list[str]) -> QueueDepth:
        ready = unacked = delayed = 0
        vhost = quote(self.vhost, safe="")
        with httpx.Client(base_url=self.management_url, auth=self.auth, timeout=2) as client:
            for queue in queues:
                for name, is_delay in ((queue, False), (f"{queue}.DQ", True)):
                    answer = client.get(f"/api/queues/{vhost}/{quote(name, safe='')}")
                    if answer.status_code == 404:
                        continue
                    answer.raise_for_status()
                    body = answer.json()
                    if is_delay:
                        # NOTE: delayed messages are held unacked by workers until their eta;
                        # the API cannot tell which are due, so none are counted as due.
                        delayed += int(body.get("messages", 0))
                    else:
                        ready += int(body.get("messages_ready", 0))
                        unacked += int(body.get("messages_unacknowledged", 0))
        return QueueDepth(ready=ready, delayed_due=0, in_flight=unacked)

    def in_flight_by_pod(self, queues: list[str]) -> dict[str, int]:
        """Unacknowledged messages held by each pod's connections (management API).

        RabbitMQ counts unacknowledged messages per channel, not per queue, so a pod's count
        is all it holds on this vhost.

        Raises:
            DepthUnavailable: the management API does not answer.
        """
        vhost = quote(self.vhost, safe="")
        try:
            with httpx.Client(base_url=self.management_url, auth=self.auth, timeout=2) as client:
                connections = client.get(f"/api/vhosts/{vhost}/connections").raise_for_status()
                channels = client.get(f"/api/vhosts/{vhost}/channels").raise_for_status()
        except httpx.HTTPError as exc:
            raise DepthUnavailable(f"rabbitmq management API: {exc}") from exc
        names = {
            c.get("name"): (c.get("client_properties") or {}).get("connection_name", "")
            for c in connections.json()
        }
        pairs = [
            (
                names.get((ch.get("connection_details") or {}).get("name"), ""),
                int(ch.get("messages_unacknowledged", 0)),
            )
            for ch in channels.json()
        ]
        return _per_pod(pairs)

    def _passive(self, queues: list[str]) -> int:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            ready = 0
            for queue in queues:
                try:
                    ready += channel.queue_declare(queue, passive=True).method.message_count
                except pika.exceptions.ChannelClosedByBroker:
                    channel = connection.channel()  # the queue does not exist yet: 0
            return ready
        finally:
            connection.close()

    def read(self, queues: list[str]) -> DepthReading:
        """Raises DepthUnavailable when neither the management API nor AMQP answers."""
        try:
            return DepthReading(self._management(queues))
        except httpx.HTTPError as management_error:
            try:
                ready = self._passive(queues)
            except Exception as exc:  # pika raises many unrelated types for "unreachable"
                raise DepthUnavailable(f"rabbitmq: {exc or type(exc).__name__}") from exc
            return DepthReading(
                QueueDepth(ready=ready),
                note=f"management API unreachable ({type(management_error).__name__}): "
                "in-flight and delayed messages are not counted",
            )

    def close(self) -> None:
        return None


def depth_reader(
    url: str, *, management_url: str | None = None
) -> RedisDepthReader | RabbitmqDepthReader:
    """The reader for a broker URL (``redis://`` or ``amqp://``; RabbitMQ's management API at
    ``management_url``, by default the broker's host on port 15672)."""
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        return RedisDepthReader(url)
    if scheme in ("amqp", "amqps"):
        return RabbitmqDepthReader(url, management_url=management_url)
    raise ValueError(f"no depth reader for {scheme!r} URLs; use redis:// or amqp://")
