"""Whether a cluster answers, said in one line: ``python -m tests.cluster.preflight`` exits 2
with the reason when none does (`make e2e` runs it before the suite)."""

from __future__ import annotations

import os
import sys

from tests.cluster.kube import kubectl, kubectl_json


def cluster_problem() -> str | None:
    """None when the cluster ``KUBECONFIG`` names answers, else the one line to print."""
    where = os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        kubectl("get", "--raw", "/readyz", timeout_s=15)
    except Exception as exc:  # kubectl missing, no config, the server away: the same answer
        lines = str(exc).strip().splitlines()
        reason = lines[-1] if lines else type(exc).__name__
        return (
            f"make e2e: no Kubernetes cluster answers (KUBECONFIG={where}): {reason[:200]}; "
            "start one (make kind-up) or point KUBECONFIG at one"
        )
    return None


def describe() -> str:
    server = kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
    version = kubectl_json("version")["serverVersion"]["gitVersion"]
    where = os.environ.get("KUBECONFIG") or "~/.kube/config"
    return f"{server} (Kubernetes {version}, KUBECONFIG={where})"


if __name__ == "__main__":
    problem = cluster_problem()
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(2)
