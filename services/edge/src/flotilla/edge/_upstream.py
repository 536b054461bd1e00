"""Upstream HTTP clients the edge can use: aiohttp (default) or httpx.

Both are pooled, traced (their OpenTelemetry instrumentations propagate W3C context) and
raise the platform's two upstream errors (``flotilla.core.UpstreamTimeout`` and
``UpstreamUnavailable``), so the proxy does not care which one runs; ``bench/edge.py``
measures them side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from flotilla.core import (
    UpstreamTimeout,
    UpstreamUnavailable,
    async_service_client,
    telemetry_enabled,
    translate_http_error,
)


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    headers: list[tuple[str, str]]
    content: bytes


class Upstream(Protocol):
    async def request(
        self, method: str, url: str, headers: dict[str, str], content: bytes
    ) -> UpstreamAnswer: ...

    async def probe(self, url: str, timeout_s: float) -> int: ...

    async def aclose(self) -> None: ...


class HttpxUpstream:
    def __init__(self, *, timeout_s: float, connect_timeout_s: float, max_connections: int) -> None:
        self.client = async_service_client(
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            max_connections=max_connections,
        )

    async def request(
        self, method: str, url: str, headers: dict[str, str], content: bytes
    ) -> UpstreamAnswer:
        try:
            answer = await self.client.request(method, url, headers=headers, content=content)
        except httpx.TransportError as exc:  # NOTE: a timeout is one too
            raise translate_http_error(exc, url) from exc
        return UpstreamAnswer(answer.status_code, answer.headers.multi_items(), answer.content)

    async def probe(self, url: str, timeout_s: float) -> int:
        try:
            return (await self.client.get(url, timeout=timeout_s)).status_code
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpUpstream:
    """aiohttp's client; its session is made on first use, inside the server's event loop."""

    def __init__(self, *, timeout_s: float, connect_timeout_s: float, max_connections: int) -> None:
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.max_connections = max_connections
        self._session: Any = None
        if telemetry_enabled():
            from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

            instrumentor = AioHttpClientInstrumentor()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()

    def _client(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout_s, sock_connect=self.connect_timeout_s
                ),
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def request(
        self, method: str, url: str, headers: dict[str, str], content: bytes
    ) -> UpstreamAnswer:

        import aiohttp
        import yarl

        try:
            # NOTE: encoded=True: the edge has already made the one spelling the upstream
            # must see; yarl would otherwise decode %2F, %3F… in the query on the way.
            async with self._client().request(
                method, yarl.URL(url, encoded=True), headers=headers, data=content or None
            ) as answer:
                body = await answer.read()
                return UpstreamAnswer(answer.status, list(answer.headers.items()), body)
        except TimeoutError as exc:
            raise UpstreamTimeout("timeout") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(type(exc).__name__) from exc

    async def probe(self, url: str, timeout_s: float) -> int:
        import aiohttp

        try:
            async with self._client().get(
                url, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as answer:
                return int(answer.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamUnavailable(type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def make_upstream(
    kind: str, *, timeout_s: float, connect_timeout_s: float, max_connections: int = 200
) -> Upstream:
    """The upstream client named by ``FLOTILLA_EDGE_HTTP_CLIENT``."""
    cls = AiohttpUpstream if kind == "aiohttp" else HttpxUpstream
    return cls(
        timeout_s=timeout_s, connect_timeout_s=connect_timeout_s, max_connections=max_connections
    )
