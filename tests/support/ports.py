"""Free TCP ports on loopback, so parallel test runs never collide."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

#: ports this process has handed out (each test asks for several before any is bound)
_GIVEN: set[int] = set()


def _ephemeral_floor() -> int:
    """Where the kernel starts handing out ports for outgoing connections (Linux: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing listens on, below the ephemeral range: a port the kernel picked
    (bind to 0) is an ephemeral one, which any test's outgoing connection may take before the
    process it was meant for binds it (seen under parallel tests)."""
    floor = _ephemeral_floor()
    for _ in range(100):
        port = random.randint(10_000, floor - 1)
        if port in _GIVEN:
            continue  # NOTE: not yet bound by whoever asked for it first
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _GIVEN.add(port)
            return port
    raise RuntimeError("no free port below the ephemeral range")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")
