"""An API server's front door for kmock's KubernetesEmulator: HTTPS with a certificate from a
CA made for the test, and bearer-token authentication, as a real API server has them.

kmock speaks plain HTTP and takes any caller; a real API server verifies its TLS with the
cluster's CA and answers 401 to a token it does not know. The front does both and forwards
everything else to the emulator unchanged (watch streams included, chunk by chunk), so the
operator's login — the CA it trusts, the token it presents, a token rotated or revoked — is
tested against what a cluster would answer. It records every token it saw and every 401.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: what a real API server answers a request it cannot authenticate
UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
_HOP_BY_HOP = {"host", "authorization", "content-length", "transfer-encoding", "connection"}


@dataclass
class CertificateAuthority:
    """A CA of the test's own, and server certificates it signs (files in ``folder``)."""

    folder: Path

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flotilla-test-ca")])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = self.folder / "ca.crt"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_pem(self) -> str:
        return self.ca_file.read_text()

    def server_context(self, names: Iterable[str]) -> ssl.SSLContext:
        """A TLS server context whose certificate names ``names`` (DNS names and IPs)."""
        key = ec.generate_private_key(ec.SECP256R1())
        alternatives: list[x509.GeneralName] = []
        for entry in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                alternatives.append(x509.DNSName(entry))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        cert_file, key_file = self.folder / "server.crt", self.folder / "server.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context


@dataclass
class ApiFront:
    """HTTPS + bearer tokens in front of ``upstream`` (kmock's URL).

    Attributes:
        tokens: the tokens it accepts now; change it to rotate or revoke one.
        served: requests let through, by token.
        refused: ``(monotonic time, token)`` of each 401 it answered.
    """

    upstream: str
    authority: CertificateAuthority
    tokens: set[str]
    host: str = "127.0.0.1"
    names: tuple[str, ...] = ("127.0.0.1", "localhost", "kubernetes.default.svc")
    served: Counter[str] = field(default_factory=Counter)
    refused: list[tuple[float, str]] = field(default_factory=list)
    port: int = 0

    async def start(self) -> ApiFront:
        self._client = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, 0, ssl_context=self.authority.server_context(self.names)
        )
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    def url(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}"

    def refused_since(self, since: float) -> int:
        return sum(1 for at, _ in self.refused if at >= since)

    async def stop(self) -> None:
        await self._runner.cleanup()
        await self._client.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            self.refused.append((time.monotonic(), token))
            return web.json_response(UNAUTHORIZED, status=401)
        self.served[token] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with self._client.request(
            request.method,
            self.upstream.rstrip("/") + request.path_qs,
            headers=headers,
            data=body or None,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as answer:
            response = web.StreamResponse(status=answer.status)
            for key, value in answer.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    response.headers[key] = value
            await response.prepare(request)
            try:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the caller or the emulator went away mid-stream (a watch ends so)
            await response.write_eof()
            return response
