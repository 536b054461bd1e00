"""`make e2e`: the user's path on a real cluster, whichever ``KUBECONFIG`` names.

Not part of `make test` (tests/conftest.py leaves this folder out unless
``FLOTILLA_CLUSTER_E2E`` is set, as `make e2e` does). Without a cluster that answers, it says
so in one line and exits 2, never a silent skip.

Settings (environment, as `make e2e VAR=…` passes them):

- ``HELM_ARGS``: extra arguments for ``helm install`` and ``helm upgrade`` (e.g.
  ``--set tracing.collector.enabled=false`` where some third-party image cannot be had);
- ``E2E_IMAGE_LOADER``: a command that makes an image available to the nodes, run once per
  image with its name appended (``kind load docker-image --name flotilla``); unset: the
  images are already there, or ``HELM_ARGS`` points ``image.registry`` at a registry;
- ``IMAGE_TAG`` (0.1.0), ``E2E_NAMESPACE`` (flotilla-e2e), ``E2E_RELEASE`` (flotilla).

Progress goes to the terminal as it happens; a table of every check with its time and its
figures closes the run.
"""

from __future__ import annotations

import base64
import os
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from tests.cluster.kube import PortForward, kubectl, kubectl_json, run
from tests.cluster.preflight import cluster_problem, describe

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "flotilla"
MEMBERS = ("edge", "orders", "inventory", "notifications", "payments", "console", "cli", "operator")
console = Console(
    file=sys.__stderr__, highlight=False, width=None if sys.__stderr__.isatty() else 140
)


@dataclass
class Journal:
    """What each check found (figures for the summary table) and how it ended."""

    started: float = field(default_factory=time.monotonic)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: str = ""

    def say(self, text: str) -> None:
        console.print(f"[dim]{time.monotonic() - self.started:7.1f}s[/dim] {text}")

    def note(self, text: str) -> None:
        """A figure of the current check, for the table (and said now)."""
        self.rows.setdefault(self.current, {"notes": []})["notes"].append(text)
        self.say(f"  {text}")


JOURNAL = Journal()


def helm_binary() -> str:
    from scripts.helm import helm

    found = helm()
    if found is None:
        pytest.exit("make e2e: no helm binary: run `make helm`", returncode=2)
    return str(found)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Exit 2 when no cluster answers (`make e2e` has said why in one line already)."""
    problem = cluster_problem()
    if problem:
        pytest.exit(problem, returncode=2)
    JOURNAL.say(f"[bold]make e2e[/bold] on {describe()}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    JOURNAL.current = item.name
    JOURNAL.rows.setdefault(item.name, {"notes": []})
    JOURNAL.say(f"[bold cyan]▶ {item.name.removeprefix('test_').replace('_', ' ')}[/bold cyan]")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    row = JOURNAL.rows.setdefault(report.nodeid.split("::")[-1], {"notes": []})
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        row["outcome"], row["seconds"] = report.outcome, report.duration
        mark = {"passed": "[green]✔", "failed": "[red]✘", "skipped": "[yellow]-"}[report.outcome]
        JOURNAL.say(f"{mark} {report.outcome}[/] in {report.duration:.1f} s")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = {k: v for k, v in JOURNAL.rows.items() if "outcome" in v}
    if not rows:
        return
    table = Table(title=f"make e2e: {time.monotonic() - JOURNAL.started:.0f} s in all")
    table.add_column("check")
    table.add_column("result")
    table.add_column("s", justify="right")
    table.add_column("figures")
    for name, row in rows.items():
        colour = {"passed": "green", "failed": "red"}.get(row["outcome"], "yellow")
        table.add_row(
            name.removeprefix("test_").replace("_", " "),
            f"[{colour}]{row['outcome']}[/{colour}]",
            f"{row['seconds']:.1f}",
            "\n".join(row["notes"]),
        )
    console.print(table)


@dataclass
class Release:
    """The release under test and how to reach it."""

    name: str
    namespace: str
    helm: str
    helm_args: list[str]
    installed_in_s: float = 0.0

    def full(self, component: str) -> str:
        return f"{self.name}-{component}"

    def secret(self, name: str, key: str) -> str:
        data = kubectl_json("-n", self.namespace, "get", "secret", self.full(name))["data"]
        return base64.b64decode(data[key]).decode()

    def forward(self, component: str, port: int) -> PortForward:
        return PortForward(self.namespace, f"svc/{self.full(component)}", port).start()

    def installed(self) -> bool:
        found = run([self.helm, "status", self.name, "-n", self.namespace], check=False)
        return bool(found)


def _load_images(tag: str) -> None:
    loader = os.environ.get("E2E_IMAGE_LOADER", "").strip()
    if not loader:
        JOURNAL.say("images: none loaded (E2E_IMAGE_LOADER unset: already on the nodes or pulled)")
        return
    for member in MEMBERS:
        image = f"localhost/flotilla/flotilla-{member}:{tag}"
        JOURNAL.say(f"images: {loader} {image}")
        run([*shlex.split(loader), image], timeout_s=600)


@pytest.fixture(scope="session")
def release() -> Iterator[Release]:
    """The chart installed as a user installs it (``helm install --wait``) into a namespace
    that enforces the restricted Pod Security profile; uninstalled and removed at the end."""
    namespace = os.environ.get("E2E_NAMESPACE", "flotilla-e2e")
    tag = os.environ.get("IMAGE_TAG", "0.1.0")
    subject = Release(
        name=os.environ.get("E2E_RELEASE", "flotilla"),
        namespace=namespace,
        helm=helm_binary(),
        helm_args=[*shlex.split(os.environ.get("HELM_ARGS", "")), "--set", f"image.tag={tag}"],
    )
    if subject.installed():
        JOURNAL.say(f"an earlier run's release {subject.name} is still in {namespace}: removing it")
        _remove(subject)
    _load_images(tag)
    kubectl("create", "namespace", namespace, check=False)
    kubectl(
        "label",
        "--overwrite",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
    )
    JOURNAL.say(
        f"helm install {subject.name} -n {namespace} {shlex.join(subject.helm_args)} --wait"
    )
    started = time.monotonic()
    run(
        [
            subject.helm,
            "install",
            subject.name,
            str(CHART),
            "-n",
            namespace,
            *subject.helm_args,
            "--wait",
            "--timeout",
            "10m",
        ],
        timeout_s=660,
    )
    subject.installed_in_s = time.monotonic() - started
    JOURNAL.say(f"installed in {subject.installed_in_s:.0f} s")
    try:
        yield subject
    finally:
        _remove(subject)


def _remove(subject: Release) -> None:
    if subject.installed():
        run(
            [subject.helm, "uninstall", subject.name, "-n", subject.namespace, "--wait"],
            timeout_s=300,
        )
    selector = f"app.kubernetes.io/instance={subject.name}"
    kubectl("-n", subject.namespace, "delete", "pvc", "-l", selector, "--wait=false", check=False)
    kubectl("delete", "namespace", subject.namespace, "--wait=true", timeout_s=300, check=False)
