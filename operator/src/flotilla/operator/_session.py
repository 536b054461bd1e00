"""kopf's login: the operator's own :class:`Credentials`, as the HTTP session kopf uses for
every watch, patch and Event.

kopf's built-in logins read a token once and keep it until the API server answers 401, and
when the same token comes back rejected they give up and the operator exits (a crash loop in
a pod). Here the session sets the current token on each request (a rotated file is picked up
within a minute, with no reconnect of the open watches), reports every answer to the shared
credentials (the readiness probe), and the login waits, with a growing pause, until the API
server answers and accepts the token, logging once what is wrong.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import kopf

from ._credentials import Credentials
from ._kube import KubeApi, KubeError

#: pauses between two login attempts that failed (then the last one, for ever)
LOGIN_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


async def wait_for_login(
    api: KubeApi,
    *,
    backoff: tuple[float, ...] = LOGIN_BACKOFF_S,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """Return once the API server answers ``api``'s credentials without a 401.

    A rejected token is read again from its file before each attempt; the reasons are logged
    once each by :class:`Credentials`.
    """
    for attempt in itertools.count():
        try:
            await api.ping()
            return
        except KubeError as exc:
            if exc.status is None:
                api.credentials.unreachable(str(exc))
        await sleep(backoff[min(attempt, len(backoff) - 1)])


def kopf_session(credentials: Credentials) -> kopf.AiohttpSession:
    """An aiohttp session for kopf with ``credentials``' CA, client certificate and token."""

    async def authorize(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        token = credentials.token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        response = await handler(request)
        credentials.answered(response.status, token)
        return response

    server = credentials.server
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=server.ssl_context() or True),
        middlewares=(authorize,),
    )
    return kopf.AiohttpSession(
        server=server.url, aiohttp_session=session, default_namespace=server.namespace
    )


def register_login(registry: kopf.OperatorRegistry, credentials: Credentials) -> None:
    """kopf logs in with ``credentials`` once the API server accepts them (see the module
    docstring), on start and after every 401."""

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        api = KubeApi(credentials)
        try:
            await wait_for_login(api)
        finally:
            await api.close()
        return kopf_session(credentials)
