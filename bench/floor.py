"""The least an order can cost: the blocks an order is built of, one at a time, in CPU ms.

    uv run python bench/floor.py [--n 3000] [--rounds 3] [--only pg-]

An order through the platform is a handful of kinds of work, each repeated: HTTP requests
between FastAPI services (server and client side), SQLite transactions through the
SQLAlchemy ORM, Dramatiq messages over Redis, and spans received by the console. Each block
runs here alone, ``--n`` times, in a fresh process per variant (tracing is process-global),
with the platform's own set-up (``configure_telemetry``, ``instrument_fastapi``,
``service_client``, ``make_engine``, ``broker_from_url``); the CPU time of every process
involved is read (``time.process_time`` for this one, ``/proc`` for a server) and divided by
the operations done. With tracing on, spans go through the SDK's BatchSpanProcessor into an
exporter that encodes them to OTLP protobuf and drops the bytes (no network).

Variants side by side: tracing on and off; a ``def`` endpoint (FastAPI runs it on its thread
pool) and an ``async def`` one, both traced by contrib's FastAPI instrumentation as the
services are; the ``def`` one with FastAPI's own telemetry switched off, and traced by
FastAPI's own OpenTelemetry support instead of contrib's; an ORM insert and a Core insert;
a PostgreSQL transaction and read through psycopg on threads (as the services run) and through
the async drivers psycopg-async and asyncpg on one event loop; a Dramatiq message processed
by a ``def`` actor and by an ``async def`` one. ``--only`` measures the blocks
whose name starts with it (``pg-``: the drivers alone) and skips the recipe.

Then the order's recipe (how many of each block one order uses, counted in an order's trace:
``bench/platform_load.py --idle 1`` prints it) times each block's cost gives the floor of the
design on this machine, to hold against the 13.3 CPU ms an order may cost for 150 orders/s on
two cores (2,000 CPU ms/s).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._floor_server import MODES, serve_reservations
from bench._support import free_port, service, trace_to_encode_and_drop, wait_http

REDIS_URL = os.environ.get("FLOTILLA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "FLOTILLA_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: the PostgreSQL drivers compared: the services' (psycopg, sync, on threads) and two async
#: ones through SQLAlchemy's asyncio extension (psycopg's own async mode, and asyncpg)
PG_DRIVERS = ("psycopg", "psycopg-async", "asyncpg")
CLIENT_THREADS = 4
RESERVATION = {"reference": "order-1", "lines": [{"sku": "FLT-DRYBAG", "quantity": 1}]}

#: One order's use of each block, counted in its trace at idle (bench/platform_load.py --idle)
#: and, for the statements the outbox relays run untraced, in the code. The edge is Falcon,
#: counted as a FastAPI service (bench/edge.py: within 0.8-0.9x of one). Not counted: the
#: edge's rate limit (one Redis script), the SMTP delivery and the mail sink, log lines, and
#: the services' own logic and schemas.
RECIPE = {
    "HTTP request, server (def endpoint)": 6,  # edge, orders-api, inventory-api x3, payments-api
    "HTTP request, client": 5,  # edge -> orders-api -> inventory-api; the worker's 3 calls
    # inventory-api 3, orders-api 1 + its relay 2, orders-worker 3 + its relay 2, payments-api 1
    "SQLite write transaction (ORM)": 12,
    "SQL statement more in a transaction (ORM)": 18,  # 30 statements in those 12
    "SQLite read (ORM)": 1,  # the Idempotency-Key lookup
    "Dramatiq message (send + process)": 2,  # fulfil_order, send_order_confirmation
    "span received by the console": 43,
}


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threaded(n: int, step: Callable[[int], None]) -> None:
    """``step(i)`` for i < n, spread over ``CLIENT_THREADS`` threads; the first error raised."""
    errors: list[BaseException] = []

    def run(offset: int) -> None:
        try:
            for i in range(offset, n, CLIENT_THREADS):
                step(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def measure_http(mode: str, n: int) -> dict[str, float]:
    """A server of ``mode`` and the platform's client (threads, as the sync services call);
    mode "async-client": the "async" server called by the platform's async client
    (``async_service_client``, as many calls at once as the threads)."""
    from flotilla.core import service_client

    trace_to_encode_and_drop("floor-client")
    port = free_port()
    serve_mode = "async" if mode == "async-client" else mode
    argv = [sys.executable, __file__, "--serve", serve_mode, "--port", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        if mode == "async-client":
            return _measure_async_client(f"http://127.0.0.1:{port}", server.pid, n)
        client = service_client(f"http://127.0.0.1:{port}")

        def post(_: int) -> None:
            client.post("/reservations", json=RESERVATION).raise_for_status()

        _threaded(200, post)  # warm: connections open, code paths run once
        server_before, client_before = _cpu_of(server.pid), time.process_time()
        _threaded(n, post)
        server_ms = (_cpu_of(server.pid) - server_before) * 1000 / n
        client_ms = (time.process_time() - client_before) * 1000 / n
        client.close()  # NOTE: before the SIGTERM, or uvicorn waits for idle keep-alives
    finally:
        server.terminate()
        server.wait(30)
    return {"server": server_ms, "client": client_ms}


def _measure_async_client(url: str, server_pid: int, n: int) -> dict[str, float]:
    import asyncio

    from flotilla.core import async_service_client

    async def run() -> dict[str, float]:
        async with async_service_client(url) as client:

            async def posts(count: int) -> None:
                async def one(k: int) -> None:
                    for _ in range(k, count, CLIENT_THREADS):
                        answer = await client.post("/reservations", json=RESERVATION)
                        answer.raise_for_status()

                await asyncio.gather(*(one(k) for k in range(CLIENT_THREADS)))

            await posts(200)
            server_before, client_before = _cpu_of(server_pid), time.process_time()
            await posts(n)
            return {
                "server": (_cpu_of(server_pid) - server_before) * 1000 / n,
                "client": (time.process_time() - client_before) * 1000 / n,
            }

    return asyncio.run(run())


class Base(DeclarativeBase):
    pass


class Row(Base):
    """A row shaped like an order's: an id, a status, an amount."""

    __tablename__ = "rows"
    id: Mapped[str] = mapped_column(primary_key=True)
    status: Mapped[str]
    amount_cents: Mapped[int]


