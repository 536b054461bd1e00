"""The images, built here, and the chart's pods, run from them in a real Docker Engine.

The engine is Debian's ``docker.io`` (``make test`` installs and starts it as root, through
``scripts/images.py engine``). Absent locally, these tests skip with the reason; under
``CI=true`` they fail. The images are built offline: the base images are the stand-ins of
``make base-images`` where the official ones are not here, and Redis and PostgreSQL run as
stand-ins built from Debian's packages (``tests/support/standins``), which the harness reports.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripts import images

from tests.support.kubelet import Kubelet, Pod, Rendered
from tests.support.services import in_ci

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "flotilla"
VALUES = CHART / "ci" / "containers-values.yaml"
STANDINS = ROOT / "tests" / "support" / "standins"
RELEASE = "flotilla"
NAMESPACE = "shop"  # the emulated cluster's namespace (tests/operator/cluster.py)
#: the chart's third-party images -> stand-ins built here from Debian's packages
DATASTORE_STANDINS = {
    "redis": ("redis:7.4-alpine", "localhost/flotilla-standin/redis:7"),
    "postgres": ("postgres:17-alpine", "localhost/flotilla-standin/postgres:15"),
}


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> str:
    """The docker client that builds with BuildKit, once an engine answers."""
    try:
        client = images.docker_client()
    except images.ImagesError as exc:
        _unavailable(str(exc))
    if not images.engine_answers(client):
        _unavailable("no Docker Engine answers here: run 'make engine' (as root)")
    return client


@pytest.fixture(scope="session")
def built(docker_client: str) -> list[images.Built]:
    """Every member's image, built now (BuildKit's cache makes an unchanged one seconds)."""
    try:
        images.make_base_images(docker_client)
        return images.build(docker_client, images.MEMBERS, images.TAG, progress=False)
    except images.ImagesError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def substitutes(docker_client: str, built: list[images.Built]) -> dict[str, str]:
    """The chart's Redis and PostgreSQL images -> their stand-ins, built on the python base."""
    base = images.base_images_for(docker_client)["python"]
    chosen = {}
    for name, (official, standin) in DATASTORE_STANDINS.items():
        command = [
            docker_client, "build", "-q", "--build-arg", f"BASE={base}",
            "-f", str(STANDINS / f"{name}.Dockerfile"), "-t", standin, str(STANDINS),
        ]  # fmt: skip
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            pytest.fail(f"building the {name} stand-in failed: {done.stderr[-500:]}")
        chosen[official] = standin
    return chosen


@pytest.fixture(scope="session")
def rendered() -> Rendered:
    from tests.charts.test_chart import helm

    return Rendered.from_helm(helm(), CHART, release=RELEASE, namespace=NAMESPACE, values=[VALUES])


#: what the platform runs (every workload but the operator, which has no API server here)
def platform_workloads(rendered: Rendered) -> list[str]:
    return [n for n in rendered.workloads() if n != f"{RELEASE}-operator"]


@pytest.fixture(scope="session")
def cluster(rendered: Rendered, substitutes: dict[str, str]) -> Iterator[Kubelet]:
    """The rendered platform, every pod ready, the edge and the console published."""
    kubelet = Kubelet(
        rendered,
        namespace=NAMESPACE,
        substitutes=substitutes,
        publish=[f"{RELEASE}-edge", f"{RELEASE}-console"],
    )
    _RUNNING.append(kubelet)
    try:
        pods = kubelet.start_all(platform_workloads(rendered))
        kubelet.wait_ready(pods, timeout_s=240)
    except BaseException:
        print(kubelet.describe())
        _close()
        raise
    for note in kubelet.notes:
        print(f"kubelet: {note}")
    yield kubelet
    _close()


_RUNNING: list[Kubelet] = []


def _close() -> None:
    while _RUNNING:
        _RUNNING.pop().close()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Remove the pods after the last container test (they would load the cores under the
    tests that follow)."""
    here = Path(__file__).parent
    if _RUNNING and (nextitem is None or here not in Path(nextitem.path).parents):
        _close()


def pod(cluster: Kubelet, component: str) -> Pod:
    (found,) = cluster.pods_of(f"{RELEASE}-{component}")
    return found


def published(cluster: Kubelet, component: str, port: int) -> str:
    """``http://127.0.0.1:<port>`` where a component's Service port is published."""
    return f"http://127.0.0.1:{pod(cluster, component).published[port]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first container test builds the images (and, on a machine that has none, the base
    images: minutes of debootstrap) in its setup: more than the suite's 300 s per test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.timeout(1200))
