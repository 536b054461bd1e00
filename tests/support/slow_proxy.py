"""A TCP proxy in front of a real server that can be made slow on demand: a dependency that
answers, but later than its callers wait (an overloaded database, a GC pause, a bad link).

Every chunk a client sends is held ``delay_s`` before it goes on, so the server still does
the work, only late: exactly what makes a timed-out call dangerous to retry blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.ports import free_port, wait_for_port


@dataclass
class SlowProxy:
    target_port: int
    port: int = field(default_factory=free_port)
    delay_s: float = 0.0
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if delayed and self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_one(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pipe(client_r, server_w, delayed=True),
            self._pipe(server_r, client_w, delayed=False),
        )


@contextmanager
def slow_proxy(target_port: int) -> Iterator[SlowProxy]:
    """A proxy to ``127.0.0.1:target_port``, served from a thread of its own."""
    proxy = SlowProxy(target_port)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, asyncio.AbstractServer] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["server"] = loop.run_until_complete(
            asyncio.start_server(proxy._serve_one, "127.0.0.1", proxy.port)
        )
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    wait_for_port(proxy.port)
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(holder["server"].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