def measure_sqlite(n: int) -> dict[str, float]:
    from flotilla.core import make_engine, read_only, session_factory

    trace_to_encode_and_drop("floor-sqlite")
    path = Path(tempfile.mkdtemp()) / "floor.db"
    engine = make_engine(f"sqlite:///{path}", trace=os.environ.get("OTEL_SDK_DISABLED") != "true")
    Base.metadata.create_all(engine)
    sessions, readers = session_factory(engine), session_factory(read_only(engine))
    ids = [str(uuid.uuid4()) for _ in range(n)]

    def orm_write(i: int) -> None:
        with sessions.begin() as session:
            session.add(Row(id=ids[i], status="accepted", amount_cents=i))

    def five_writes(i: int) -> None:
        with sessions.begin() as session:
            for k in range(5):  # NOTE: a flush each, so one INSERT each (not one batched)
                session.add(Row(id=f"five-{k}-{ids[i]}", status="accepted", amount_cents=i))
                session.flush()

    def core_write(i: int) -> None:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(Row).values(id=f"core-{ids[i]}", status="accepted", amount_cents=i)
            )

    def orm_read(i: int) -> None:
        with readers() as session:
            assert session.get(Row, ids[i]) is not None

    result = {}
    steps = {
        "orm_write": orm_write,
        "five": five_writes,
        "core_write": core_write,
        "read": orm_read,
    }
    for name, step in steps.items():
        before = time.process_time()
        _threaded(n, step)
        result[name] = (time.process_time() - before) * 1000 / n
    # NOTE: five statements (and identity-map lookups) against one: what each one more costs
    result["statement"] = (result.pop("five") - result["orm_write"]) / 4
    engine.dispose()
    return result


