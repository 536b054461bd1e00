"""HTTP/1.1 requests with the request target exactly as written.

HTTP clients normalise what they are given (httpx resolves ``..``, re-quotes ``%2e``), which
is what a hostile client does not do; this one writes the bytes as they are.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    base_url: str, target: bytes, *, method: bytes = b"GET", headers: dict[str, str] | None = None
) -> RawAnswer:
    """Send ``method target HTTP/1.1`` to ``base_url``'s host and read the whole answer."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [method + b" " + target + b" HTTP/1.1", f"Host: {host}:{port}".encode()]
    lines += [f"{k}: {v}".encode() for k, v in (headers or {}).items()]
    lines.append(b"Connection: close")
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(status_line.split()[1]), answer_headers, body)
