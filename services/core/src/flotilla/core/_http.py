"""Pooled HTTP clients for service-to-service calls, with timeouts and our own errors."""

from __future__ import annotations

import httpx

from ._problems import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from ._telemetry import instrument_httpx


def _limits(max_connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def service_client(
    base_url: str,
    *,
    timeout_s: float = 5.0,
    connect_timeout_s: float = 1.0,
    max_connections: int = 100,
) -> httpx.Client:
    """A pooled, traced synchronous client for one upstream service."""
    instrument_httpx()
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        limits=_limits(max_connections),
    )


def async_service_client(
    base_url: str = "",
    *,
    timeout_s: float = 5.0,
    connect_timeout_s: float = 1.0,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    """A pooled, traced asynchronous client (``base_url`` may be empty for many upstreams)."""
    instrument_httpx()
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        limits=_limits(max_connections),
    )


def translate_http_error(exc: httpx.HTTPError, service: str) -> UpstreamError:
    """Map an httpx transport error to :class:`UpstreamTimeout` or :class:`UpstreamUnavailable`.

    Use as ``raise translate_http_error(exc, "inventory") from exc``.
    """
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"{service} did not answer in time")
    return UpstreamUnavailable(f"{service} is unreachable: {type(exc).__name__}")
