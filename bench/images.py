"""The images' sizes and the chart's pods' start times, from one run.

    uv run python bench/images.py            # build (cached) and report sizes
    uv run python bench/images.py --pods     # also run the rendered chart and time each pod

Sizes: each member's image and its own layers (what it adds to the python base). Start times:
the chart as the container tests render it (charts/flotilla/ci/containers-values.yaml), run by
tests/support/kubelet.py, all pods created at once as a cluster does; for each pod, the time
from its creation to ready (init containers, the process's start and the chart's probe
periods included: a worker's first readiness probe is 10 s after its start).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import images


def pods() -> None:
    from tests.charts.test_chart import helm
    from tests.containers.conftest import (
        CHART,
        DATASTORE_STANDINS,
        NAMESPACE,
        RELEASE,
        VALUES,
        platform_workloads,
    )
    from tests.support.kubelet import Kubelet, Rendered

    rendered = Rendered.from_helm(
        helm(), CHART, release=RELEASE, namespace=NAMESPACE, values=[VALUES]
    )
    kubelet = Kubelet(rendered, namespace=NAMESPACE, substitutes=dict(DATASTORE_STANDINS.values()))
    started = time.monotonic()
    try:
        running = kubelet.start_all(platform_workloads(rendered))
        kubelet.wait_ready(running, timeout_s=300)
        everything = time.monotonic() - started
        print("\n| pod | ready after (s) | init containers |")
        print("|---|---:|---|")
        for pod in sorted(running, key=lambda p: p.workload):
            ready = max(c.ready_after_s or 0 for c in pod.containers.values())
            inits = ", ".join(f"{name} ({code})" for name, code in pod.init_runs) or "—"
            print(f"| {pod.workload} | {ready:.1f} | {inits} |")
        print(f"\nevery pod ready {everything:.1f} s after the first was created")
    finally:
        kubelet.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", action="store_true", help="also time the chart's pods")
    args = parser.parse_args()
    client = images.ensure_engine()
    images.make_base_images(client)
    results = images.build(client)
    print(images.table(results))
    base = images.base_images_for(client)["python"]
    print(f"\nbase {base}: {images.image_size(client, base) / 1e6:.0f} MB")
    if args.pods:
        pods()
    return 0


if __name__ == "__main__":
    sys.exit(main())
