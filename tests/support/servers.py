"""Serving a real ASGI app with uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
