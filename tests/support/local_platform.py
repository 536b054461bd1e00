"""The whole platform, started by the real ``flotilla up`` as a separate process tree.

Used by the end-to-end and the chaos tests: the test is a client speaking HTTP to the edge,
reading the supervisor's ``status.json`` to find processes (to kill them) and the console to
read traces. ``stop`` presses Ctrl-C as a person would and checks nothing is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.support.ports import free_port

READY_TIMEOUT_S = 180
SERVICES = ("edge", "edge-admin", "console", "orders", "inventory", "payments", "smtp")


@dataclass
class FlotillaUp:
    """``flotilla up`` on free ports in ``var_dir``, with the broker at ``redis_url``."""

    var_dir: Path
    redis_url: str
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=lambda: {n: free_port() for n in SERVICES})
    log: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    api_key: str = ""
    operator_key: str = ""

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def edge(self) -> str:
        return self.url("edge")

    @property
    def console(self) -> str:
        return self.url("console")

    def client(self, timeout_s: float = 30) -> httpx.Client:
        return httpx.Client(
            base_url=self.edge,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {self.api_key}"},
        )

    def start(self) -> FlotillaUp:
        argv = [sys.executable, "-m", "flotilla.cli", "up", "--var-dir", str(self.var_dir)]
        for name, port in self.ports.items():
            argv += [f"--{name}-port", str(port)]
        env = {**os.environ, "FLOTILLA_REDIS_URL": self.redis_url, **self.env}
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        ready = threading.Event()
        process = self.process

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.log.append(line.rstrip())
                if "flotilla: platform ready" in line:
                    ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.wait(0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                raise AssertionError("flotilla up did not become ready:\n" + self.tail(60))
        self.api_key = (self.var_dir / "local" / "api-key").read_text().strip()
        self.operator_key = (self.var_dir / "local" / "operator-key").read_text().strip()
        return self

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log[-lines:])

    def status(self) -> dict[str, Any]:
        """The supervisor's ``status.json``: processes (pid, state, restarts) and pools."""
        for _ in range(50):
            try:
                body: dict[str, Any] = json.loads(
                    (self.var_dir / "local" / "status.json").read_text()
                )
                return body
            except (FileNotFoundError, json.JSONDecodeError):  # NOTE: rewritten every second
                time.sleep(0.05)
        raise AssertionError("no readable status.json")

    def pids(self, *prefixes: str) -> dict[str, int]:
        """name → pid of the running processes whose name starts with one of ``prefixes``."""
        return {
            p["name"]: p["pid"]
            for p in self.status()["processes"]
            if p["pid"] and p["name"].startswith(prefixes)
        }

    def stop(self) -> None:
        """Ctrl-C, as a person would press it: everything stops, nothing is left behind."""
        assert self.process is not None
        tree = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(90)
        finally:
            self._reader.join(5)
        alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        for leftover in alive:
            leftover.kill()
        assert not alive, f"orphans after Ctrl-C: {[p.cmdline() for p in alive]}"
        assert self.process.returncode == 0, self.tail(30)
        assert self.log[-1] == "flotilla: stopped"
