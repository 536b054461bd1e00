"""``python -m flotilla.operator``: run the kopf operator (in a pod, or against a kubeconfig).

Handlers come from :func:`flotilla.operator.register`. kopf logs in with the pod's service
account (or a kubeconfig); ``FLOTILLA_OPERATOR_API_URL`` (+ ``_API_TOKEN``) points both kopf and
the operator's own client at another API server. Namespaces: ``--namespace`` (repeat) or
``--all-namespaces``.

Two replicas share the work through kopf peering (the ``KopfPeering`` named by ``--peering``):
each replica draws a random priority, the highest one acts and the others wait, and when it
goes away (or stops renewing its lease for ``--peering-lifetime`` seconds) the next one takes
over. kopf has no per-object locks, so this active/standby is the safe way to run two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
from typing import Any

import kopf
from prometheus_client import start_http_server

from flotilla.core import configure_logging, configure_telemetry

from ._handlers import register
from ._kube import KubeApi


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flotilla.operator",
        description="Scale Dramatiq worker Deployments on queue depth (WorkerAutoscaler).",
    )
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", action="append", help="serve this namespace (repeatable)")
    scope.add_argument("--all-namespaces", action="store_true", help="serve the whole cluster")
    parser.add_argument("--liveness-port", type=int, default=8080, help="GET /healthz")
    parser.add_argument("--metrics-port", type=int, default=9090, help="GET /metrics; 0: off")
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
    configure_logging("operator")
    configure_telemetry("operator")
    registry = kopf.OperatorRegistry()
    metrics = register(registry, KubeApi.from_environment)
    if url := os.environ.get("FLOTILLA_OPERATOR_API_URL"):

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            token = os.environ.get("FLOTILLA_OPERATOR_API_TOKEN")
            return kopf.ConnectionInfo(server=url, token=token, insecure=url.startswith("http:"))

    if args.metrics_port:
        start_http_server(args.metrics_port, registry=metrics.registry)
    settings = kopf.OperatorSettings()
    # NOTE: no CRD scanning: the operator serves one known resource, and scanning would need
    # cluster-wide list/watch on customresourcedefinitions (least privilege).
    settings.scanning.disabled = True
    settings.peering.lifetime = args.peering_lifetime
    settings.peering.priority = args.priority
    asyncio.run(
        kopf.operator(
            registry=registry,
            settings=settings,
            namespaces=args.namespace or [],
            clusterwide=args.all_namespaces,
            standalone=args.standalone,
            peering_name=None if args.standalone else args.peering,
            liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz",
        )
    )


if __name__ == "__main__":
    main()
