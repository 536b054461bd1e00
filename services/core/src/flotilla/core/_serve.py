"""Serving an ASGI app with uvicorn and a graceful shutdown."""

from __future__ import annotations

from typing import Any

import uvicorn

from ._telemetry import flush_telemetry


def serve(app: Any, *, host: str, port: int, graceful_timeout_s: int = 20) -> None:
    """Run ``app`` until SIGTERM/SIGINT, finish in-flight requests, then flush spans.

    Args:
        app: the ASGI application.
        host: address to bind.
        port: port to bind.
        graceful_timeout_s: how long in-flight requests may take after the signal.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our JSON logging is already configured
        access_log=False,
        # NOTE: uvicorn would otherwise trust X-Forwarded-For from 127.0.0.1, letting any local
        # client choose the address the edge sees; the edge sets forwarding headers itself.
        proxy_headers=False,
        timeout_graceful_shutdown=graceful_timeout_s,
        lifespan="auto",
    )
    try:
        uvicorn.Server(config).run()
    finally:
        flush_telemetry()
