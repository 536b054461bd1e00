"""Free TCP ports on loopback, so parallel test runs never collide."""

from __future__ import annotations

import socket
import time

from flotilla.cli._broker import free_port as cli_free_port


def free_port() -> int:
    """A port nothing listens on (flotilla up's own choice: below the ephemeral range, which
    outgoing connections take from, and never the same one twice in a process)."""
    return cli_free_port()


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")
