"""``python -m flotilla.operator``: run the kopf operator (in a pod, or against a kubeconfig).

Handlers come from :func:`flotilla.operator.kube.register`. The API server and the operator's
identity come from :func:`~flotilla.operator._credentials.find_api_server`: the pod's service
account in a cluster, the current kubeconfig context outside one, ``FLOTILLA_OPERATOR_API_URL``
(+ ``_API_TOKEN`` or ``_API_TOKEN_FILE``, ``_API_CA_FILE``) as an explicit override. kopf and the
operator's own client share those credentials (``_session.py``). Namespaces: ``--namespace``
(repeat) or ``--all-namespaces``.

Two replicas share the work through kopf peering (the ``KopfPeering`` named by ``--peering``):
each replica draws a random priority, the highest one acts and the others wait, and when it
goes away (or stops renewing its lease for ``--peering-lifetime`` seconds) the next one takes
over. kopf has no per-object locks, so this active/standby is the safe way to run two. Each
replica says which it is (``_role.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import secrets
import socket
import sys
from typing import Any

import kopf
from prometheus_client import start_http_server
from pydantic import ValidationError

from flotilla.contracts.catalogue import component
from flotilla.core import configure_logging, configure_telemetry

from ._credentials import Credentials, LoginError, find_api_server
from ._handlers import register
from ._kube import KubeApi
from ._probes import serve_probes
from ._role import ACTIVE, PeeringRole
from ._session import register_login
from ._settings import OperatorSettings

logger = logging.getLogger("flotilla.operator")
#: its probe and metrics ports (the chart's, from the same catalogue)
OPERATOR = component("operator")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flotilla.operator",
        description="Scale Dramatiq worker Deployments on queue depth (WorkerAutoscaler).",
    )
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", action="append", help="serve this namespace (repeatable)")
    scope.add_argument("--all-namespaces", action="store_true", help="serve the whole cluster")
    parser.add_argument(
        "--probes-port",
        "--liveness-port",
        dest="probes_port",
        type=int,
        default=OPERATOR.port,
        help=f"GET /healthz (liveness) and /readyz (readiness) (default {OPERATOR.port})",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help=(
            "GET /metrics (default: FLOTILLA_OPERATOR_METRICS_PORT, else "
            f"{OPERATOR.admin_port}); 0: off"
        ),
    )
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--peering", default="flotilla-operator", help="KopfPeering name")
    peering.add_argument("--standalone", action="store_true", help="one replica, no peering")
    parser.add_argument(
        "--priority",
        type=int,
        default=random.randint(1, 2**31 - 1),
        help="peering priority (default: random, so exactly one replica acts)",
    )
    parser.add_argument("--peering-lifetime", type=int, default=20, help="lease seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        settings = OperatorSettings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = "FLOTILLA_OPERATOR_" + "_".join(str(p) for p in error["loc"]).upper()
        print(f"flotilla operator: {field}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging("operator", settings.log_level)
    configure_telemetry("operator")
    try:
        credentials = Credentials(find_api_server(settings=settings))
    except LoginError as exc:
        print(f"flotilla operator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logger.info("using the API server %s", credentials.server.describe)
    asyncio.run(operate(args, settings, credentials))


async def operate(
    args: argparse.Namespace, settings: OperatorSettings, credentials: Credentials
) -> None:
    """kopf, the probes and the role watch, until SIGTERM."""
    registry = kopf.OperatorRegistry()
    metrics = register(registry, lambda: KubeApi(credentials))
    register_login(registry, credentials)
    port = args.metrics_port
    if port is None:
        port = settings.metrics_port or OPERATOR.admin_port
    if port:
        start_http_server(port, addr=settings.metrics_host, registry=metrics.registry)
    tuning = kopf.OperatorSettings()
    # NOTE: no CRD scanning: the operator serves one known resource, and scanning would need
    # cluster-wide list/watch on customresourcedefinitions (least privilege).
    tuning.scanning.disabled = True
    tuning.peering.lifetime = args.peering_lifetime
    tuning.peering.priority = args.priority
    pod_name = settings.pod_name or ""
    pod_namespace = settings.pod_namespace or credentials.server.namespace or ""
    identity = f"{pod_name or socket.gethostname()}/{secrets.token_hex(3)}"
    if args.standalone:
        peering = None
    else:
        peering = ("" if args.all_namespaces else args.namespace[0], args.peering)
    api = KubeApi(credentials)
    role = PeeringRole(
        api,
        peering=peering,
        identity=identity,
        priority=args.priority,
        pod=(pod_namespace, pod_name) if pod_name and pod_namespace else None,
        on_change=lambda now: metrics.active.set(1 if now == ACTIVE else 0),
    )
    probes = await serve_probes(args.probes_port, credentials, lambda: role.role)
    watching = asyncio.create_task(role.run(), name="peering role")
    try:
        await kopf.operator(
            registry=registry,
            settings=tuning,
            namespaces=args.namespace or [],
            clusterwide=args.all_namespaces,
            standalone=args.standalone,
            peering_name=None if args.standalone else args.peering,
            identity=_identity(identity),
        )
    finally:
        watching.cancel()
        await probes.cleanup()
        await api.close()


def _identity(value: str) -> Any:
    # NOTE: kopf types it as its private NewType ``Identity`` over str
    return value


if __name__ == "__main__":
    main()