def measure_postgres(driver: str, n: int) -> dict[str, float]:
    """An ORM write transaction and an ORM read on PostgreSQL through ``driver``
    (:data:`PG_DRIVERS`), ``CLIENT_THREADS`` at once: threads for psycopg, tasks on one event
    loop for the async drivers. Only this process's CPU is counted (the server's backends do
    the same work for every driver, save asyncpg's prepared statements). Statements are
    recorded on every engine as ``make_engine`` records them (``record_db_operations``)."""
    from flotilla.core import make_engine, session_factory

    trace_to_encode_and_drop("floor-postgres")
    # NOTE: Row's table under a name of this run's own, on the shared server
    rows = Row.__table__.to_metadata(sa.MetaData(), name=f"floor_{uuid.uuid4().hex[:8]}")
    admin = sa.create_engine(POSTGRES_URL)
    rows.create(admin)

    class PgRow(Base):
        __table__ = rows

    ids = [str(uuid.uuid4()) for _ in range(n + 200)]
    traced = os.environ.get("OTEL_SDK_DISABLED") != "true"
    try:
        if driver == "psycopg":
            engine = make_engine(POSTGRES_URL, pool_size=CLIENT_THREADS, trace=traced)
            sessions = session_factory(engine)

            def write(i: int) -> None:
                with sessions.begin() as session:
                    session.add(PgRow(id=ids[i], status="accepted", amount_cents=i))

            def read(i: int) -> None:
                with sessions() as session:
                    assert session.get(PgRow, ids[i]) is not None

            result = {}
            for name, step in {"write": write, "read": read}.items():
                _threaded(200, lambda i, step=step: step(n + i))  # type: ignore[misc]
                before = time.process_time()
                _threaded(n, step)
                result[name] = (time.process_time() - before) * 1000 / n
            engine.dispose()
            return result
        return _measure_async_postgres(driver, PgRow, ids, n, traced)
    finally:
        rows.drop(admin)
        admin.dispose()


def _measure_async_postgres(
    driver: str, row: Any, ids: list[str], n: int, traced: bool
) -> dict[str, float]:
    import asyncio

    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from flotilla.core._statements import record_db_operations

    url = sa.make_url(POSTGRES_URL).set(drivername=f"postgresql+{driver.removesuffix('-async')}")

    async def run() -> dict[str, float]:
        engine = create_async_engine(url, pool_size=CLIENT_THREADS, max_overflow=0)
        if traced:
            record_db_operations(engine.sync_engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)

        async def write(i: int) -> None:
            async with sessions.begin() as session:
                session.add(row(id=ids[i], status="accepted", amount_cents=i))

        async def read(i: int) -> None:
            async with sessions() as session:
                assert await session.get(row, ids[i]) is not None

        async def spread(count: int, offset: int, step: Callable[[int], Any]) -> None:
            async def one(k: int) -> None:
                for i in range(k, count, CLIENT_THREADS):
                    await step(offset + i)

            await asyncio.gather(*(one(k) for k in range(CLIENT_THREADS)))

        result = {}
        for name, step in {"write": write, "read": read}.items():
            await spread(200, n, step)
            before = time.process_time()
            await spread(n, 0, step)
            result[name] = (time.process_time() - before) * 1000 / n
        await engine.dispose()
        return result

    return asyncio.run(run())


def measure_dramatiq(n: int, *, asynchronous: bool = False) -> dict[str, float]:
    """Messages sent, then processed by a worker of 8 threads; ``asynchronous``: the actor is
    an ``async def`` (Dramatiq's AsyncIO middleware runs it on its event loop thread, and the
    worker thread waits for it)."""
    import dramatiq
    from dramatiq import Worker
    from dramatiq.middleware import AsyncIO

    from flotilla.core import broker_from_url

    trace_to_encode_and_drop("floor-worker")
    traced = os.environ.get("OTEL_SDK_DISABLED") != "true"
    broker = broker_from_url(f"{REDIS_URL}?namespace=floor-{uuid.uuid4().hex[:8]}", tracing=traced)
    remaining, done, lock = [n], threading.Event(), threading.Lock()

    def count() -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()

    if asynchronous:
        broker.add_middleware(AsyncIO())

        @dramatiq.actor(broker=broker, queue_name="floor", max_retries=0)
        async def noop(i: int) -> None:
            count()

    else:

        @dramatiq.actor(broker=broker, queue_name="floor", max_retries=0)
        def noop(i: int) -> None:
            count()

    before = time.process_time()
    for i in range(n):
        noop.send(i)
    sent = time.process_time()
    worker = Worker(broker, worker_threads=8)
    worker.start()
    if not done.wait(600):
        raise SystemExit(f"only {n - remaining[0]} of {n} messages processed")
    processed = time.process_time()
    worker.stop()
    client: Any = broker.client  # type: ignore[attr-defined]
    client.delete(*client.keys(f"{broker.namespace}:*") or ["none"])  # type: ignore[attr-defined]
    return {"send": (sent - before) * 1000 / n, "process": (processed - sent) * 1000 / n}


