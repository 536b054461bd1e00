"""The edge's cost: the same request straight to orders-api and through the edge, tracing off
and on, under two ASGI servers (uvicorn, granian) and two upstream clients (httpx, aiohttp),
and beside a FastAPI gateway doing the same work (``bench/fastapi_gateway.py``).

Real processes on loopback: inventory-api, orders-api (SQLite), the edge, and with tracing on
the console receiving every span over OTLP/HTTP. The request is ``GET /orders/{id}`` (an
authenticated read through the edge, a database read in orders-api). ``wrk`` drives it twice
per variant: at 32 connections for throughput, and at 1 connection for the latency a single
caller sees. Variants alternate within each round; the table shows medians over the rounds and
ratios against the direct call. Everything shares this machine's cores, load generator included.

    uv run python bench/edge.py [--rounds 3] [--seconds 5]     (needs wrk: apt-get install wrk)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from flotilla.core import CLIENT_ID_HEADER, CLIENT_SCOPES_HEADER

sys.path.insert(0, str(Path(__file__).parent))
from _support import free_port, service

API_KEY = "bench-key-0123456789abcdef"
KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()
#: who the edge says the caller is (``key:`` and the name in FLOTILLA_EDGE_API_KEYS)
CLIENT = "key:bench"
REDIS_URL = "redis://127.0.0.1:6379/0"


GATEWAY = "FastAPI gateway: uvicorn + aiohttp"
FALCON = "edge: uvicorn + aiohttp"


@dataclass(frozen=True)
class Variant:
    name: str
    through_edge: bool
    server: str = "uvicorn"
    client: str = "httpx"


VARIANTS = [
    Variant("direct to orders-api", False),
    Variant("edge: uvicorn + httpx", True, "uvicorn", "httpx"),
    Variant("edge: uvicorn + aiohttp", True, "uvicorn", "aiohttp"),
    Variant("edge: granian + httpx", True, "granian", "httpx"),
    Variant("edge: granian + aiohttp", True, "granian", "aiohttp"),
    # NOTE: the same work in FastAPI (bench/fastapi_gateway.py), as the edge ships: uvicorn,
    # aiohttp
    Variant(GATEWAY, True, "fastapi", "aiohttp"),
]


def wrk(url: str, connections: int, seconds: int, headers: dict[str, str]) -> dict[str, float]:
    argv = ["wrk", "--latency", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", url]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise SystemExit(f"bench: {non_2xx.group(1)} failed requests against {url}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99")}


def measure(
    tracing: str, rounds: int, seconds: int, console: Console
) -> dict[str, list[dict[str, float]]]:
    """``tracing``: ``off`` (SDK disabled), ``on`` (exported to the console), or ``unexported``
    (spans made, exporter ``none``: separates the instrumentation from the export's cost)."""
    tmp = Path(tempfile.mkdtemp(prefix="flotilla-bench-"))
    ports = {n: free_port() for n in ("console", "inventory", "orders", "edge")}
    telemetry = {
        "off": {"OTEL_SDK_DISABLED": "true"},
        "unexported": {"OTEL_TRACES_EXPORTER": "none"},
        "on": {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports['console']}",
            "OTEL_TRACES_EXPORTER": "otlp",
        },
    }[tracing]
    results: dict[str, list[dict[str, float]]] = {v.name: [] for v in VARIANTS}
    with ExitStack() as stack:
        if tracing == "on":
            stack.enter_context(
                service(
                    "flotilla.console",
                    "api",
                    {
                        "FLOTILLA_CONSOLE_PORT": str(ports["console"]),
                        "FLOTILLA_CONSOLE_DATABASE_PATH": str(tmp / "console.db"),
                    },
                    f"http://127.0.0.1:{ports['console']}/healthz",
                )
            )
        inventory_env = {
            "FLOTILLA_INVENTORY_DATABASE_URL": f"sqlite:///{tmp}/inventory.db",
            "FLOTILLA_INVENTORY_PORT": str(ports["inventory"]),
            "OTEL_SERVICE_NAME": "inventory-api",
            **telemetry,
        }
        subprocess.run(
            [sys.executable, "-m", "flotilla.inventory", "migrate"],
            check=True,
            env={**inventory_env, "PATH": ""},
            capture_output=True,
        )
        stack.enter_context(
            service(
                "flotilla.inventory",
                "api",
                inventory_env,
                f"http://127.0.0.1:{ports['inventory']}/healthz",
            )
        )
        orders_env = {
            "FLOTILLA_ORDERS_DATABASE_URL": f"sqlite:///{tmp}/orders.db",
            "FLOTILLA_ORDERS_PORT": str(ports["orders"]),
            "FLOTILLA_ORDERS_INVENTORY_URL": f"http://127.0.0.1:{ports['inventory']}",
            "FLOTILLA_ORDERS_BROKER_URL": f"{REDIS_URL}?namespace=bench",
            "OTEL_SERVICE_NAME": "orders-api",
            **telemetry,
        }
        subprocess.run(
            [sys.executable, "-m", "flotilla.orders", "migrate"],
            check=True,
            env={**orders_env, "PATH": ""},
            capture_output=True,
        )
        orders_url = f"http://127.0.0.1:{ports['orders']}"
        stack.enter_context(service("flotilla.orders", "api", orders_env, f"{orders_url}/healthz"))
        # NOTE: placed as the bench's client, as the edge would forward it: orders belong to
        # the client that placed them, and the edge reads it back as that client.
        order = httpx.post(
            f"{orders_url}/orders",
            json={
                "customer_email": "bench@example.com",
                "items": [{"sku": "FLT-VEST", "quantity": 1}],
            },
            headers={CLIENT_ID_HEADER: CLIENT, CLIENT_SCOPES_HEADER: "orders:read orders:write"},
        ).json()
        # the edge's own route table (flotilla.edge ROUTE_TABLE); only where upstreams listen
        upstreams = {
            "orders-api": orders_url,
            "inventory-api": f"http://127.0.0.1:{ports['inventory']}",
        }
        for round_no in range(1, rounds + 1):
            for variant in VARIANTS:
                console.log(f"tracing {tracing}, round {round_no}/{rounds}: {variant.name}")
                if not variant.through_edge:
                    url = f"{orders_url}/orders/{order['id']}"
                    # NOTE: what the edge adds to a request it forwards (the caller's identity)
                    headers = {CLIENT_ID_HEADER: CLIENT, CLIENT_SCOPES_HEADER: "orders:read"}
                    results[variant.name].append(_both(url, headers, seconds))
                    continue
                edge_env = {
                    "FLOTILLA_EDGE_PORT": str(ports["edge"]),
                    "FLOTILLA_EDGE_SERVER": variant.server,
                    "FLOTILLA_EDGE_HTTP_CLIENT": variant.client,
                    "FLOTILLA_EDGE_UPSTREAMS": json.dumps(upstreams),
                    "FLOTILLA_EDGE_API_KEYS": f"bench:{KEY_HASH}",
                    "FLOTILLA_EDGE_RATE_LIMIT_PER_SECOND": "1000000",
                    "FLOTILLA_EDGE_RATE_LIMIT_BURST": "1000000",
                    "FLOTILLA_EDGE_REDIS_URL": REDIS_URL,
                    "FLOTILLA_EDGE_LOG_LEVEL": "WARNING",
                    "OTEL_SERVICE_NAME": "edge",
                    **telemetry,
                }
                edge_url = f"http://127.0.0.1:{ports['edge']}"
                module = "flotilla.edge"
                if variant.server == "fastapi":
                    module = "fastapi_gateway"
                    edge_env["PYTHONPATH"] = str(Path(__file__).parent)
                    edge_env["FLOTILLA_EDGE_SERVER"] = "uvicorn"
                with service(module, "api", edge_env, f"{edge_url}/healthz"):
                    results[variant.name].append(
                        _both(
                            f"{edge_url}/api/orders/{order['id']}",
                            {"Authorization": f"Bearer {API_KEY}"},
                            seconds,
                        )
                    )
    shutil.rmtree(tmp, ignore_errors=True)
    return results


