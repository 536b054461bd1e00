"""Dramatiq jobs/s for a no-op actor: the platform's broker (tracing on) against bare Dramatiq.

A third variant makes the spans but exports none, to show what span creation costs apart from
encoding them for export.

Both variants use the same real Redis and the same worker settings; each round runs each
variant in a fresh process (tracing is process-global), alternating, and the table shows the
median jobs/s of each and the ratio. With tracing on, spans go through the SDK's
BatchSpanProcessor into an exporter that encodes them to OTLP protobuf and drops the bytes, so
the cost of building and serializing every span is counted but no network is involved.

    uv run python bench/worker.py [--messages 5000] [--rounds 3] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._support import trace_to_encode_and_drop

REDIS_URL = os.environ.get("FLOTILLA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def _measure(variant: str, messages: int, threads: int) -> dict[str, float]:
    import dramatiq
    from dramatiq import Worker

    if variant in ("platform", "unexported"):
        from flotilla.core import broker_from_url, configure_telemetry

        if variant == "platform":
            trace_to_encode_and_drop("bench-worker")
        else:
            os.environ["OTEL_TRACES_EXPORTER"] = "none"
            configure_telemetry("bench-worker")
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        broker = broker_from_url(f"{REDIS_URL}?namespace={namespace}")
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=REDIS_URL, namespace=f"bench-{uuid.uuid4().hex[:8]}")

    remaining = [messages]
    done = threading.Event()
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, queue_name="bench", max_retries=0)
    def noop(i: int) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()

    started = time.perf_counter()
    for i in range(messages):
        noop.send(i)
    enqueued = time.perf_counter()
    worker = Worker(broker, worker_threads=threads)
    worker.start()
    if not done.wait(600):
        raise SystemExit(f"{variant}: only {messages - remaining[0]} of {messages} processed")
    finished = time.perf_counter()
    worker.stop()
    broker.client.delete(*broker.client.keys(f"{broker.namespace}:*") or ["none"])
    return {
        "enqueue_per_s": messages / (enqueued - started),
        "process_per_s": messages / (finished - enqueued),
        "total_per_s": messages / (finished - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--variant", choices=["platform", "unexported", "bare"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.variant:
        print(json.dumps(_measure(args.variant, args.messages, args.threads)))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    variants = ("bare", "unexported", "platform")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with console.status("measuring") as status:
        for round_no in range(1, args.rounds + 1):
            for variant in variants:
                status.update(f"round {round_no}/{args.rounds}: {variant}")
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--variant",
                        variant,
                        "--messages",
                        str(args.messages),
                        "--threads",
                        str(args.threads),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))

    table = Table(
        title=f"Dramatiq no-op actor, {args.messages} messages, real Redis, "
        f"{args.threads} worker threads, median of {args.rounds} rounds"
    )
    table.add_column("metric")
    table.add_column("bare Dramatiq", justify="right")
    table.add_column("platform, spans not exported", justify="right")
    table.add_column("platform, spans encoded (OTLP)", justify="right")
    for metric in ("enqueue_per_s", "process_per_s", "total_per_s"):
        bare = statistics.median(r[metric] for r in results["bare"])
        cells = [f"{bare:,.0f}"]
        for variant in variants[1:]:
            value = statistics.median(r[metric] for r in results[variant])
            cells.append(f"{value:,.0f} ({value / bare:.2f}x)")
        table.add_row(metric.replace("_per_s", " jobs/s"), *cells)
    console.print(table)


if __name__ == "__main__":
    main()
