"""The Platform object with stand-in processes: order, readiness, logs, crashes, stopping.

The real services are started by tests/e2e; here ``specs_for`` swaps them for small real
programs (``python -m http.server`` and ``python -c`` scripts on free ports), so each
supervisor behaviour can be provoked on purpose. The broker is the test Redis (``redis_url``),
which the platform finds answering and uses as it is.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from rich.console import Console

from flotilla.cli import (
    BrokerChoice,
    CliSettings,
    Platform,
    PlatformError,
    ProcessSpec,
    StartInterrupted,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def http_server(name: str, port: int, folder: Path) -> ProcessSpec:
    """A real HTTP server, ready when it answers; it logs each request it serves."""
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    argv += ["--directory", str(folder)]
    return ProcessSpec(name, argv, {"PYTHONUNBUFFERED": "1"}, ready=lambda: answers(port))


def visitor(
    name: str, port: int, code: str = "import time; time.sleep(120)", after: str = ""
) -> ProcessSpec:
    """Asks the server on ``port`` once at start (fails if it is not up yet), then runs code."""
    prelude = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2); "
        "print('the server answered me', flush=True); "
    )
    return ProcessSpec(
        name, [sys.executable, "-c", prelude + code], after=(after,) if after else ()
    )


def settings(tmp_path: Path, redis_url: str) -> CliSettings:
    return CliSettings(
        var_dir=tmp_path / "var",
        redis_url=redis_url,
        edge_port=free_port(),
        console_port=free_port(),
        orders_port=free_port(),
        inventory_port=free_port(),
        payments_port=free_port(),
        smtp_port=free_port(),
        grace_period_s=3,
        ready_timeout_s=20,
    )


def recorder() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=300, color_system=None), out


def survivors(processes: list[psutil.Process]) -> list[psutil.Process]:
    time.sleep(0.2)
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_processes_start_in_order_after_readiness_with_prefixed_logs(
    tmp_path: Path, redis_url: str
) -> None:
    """A process that needs another (``after``) only starts once that one answers HTTP; each
    log line names its process; the local API key is made on the way and stopping leaves
    nothing running."""
    port = free_port()
    seen: list[BrokerChoice] = []

    def specs(_: CliSettings, broker: BrokerChoice, api_key: str) -> list[ProcessSpec]:
        seen.append(broker)
        return [http_server("web", port, tmp_path), visitor("client", port, after="web")]

    shown, out = recorder()
    platform = Platform(settings(tmp_path, redis_url), console=shown, specs_for=specs)
    try:
        platform.start()
        deadline = time.monotonic() + 10
        while "the server answered me" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = [psutil.Process(c.process.pid) for c in platform.supervisor.children]
    finally:
        platform.stop()
    lines = out.getvalue().splitlines()
    assert seen[0].origin == "existing" and seen[0].url == redis_url
    assert any(line.startswith("client") and "| the server answered me" in line for line in lines)
    assert any(line.startswith("web") and '"GET / HTTP/1.1" 200' in line for line in lines)
    assert platform.api_key_path.read_text().strip() == platform.api_key
    assert len(tree) == 2 and not survivors(tree)


def test_a_killed_process_is_restarted_while_the_others_keep_serving(
    tmp_path: Path, redis_url: str
) -> None:
    """SIGKILL one process, as the OOM killer does: the platform keeps running, the web server
    answers throughout, the killed process and its grandchildren are gone and it comes back
    after the back-off; status.json says it restarted once and last exited with -9."""
    port = free_port()
    family = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        "time.sleep(120)"
    )

    def specs(*_: object) -> list[ProcessSpec]:
        return [
            http_server("web", port, tmp_path),
            ProcessSpec("family", [sys.executable, "-c", family]),
        ]

    shown, out = recorder()
    platform = Platform(settings(tmp_path, redis_url), console=shown, specs_for=specs)
    platform.start()
    watching = threading.Thread(target=platform.wait)
    watching.start()
    try:
        (first,) = [c for c in platform.supervisor.children if c.spec.name == "family"]
        killed = psutil.Process(first.process.pid)
        tree = [killed]
        while len(tree) < 2:
            tree = [killed, *killed.children(recursive=True)]
        killed.kill()
        answered = []
        deadline = time.monotonic() + 20
        while first.restarts == 0 or first.state != "running":
            answered.append(answers(port))
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.1)
        assert first.process.pid != killed.pid
        status = wait_for_status(platform, lambda p: p["name"] == "family" and p["restarts"] == 1)
    finally:
        platform.stop()
        watching.join(10)
    assert all(answered) and len(answered) > 3
    assert status["last_exit_code"] == -9 and status["state"] == "running"
    assert "flotilla: family exited with code -9 (SIGKILL); restarting it in 1 s (restart 1)" in (
        out.getvalue()
    )
    assert not survivors(tree)


def wait_for_status(platform: Platform, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first process entry of ``var/local/status.json`` that ``match`` accepts."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            processes = json.loads(platform.status_path.read_text())["processes"]
        except (FileNotFoundError, json.JSONDecodeError):
            processes = []
        found = [p for p in processes if match(p)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no such process in {platform.status_path}")


def test_a_failing_migration_aborts_the_start_and_stops_what_started(
    tmp_path: Path, redis_url: str
) -> None:
    port = free_port()

    def specs(*_: object) -> list[ProcessSpec]:
        return [
            http_server("web", port, tmp_path),
            ProcessSpec("migrate", [sys.executable, "-c", "raise SystemExit(3)"], oneshot=True),
            visitor("never", port),
        ]

    shown, out = recorder()
    platform = Platform(settings(tmp_path, redis_url), console=shown, specs_for=specs)
    with pytest.raises(PlatformError, match="migrate failed with exit code 3"):
        platform.start()
    assert not answers(port)  # the web server was stopped again
    assert "never" not in out.getvalue()


def test_a_stop_while_a_process_is_starting_gives_up_at_once(
    tmp_path: Path, redis_url: str
) -> None:
    """Ctrl-C during a slow start does not wait for readiness or its timeout."""

    def specs(*_: object) -> list[ProcessSpec]:
        never_ready = [sys.executable, "-c", "import time; time.sleep(120)"]
        return [ProcessSpec("slow", never_ready, ready=lambda: False)]

    shown, _ = recorder()
    platform = Platform(settings(tmp_path, redis_url), console=shown, specs_for=specs)
    threading.Timer(0.5, platform.stopping.set).start()
    with pytest.raises(PlatformError) as raised:
        platform.start()
    assert isinstance(raised.value.__cause__, StartInterrupted)
    assert not platform.supervisor.children


RUNNER = """
import json, sys
from flotilla.cli import CliSettings, Platform, ProcessSpec, run_platform