def _both(url: str, headers: dict[str, str], seconds: int) -> dict[str, float]:
    wrk(url, 8, 1, headers)  # warm-up: connection pools, JIT-less caches, SQLite pages
    loaded = wrk(url, 32, seconds, headers)
    single = wrk(url, 1, seconds, headers)
    return {"rps": loaded["rps"], "p99_ms": loaded["p99_ms"], "p50_1c_ms": single["p50_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed; apt-get install wrk")
    console = Console(width=140)
    modes = {
        mode: measure(mode, args.rounds, args.seconds, console)
        for mode in ("off", "unexported", "on")
    }
    off, on = modes["off"], modes["on"]

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    table = Table(
        title=f"GET /orders/{{id}}: median of {args.rounds} rounds, wrk "
        f"{args.seconds}s at 32 connections (throughput) and 1 connection (p50)"
    )
    for column in (
        "variant",
        "tracing",
        "req/s",
        "vs direct",
        "p50 1 conn",
        "added p50",
        "p99 32 conn",
    ):
        table.add_column(column, justify="left" if column in ("variant", "tracing") else "right")
    for label, results in modes.items():
        direct = results[VARIANTS[0].name]
        for variant in VARIANTS:
            runs = results[variant.name]
            table.add_row(
                variant.name,
                label,
                f"{med(runs, 'rps'):,.0f}",
                f"{med(runs, 'rps') / med(direct, 'rps'):.2f}x",
                f"{med(runs, 'p50_1c_ms'):.2f} ms",
                f"{med(runs, 'p50_1c_ms') - med(direct, 'p50_1c_ms'):+.2f} ms",
                f"{med(runs, 'p99_ms'):.1f} ms",
            )
    console.print(table)
    tracing = Table(title="throughput with tracing / without (tracing off = OTEL_SDK_DISABLED)")
    tracing.add_column("variant")
    tracing.add_column("spans made, not exported", justify="right")
    tracing.add_column("exported to the console", justify="right")
    for variant in VARIANTS:
        base = med(off[variant.name], "rps")
        tracing.add_row(
            variant.name,
            f"{med(modes['unexported'][variant.name], 'rps') / base:.2f}x",
            f"{med(on[variant.name], 'rps') / base:.2f}x",
        )
    console.print(tracing)
    versus = Table(
        title="the Falcon edge against the FastAPI gateway (same work, uvicorn + aiohttp)"
    )
    for column in (
        "tracing",
        "throughput, Falcon / FastAPI",
        "added p50, Falcon",
        "added p50, FastAPI",
    ):
        versus.add_column(column, justify="left" if column == "tracing" else "right")
    for label, results in modes.items():
        direct = med(results[VARIANTS[0].name], "p50_1c_ms")
        versus.add_row(
            label,
            f"{med(results[FALCON], 'rps') / med(results[GATEWAY], 'rps'):.2f}x",
            f"{med(results[FALCON], 'p50_1c_ms') - direct:+.2f} ms",
            f"{med(results[GATEWAY], 'p50_1c_ms') - direct:+.2f} ms",
        )
    console.print(versus)


if __name__ == "__main__":
    main()
