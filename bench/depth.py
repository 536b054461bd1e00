"""What a Redis depth read costs as the delayed backlog grows, and what other clients feel.

    uv run python bench/depth.py                      # 100 and 1,000,000 delayed messages
    uv run python bench/depth.py --delayed 100 20000 1000000
    uv run python bench/depth.py --plain 100000       # a plain Dramatiq producer's backlog

For each backlog, a throwaway Redis is filled in Dramatiq's layout: as many ready messages as
delayed ones up to 20,000, and the delayed ones half due and half for later, each with its
body in ``{queue}.DQ.msgs`` and its eta in the platform's index (``flotilla.core.EtaIndex``).
Two readers are timed side by side on the same data: the operator's reader (one ``ZCOUNT`` on
the index) and the previous script, which decoded every delayed message's JSON for its eta
(kept here for the comparison). "Blocks others" is the script's own run time inside Redis,
from its SLOWLOG: Redis runs one command at a time, so every other client (the edge's rate
limit, the brokers) waits that long behind a read. The worst of the rounds is shown.

``--plain N``: N delayed messages (all due) from a producer without the index, and the reads
it takes the reader to index them itself, a page at a time: how many reads, and the longest
any single Redis command of a read ran (what other clients waited behind it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flotilla.core import eta_index_key
from flotilla.operator import RedisDepthReader
from tests.support.redis_server import throwaway_redis

QUEUE = "orders"
NS = "dramatiq"

#: the reader before the eta index: every delayed message decoded on every read
DECODING_SCRIPT = """
local ns, now = ARGV[1], tonumber(ARGV[2])
local queue = ARGV[3]
local due = 0
local ids = redis.call('LRANGE', ns .. ':' .. queue .. '.DQ', 0, -1)
local messages = ns .. ':' .. queue .. '.DQ.msgs'
for _, id in ipairs(ids) do
  local data = redis.call('HGET', messages, id)
  if data then
    local ok, message = pcall(cjson.decode, data)
    if ok and message.options and tonumber(message.options.eta or 0) <= now then
      due = due + 1
    end
  end
end
return due
"""


def fill(client: redis.Redis[bytes], delayed: int, *, indexed: bool = True) -> None:
    now = int(time.time() * 1000)
    ready = min(delayed, 20_000)
    pipe = client.pipeline(transaction=False)
    for i in range(ready):
        mid = uuid.uuid4().hex
        body = {"queue_name": QUEUE, "actor_name": "fulfil_order", "args": [i], "kwargs": {},
                "options": {}, "message_id": mid, "message_timestamp": now}  # fmt: skip
        pipe.rpush(f"{NS}:{QUEUE}", mid)
        pipe.hset(f"{NS}:{QUEUE}.msgs", mid, json.dumps(body))
        if i % 5000 == 4999:
            pipe.execute()
    for i in range(delayed):
        mid = uuid.uuid4().hex
        eta = now - 1000 if i % 2 == 0 or not indexed else now + 3_600_000
        body = {"queue_name": f"{QUEUE}.DQ", "actor_name": "fulfil_order", "args": [i],
                "kwargs": {}, "options": {"eta": eta}, "message_id": mid,
                "message_timestamp": now}  # fmt: skip
        pipe.rpush(f"{NS}:{QUEUE}.DQ", mid)
        pipe.hset(f"{NS}:{QUEUE}.DQ.msgs", mid, json.dumps(body))
        if indexed:
            pipe.zadd(eta_index_key(NS, f"{QUEUE}.DQ"), {mid: eta})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def server_time_ms(client: redis.Redis[bytes]) -> float:
    """How long the last script ran inside Redis (SLOWLOG, every command logged): the time
    every other client waited, since Redis runs one command at a time."""
    entries = client.slowlog_get(20)
    scripts = [e for e in entries if e["command"].split(b" ")[0].upper() in (b"EVALSHA", b"EVAL")]
    return float(scripts[0]["duration"]) / 1000 if scripts else float("nan")


def measure(delayed: int, rounds: int) -> dict[str, float]:
    with throwaway_redis() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=300)
        fill(client, delayed)
        reader = RedisDepthReader(f"{server.url}?namespace={NS}")
        decoding = client.register_script(DECODING_SCRIPT)
        results: dict[str, float] = {"delayed": delayed}
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("lua-time-limit", 600_000)  # NOTE: the old script runs for seconds
        for name, read in (
            ("index", lambda: reader.read([QUEUE]).depth.delayed_due),
            ("decoding", lambda: decoding(args=[NS, int(time.time() * 1000), QUEUE])),
        ):
            times, inside, due = [], [], 0
            for _ in range(rounds):
                client.slowlog_reset()
                started = time.perf_counter()
                due = int(read())
                times.append((time.perf_counter() - started) * 1000)
                inside.append(server_time_ms(client))
            results[f"{name}_ms"] = statistics.median(times)
            results[f"{name}_blocks_ms"] = max(inside)
            results[f"{name}_due"] = due
        reader.close()
        client.close()
    return results


def measure_plain(delayed: int) -> None:
    """Index a plain producer's backlog read by read; print each read's figures."""
    with throwaway_redis() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=300)
        fill(client, delayed, indexed=False)
        reader = RedisDepthReader(f"{server.url}?namespace={NS}")
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 1000)
        reads, longest, total_ms = 0, 0.0, 0.0
        while True:
            client.slowlog_reset()
            started = time.perf_counter()
            reading = reader.read([QUEUE])
            total_ms += (time.perf_counter() - started) * 1000
            reads += 1
            entries = [
                e
                for e in client.slowlog_get(1000)
                if not e["command"].upper().startswith(b"SLOWLOG")
            ]
            longest = max([longest, *(float(e["duration"]) / 1000 for e in entries)])
            if reading.note is None:
                break
        print("\n| plain delayed, all due | reads to count them all | due counted | "
              "longest Redis command of any read | mean read |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|")
        print(f"| {delayed:,} | {reads} | {reading.depth.delayed_due:,} | {longest:.2f} ms | "
              f"{total_ms / reads:.2f} ms |")  # fmt: skip
        reader.close()
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delayed", type=int, nargs="+", default=[100, 1_000_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--plain", type=int, help="a plain producer's backlog instead")
    args = parser.parse_args()
    if args.plain:
        measure_plain(args.plain)
        return 0
    rows = []
    for count in args.delayed:
        print(f"filling {count:,} delayed messages", flush=True)
        rows.append(measure(count, args.rounds))
    base = rows[0]["index_ms"]
    print("\n| delayed | due counted (index / decoding) | index read | vs smallest | "
          "others blocked (index) | decoding read | others blocked (decoding) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {int(r['delayed']):,} | {int(r['index_due']):,} / {int(r['decoding_due']):,} | "
            f"{r['index_ms']:.2f} ms | {r['index_ms'] / base:.2f}x | "
            f"{r['index_blocks_ms']:.2f} ms | {r['decoding_ms']:.1f} ms | "
            f"{r['decoding_blocks_ms']:.1f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
