"""A TCP proxy in front of a real server that can be made slow or faulty on demand.

Slow: a dependency that answers, but later than its callers wait (an overloaded database, a GC
pause, a bad link). Every chunk a client sends is held ``delay_s`` before it goes on, so the
server still does the work, only late: exactly what makes a timed-out call dangerous to retry
blindly.

Faulty: ``drop_reply_when`` loses the reply to one request (the server ran it; the link broke
before its answer arrived, as when Redis is stopped mid-reply), and :meth:`SlowProxy.refuse_for`
breaks every connection and refuses new ones for a while (a network partition).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.ports import free_port, wait_for_port


@dataclass
class SlowProxy:
    target_port: int
    port: int = field(default_factory=free_port)
    delay_s: float = 0.0
    connections: int = 0
    #: when it returns True for a chunk a client sent, the chunk goes on, its reply is lost and
    #: the connection is broken; then it is cleared (one reply lost)
    drop_reply_when: Callable[[bytes], bool] | None = None
    replies_dropped: int = 0
    refusing_until: float = 0.0
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None

    def refuse_for(self, seconds: float) -> None:
        """Break every open connection now and refuse new ones for ``seconds``."""
        self.refusing_until = time.monotonic() + seconds
        assert self._loop is not None
        for writer in list(self._open):
            self._loop.call_soon_threadsafe(writer.close)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delayed: bool,
        link: dict[str, bool],
        client: asyncio.StreamWriter,
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if delayed and self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if not delayed and link["mute"]:
                    continue  # the reply that is lost
                writer.write(chunk)
                await writer.drain()
                if delayed and self.drop_reply_when is not None and self.drop_reply_when(chunk):
                    self.drop_reply_when = None
                    link["mute"] = True
                    await asyncio.sleep(0.3)  # the server runs the request meanwhile
                    self.replies_dropped += 1
                    client.close()
                    writer.close()
                    return
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_one(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        if time.monotonic() < self.refusing_until:
            client_w.close()
            return
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        link = {"mute": False}
        self._open.add(client_w)
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w, True, link, client_w),
                self._pipe(server_r, client_w, False, link, client_w),
            )
        finally:
            self._open.discard(client_w)
            with contextlib.suppress(Exception):  # the loop may be closing
                server_w.close()


@contextmanager
def slow_proxy(target_port: int, port: int | None = None) -> Iterator[SlowProxy]:
    """A proxy to ``127.0.0.1:target_port`` (on ``port``, else a free one), served from a
    thread of its own."""
    proxy = SlowProxy(target_port) if port is None else SlowProxy(target_port, port=port)
    loop = proxy._loop = asyncio.new_event_loop()
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
