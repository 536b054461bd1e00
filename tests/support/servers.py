"""Serving a real ASGI app with uvicorn on a free loopback port, in a thread; a silent server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.support.ports import free_port, wait_for_port


@contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[str]:
    """Yield the base URL of ``app`` served by uvicorn until the block ends."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class SilentServer:
    """A TCP server that accepts connections, reads what it is sent and never answers: a
    dependency that hangs instead of refusing (a stopped VM, a network partition)."""

    port: int
    connections: int = 0
    received: list[bytes] = field(default_factory=list)


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    server = SilentServer(listener.getsockname()[1])
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                connection = listener.accept()[0]
                connection.setblocking(False)
                held.append(connection)
                server.connections += 1
            for connection in held:
                with contextlib.suppress(OSError):
                    if data := connection.recv(65536):
                        server.received.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(2)
        for connection in held:
            connection.close()
        listener.close()