def measure_console(n: int) -> dict[str, float]:
    """The console's CPU per span it stores, sent as one order's worth (43 spans) a request."""
    import httpx
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from bench.span_export import make_spans

    port = free_port()
    env = {
        "FLOTILLA_CONSOLE_PORT": str(port),
        "FLOTILLA_CONSOLE_DATABASE_PATH": str(Path(tempfile.mkdtemp()) / "console.db"),
        "OTEL_SDK_DISABLED": "true",
    }
    per_batch = RECIPE["span received by the console"]
    batches = max(n // per_batch, 10)
    bodies = []
    for _ in range(batches + 5):
        spans, _made = make_spans(44)
        bodies.append(encode_spans(spans[:per_batch]).SerializeToString())
    headers = {"Content-Type": "application/x-protobuf"}
    url = f"http://127.0.0.1:{port}"
    with (
        service("flotilla.console", "api", env, f"{url}/healthz") as console,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for body in bodies[:5]:
            client.post("/v1/traces", content=body, headers=headers).raise_for_status()
        before = _cpu_of(console.pid)
        for body in bodies[5:]:
            client.post("/v1/traces", content=body, headers=headers).raise_for_status()
        return {"span": (_cpu_of(console.pid) - before) * 1000 / (batches * per_batch)}


BLOCKS: dict[str, Callable[[int], dict[str, float]]] = {
    "http-def": lambda n: measure_http("def", n),
    "http-async": lambda n: measure_http("async", n),
    "http-contrib-only": lambda n: measure_http("contrib-only", n),
    "http-native": lambda n: measure_http("native", n),
    "http-def-deps": lambda n: measure_http("def-deps", n),
    "http-async-deps": lambda n: measure_http("async-deps", n),
    "http-async-client": lambda n: measure_http("async-client", n),
    "sqlite": measure_sqlite,
    **{f"pg-{driver}": functools.partial(measure_postgres, driver) for driver in PG_DRIVERS},
    "dramatiq": measure_dramatiq,
    "dramatiq-async": lambda n: measure_dramatiq(n, asynchronous=True),
}


def _run_block(block: str, traced: bool, n: int) -> dict[str, float]:
    env = {**os.environ, "OTEL_SDK_DISABLED": "false" if traced else "true"}
    argv = [sys.executable, __file__, "--block", block, "--n", str(n)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bench/floor.py: block {block} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="operations per block and variant")
    parser.add_argument("--rounds", type=int, default=3, help="medians of this many runs")
    parser.add_argument("--only", default="", help="measure the blocks named so (e.g. pg-)")
    parser.add_argument("--block", choices=sorted(BLOCKS), help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_reservations(args.serve, args.port)
        return
    if args.block:
        print(json.dumps(BLOCKS[args.block](args.n)))
        return

    from rich.console import Console
    from rich.progress import Progress

    runs: dict[tuple[str, bool], list[dict[str, float]]] = {}
    chosen = [block for block in BLOCKS if block.startswith(args.only)]
    if not chosen:
        raise SystemExit(f"bench/floor.py: no block starts with {args.only!r}; blocks: "
                         f"{', '.join(BLOCKS)}")  # fmt: skip
    whole = len(chosen) == len(BLOCKS)
    steps = [(block, traced) for block in chosen for traced in (True, False)]
    with Progress(transient=True) as progress:
        task = progress.add_task("measuring blocks", total=len(steps) * args.rounds + whole)
        for _ in range(args.rounds):
            for block, traced in steps:
                progress.update(task, description=f"{block}, tracing {'on' if traced else 'off'}")
                runs.setdefault((block, traced), []).append(_run_block(block, traced, args.n))
                progress.advance(task)
        if whole:
            progress.update(task, description="console ingest")
            console_ms = measure_console(args.n)["span"]
            progress.advance(task)

    def median(block: str, traced: bool, key: str) -> float:
        return statistics.median(run[key] for run in runs[(block, traced)])

    rows = [  # (block, CPU ms traced, CPU ms untraced)
        ("HTTP request, server (def endpoint)", "http-def", "server"),
        ("HTTP request, server (async def endpoint)", "http-async", "server"),
        ("HTTP request, server (FastAPI's own telemetry off)", "http-contrib-only", "server"),
        ("HTTP request, server (FastAPI's own telemetry, not contrib's)", "http-native", "server"),
        ("HTTP request, server (def endpoint, 6 def dependencies)", "http-def-deps", "server"),
        (
            "HTTP request, server (async endpoint, 6 async dependencies)",
            "http-async-deps",
            "server",
        ),
        ("HTTP request, client", "http-def", "client"),
        ("HTTP request, client (async)", "http-async-client", "client"),
        ("SQLite write transaction (ORM)", "sqlite", "orm_write"),
        ("SQL statement more in a transaction (ORM)", "sqlite", "statement"),
        ("SQLite write transaction (Core)", "sqlite", "core_write"),
        ("SQLite read (ORM)", "sqlite", "read"),
        ("PostgreSQL write transaction (ORM, psycopg, threads)", "pg-psycopg", "write"),
        ("PostgreSQL write transaction (ORM, psycopg async)", "pg-psycopg-async", "write"),
        ("PostgreSQL write transaction (ORM, asyncpg)", "pg-asyncpg", "write"),
        ("PostgreSQL read (ORM, psycopg, threads)", "pg-psycopg", "read"),
        ("PostgreSQL read (ORM, psycopg async)", "pg-psycopg-async", "read"),
        ("PostgreSQL read (ORM, asyncpg)", "pg-asyncpg", "read"),
        ("Dramatiq message, send", "dramatiq", "send"),
        ("Dramatiq message, process", "dramatiq", "process"),
        ("Dramatiq message, process (async actor)", "dramatiq-async", "process"),
    ]
    rows = [row for row in rows if row[1] in chosen]
    costs: dict[str, tuple[float, float]] = {
        name: (median(block, True, key), median(block, False, key)) for name, block, key in rows
    }
    out = Console(width=140)
    out.print(f"CPU ms per operation, medians of {args.rounds} runs of {args.n} each\n")
    print("| block | traced | untraced | traced ÷ untraced |")
    print("|---|---:|---:|---:|")
    for name, _block, _key in rows:
        on, off = costs[name]
        print(f"| {name} | {on:.3f} | {off:.3f} | {on / off:.2f}x |")
    if not whole:
        return
    send, process = costs["Dramatiq message, send"], costs["Dramatiq message, process"]
    costs["Dramatiq message (send + process)"] = (send[0] + process[0], send[1] + process[1])
    costs["span received by the console"] = (console_ms, 0.0)

    print(f"| span received by the console | {console_ms:.3f} | — | — |")
    print("\nOne order's recipe (counted in its trace) times each block's cost:\n")
    print("| block | per order | traced, ms | untraced, ms |")
    print("|---|---:|---:|---:|")
    total_on = total_off = 0.0
    for name, count in RECIPE.items():
        on, off = costs[name]
        total_on, total_off = total_on + count * on, total_off + count * off
        print(f"| {name} | {count} | {count * on:.1f} | {count * off:.1f} |")
    print(f"| **floor of one order** | | **{total_on:.1f}** | **{total_off:.1f}** |")
    budget = 2 * 1000 / 150
    print(
        f"\n150 orders/s on 2 cores allows {budget:.1f} CPU ms per order: the floor is "
        f"{total_on / budget:.1f}x that traced, {total_off / budget:.1f}x untraced "
        f"(at most {2000 / total_on:.0f} and {2000 / total_off:.0f} orders/s)."
    )


if __name__ == "__main__":
    main()
