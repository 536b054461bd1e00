"""Shared pieces of the benchmark scripts: free ports, child processes, waiting for HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def trace_to_encode_and_drop(service_name: str) -> Any:
    """The platform's tracing set-up (``configure_telemetry``), its spans going through the
    SDK's BatchSpanProcessor into an exporter that encodes them to OTLP protobuf and drops the
    bytes: the cost of making and serializing every span counts, no network is involved.
    Returns the provider (``None`` when ``OTEL_SDK_DISABLED=true``)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from flotilla.core import configure_telemetry

    class EncodeAndDrop(SpanExporter):  # type: ignore[misc]
        def export(self, spans: Any) -> SpanExportResult:
            encode_spans(spans).SerializeToString()
            return SpanExportResult.SUCCESS

    os.environ["OTEL_TRACES_EXPORTER"] = "none"
    provider = configure_telemetry(service_name)
    if provider is not None:
        provider.add_span_processor(BatchSpanProcessor(EncodeAndDrop()))
    return provider


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not answer in {timeout_s} s")


@contextmanager
def service(
    module: str, command: str, env: dict[str, str], ready_url: str | None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m module command`` until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, command],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if ready_url:
            wait_http(ready_url)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def console_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real console process on a free port with a fresh database: (its URL, the process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "FLOTILLA_CONSOLE_PORT": str(port),
        "FLOTILLA_CONSOLE_DATABASE_PATH": str(Path(tempfile.mkdtemp()) / "console.db"),
        "OTEL_SDK_DISABLED": "true",
    }
    with service("flotilla.console", "api", env, f"{url}/healthz") as process:
        yield url, process


@dataclass
class LocalPlatform:
    """A running ``flotilla up``: its process, state folder, ports and timestamped log lines."""

    process: subprocess.Popen[str]
    var: Path
    ports: dict[str, int]
    events: list[tuple[float, str]] = field(default_factory=list)


def start_platform(prefix: str, env: dict[str, str] | None = None) -> LocalPlatform:
    """Start the real local platform on free ports with its own redis-server; wait until ready."""
    var = Path(tempfile.mkdtemp(prefix=prefix)) / "var"
    names = ("edge", "console", "orders", "inventory", "payments", "smtp")
    ports = {name: free_port() for name in names}
    argv = [
        sys.executable,
        "-m",
        "flotilla.cli",
        "up",
        "--var-dir",
        str(var),
        "--broker",
        "redis-server",
    ]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    environment = {
        **os.environ,
        "FLOTILLA_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        **(env or {}),
    }
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
    )
    platform = LocalPlatform(process, var, ports)
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            platform.events.append((time.monotonic(), line))
            if "platform ready" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(180):
        process.kill()
        raise SystemExit("bench: the platform did not become ready")
    return platform
