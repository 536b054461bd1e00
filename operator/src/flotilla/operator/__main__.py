"""``python -m flotilla.operator``: run the kopf operator (in a pod, or against a kubeconfig).

Handlers come from :func:`flotilla.operator.register`; the API client from the pod's service
account, or ``FLOTILLA_OPERATOR_API_URL`` outside a cluster. Namespaces: ``--namespace`` (repeat)
or all with ``--all-namespaces``; kopf peering lets two replicas share the work safely.
"""

from __future__ import annotations

import argparse
import asyncio

import kopf

from flotilla.core import configure_logging, configure_telemetry

from ._handlers import register
from ._kube import KubeApi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespace", action="append", default=[])
    parser.add_argument("--all-namespaces", action="store_true")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz")
    parser.add_argument("--standalone", action="store_true", help="no peering (one replica)")
    args = parser.parse_args()
    configure_logging("operator")
    configure_telemetry("operator")
    registry = kopf.OperatorRegistry()
    register(registry, KubeApi.from_environment)
    asyncio.run(
        kopf.operator(
            registry=registry,
            namespaces=args.namespace,
            clusterwide=args.all_namespaces,
            standalone=args.standalone,
            liveness_endpoint=args.liveness,
        )
    )


if __name__ == "__main__":
    main()
