"""A real ``python -m flotilla.operator`` process for the tests: its log, probes and metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.cluster import NS
from tests.support.ports import free_port


class OperatorProcess:
    def __init__(self, proc: asyncio.subprocess.Process, probes: int, metrics: int) -> None:
        self.proc, self.probes, self.metrics = proc, probes, metrics
        self.log: list[str] = []
        self._reader = asyncio.ensure_future(self._read_log())

    async def _read_log(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.log)

    async def get(self, port: int, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(f"http://127.0.0.1:{port}{path}")

    async def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The values of one metric family, keyed by their sorted labels."""
        text = (await self.get(self.metrics, "/metrics")).text
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)


#: what tells the operator where an API server is: a test gives exactly one of them
LOGIN_ENV = ("FLOTILLA_OPERATOR_API_URL", "KUBECONFIG", "KUBERNETES_SERVICE_HOST")


@asynccontextmanager
async def operator_process(login: dict[str, str], *args: str) -> AsyncIterator[OperatorProcess]:
    """``python -m flotilla.operator --namespace shop`` with ``login`` (the env saying where
    the API server is) and none of the test process' own ways to an API server."""
    probes, metrics = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in LOGIN_ENV}
    env.update({"OTEL_TRACES_EXPORTER": "none", **login})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flotilla.operator",
        "--namespace",
        NS,
        "--probes-port",
        str(probes),
        "--metrics-port",
        str(metrics),
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = OperatorProcess(proc, probes, metrics)
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        running._reader.cancel()


def operator(kmock: Any, *args: str) -> Any:
    """The operator against the emulator over plain HTTP (``FLOTILLA_OPERATOR_API_URL``)."""
    return operator_process({"FLOTILLA_OPERATOR_API_URL": str(kmock.url).rstrip("/")}, *args)


async def answers(check: Callable[[], Any], timeout_s: float = 20) -> Any:
    """Wait until an async check stops raising connection errors and returns something true."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            value = await check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("no answer in time")
