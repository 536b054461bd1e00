"""The operator's probes, on one port: ``/healthz`` and ``/readyz``.

Liveness (``/healthz``) says the process' event loop answers, and nothing more: restarting
cannot fix a token the API server rejects or an API server that is away, so those never fail
it (a crash loop would only hide the reason). Readiness (``/readyz``) says the API server
accepts the operator's token; its JSON body says why not, and which peering role the replica
holds. Probes are not logged (a line every few seconds per replica says nothing).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from ._credentials import Credentials


async def serve_probes(
    port: int, credentials: Credentials, role: Callable[[], str], host: str = "0.0.0.0"
) -> web.AppRunner:
    """Serve the probes on ``host:port`` until the returned runner is cleaned up."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def readyz(_: web.Request) -> web.Response:
        ready = credentials.accepted
        body = {"ready": ready, "role": role(), "api_server": credentials.server.url}
        if not ready:
            body["problem"] = credentials.problem
        return web.json_response(body, status=200 if ready else 503)

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
