"""What `make e2e` does to a cluster, the way a user does it: ``kubectl`` and ``helm``
commands, port-forwards, and waiting for what they show. Nothing here knows which cluster
it is (kind, a cloud, a single node built from source): ``KUBECONFIG`` names it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

KUBECTL = os.environ.get("E2E_KUBECTL", "kubectl")


class CommandFailed(AssertionError):
    """A kubectl or helm command exited non-zero (its output is the message)."""


def run(argv: list[str], *, timeout_s: float = 120, check: bool = True) -> str:
    """Run a command; its stdout (stderr joined in the error when it fails)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"{shlex.join(argv)}: no answer in {timeout_s:.0f} s") from exc
    if check and done.returncode != 0:
        raise CommandFailed(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def kubectl(*args: str, timeout_s: float = 60, check: bool = True) -> str:
    return run([KUBECTL, *args], timeout_s=timeout_s, check=check)


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def eventually(
    check: Callable[[], Any], timeout_s: float, every_s: float = 1.0, what: str = ""
) -> Any:
    """``check()``'s first true answer within ``timeout_s``; else an AssertionError saying
    what was waited for and the last answer."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = check()
        except (httpx.HTTPError, CommandFailed, OSError, KeyError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what or 'condition'} not so within {timeout_s:.0f} s (last: {last!r})"[:3000]
            )
        time.sleep(every_s)


@dataclass
class PortForward:
    """``kubectl port-forward <target> :<port>`` kept open: ``url`` on 127.0.0.1. Started
    again when it breaks (the pod behind a Service went away)."""

    namespace: str
    target: str
    port: int
    local: int = 0
    process: subprocess.Popen[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> PortForward:
        with self._lock:
            self.stop()
            self.process = subprocess.Popen(
                [KUBECTL, "-n", self.namespace, "port-forward", self.target, f":{self.port}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert self.process.stdout is not None
            line = self.process.stdout.readline()
            found = re.search(r"127\.0\.0\.1:(\d+)", line)
            if not found:
                raise CommandFailed(f"port-forward {self.target}: {line.strip()}")
            self.local = int(found.group(1))
            # NOTE: keep reading, or kubectl blocks once the pipe is full ("Handling connection")
            threading.Thread(target=self.process.stdout.read, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        if self.process is None or self.process.poll() is not None:
            self.start()
        return f"http://127.0.0.1:{self.local}"

    def restart(self) -> None:
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@contextmanager
def port_forward(namespace: str, target: str, port: int) -> Iterator[PortForward]:
    forward = PortForward(namespace, target, port).start()
    try:
        yield forward
    finally:
        forward.stop()


def pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    body: dict[str, Any] = kubectl_json("-n", namespace, "get", "pods", "-l", selector)
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def restarts(pod: dict[str, Any]) -> dict[str, int]:
    """Each container's (and init container's) restart count."""
    status = pod.get("status", {})
    counted = status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
    return {c["name"]: int(c.get("restartCount", 0)) for c in counted}


def replicas(namespace: str, deployment: str) -> int:
    body = kubectl_json("-n", namespace, "get", "deployment", deployment)
    return int(body["spec"].get("replicas", 0))