config = json.loads(sys.argv[1])
def specs(*_):
    return [ProcessSpec(name, argv) for name, argv in config["children"]]
platform = Platform(CliSettings(**config["settings"]), specs_for=specs)
ready = lambda _: print("flotilla: platform ready", flush=True)
sys.exit(run_platform(platform, on_ready=ready, errors=platform.console))
"""


def run_in_foreground(
    tmp_path: Path, redis_url: str, children: list[tuple[str, list[str]]]
) -> tuple[subprocess.Popen[str], list[str]]:
    """`run_platform` (what `flotilla up` runs) in its own process, with stand-in children;
    returns once it says it is ready."""
    config = {
        "settings": {
            "var_dir": str(tmp_path / "var"),
            "redis_url": redis_url,
            **{f"{name}_port": free_port() for name in ("edge", "console", "orders")},
            **{f"{name}_port": free_port() for name in ("inventory", "payments", "smtp")},
            "grace_period_s": 3,
        },
        "children": children,
    }
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line.rstrip())
        if line.startswith("flotilla: platform ready"):
            return process, seen
    raise AssertionError("never ready:\n" + "\n".join(seen))


GRANDPARENT = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "print('family up', flush=True); time.sleep(120)"
)
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('stubborn up', flush=True); time.sleep(120)"
)


def process_tree(pid: int, size: int) -> list[psutil.Process]:
    """The descendants of ``pid`` once there are ``size`` of them (grandchildren start late)."""
    deadline = time.monotonic() + 20
    while len(tree := psutil.Process(pid).children(recursive=True)) < size:
        assert time.monotonic() < deadline, f"only {len(tree)} descendants"
        time.sleep(0.05)
    return tree


def test_sigterm_stops_every_child_and_grandchild(tmp_path: Path, redis_url: str) -> None:
    """SIGTERM to the supervisor: children stop newest first, one that ignores SIGTERM is
    killed after the grace period, grandchildren too, and the supervisor exits 0."""
    process, _ = run_in_foreground(
        tmp_path,
        redis_url,
        [
            ("family", [sys.executable, "-c", GRANDPARENT]),
            ("stubborn", [sys.executable, "-c", STUBBORN]),
        ],
    )
    tree = process_tree(process.pid, 3)  # family, its grandchild, stubborn
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=60)[0]
    assert process.returncode == 0
    assert "stubborn ignored SIGTERM; killing it" in rest
    assert rest.rstrip().endswith("flotilla: stopped")
    assert not survivors(tree)


def test_a_child_dying_is_restarted_and_only_sigterm_stops_the_platform(
    tmp_path: Path, redis_url: str
) -> None:
    """A child that exits on its own is restarted (the platform does not stop); SIGTERM then
    stops everything and the supervisor exits 0."""
    process, _ = run_in_foreground(
        tmp_path,
        redis_url,
        [
            ("family", [sys.executable, "-c", GRANDPARENT]),
            ("fragile", [sys.executable, "-c", "import time; time.sleep(1); raise SystemExit(4)"]),
        ],
    )
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line.rstrip())
        if "restarting it in 2 s (restart 2)" in line:
            break
    assert process.poll() is None
    tree = process_tree(process.pid, 3)  # family, its grandchild, fragile (or its successor)
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=60)[0]
    assert process.returncode == 0
    assert "flotilla: fragile exited with code 4; restarting it in 1 s (restart 1)" in seen
    assert rest.rstrip().endswith("flotilla: stopped")
    assert not survivors(tree)
