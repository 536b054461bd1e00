"""Where the Kubernetes API server is, and how the operator proves who it is.

Found the way client-go and kopf find it, in this order:

1. ``FLOTILLA_OPERATOR_API_URL`` — an explicit override (tests, a proxy), with
   ``FLOTILLA_OPERATOR_API_TOKEN`` or ``FLOTILLA_OPERATOR_API_TOKEN_FILE`` and, for ``https``,
   ``FLOTILLA_OPERATOR_API_CA_FILE``;
2. in a pod: ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` (the kubelet sets them in
   every container) and the service account the kubelet mounts at
   ``/var/run/secrets/kubernetes.io/serviceaccount`` (``token``, ``ca.crt``, ``namespace``);
3. outside a cluster: the current context of the kubeconfig (``KUBECONFIG``, else
   ``~/.kube/config``): its server, CA, and a token, token file or client certificate.

kopf's watches and the operator's own client use the one :class:`Credentials` built from it:
the same server, the same CA, the same token. A token that lives in a file (a projected
service-account token expires and the kubelet rotates it) is read again every minute, as
client-go's cached token source does, and at once when the API server answers 401.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._settings import OperatorSettings

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: How old a token read from a file may get before it is read again.
TOKEN_REREAD_S = 60.0
OVERRIDE = "FLOTILLA_OPERATOR_API_URL"


class LoginError(RuntimeError):
    """No usable way to reach the API server was found; the message says what to fix."""


@dataclass(frozen=True)
class ApiServer:
    """The API server's address and what the operator shows it.

    Attributes:
        url: ``https://host:port`` (``http://`` only for a test's emulator).
        source: where this came from, for log lines (``service account``, a kubeconfig…).
        ca_file, ca_data: the CA that signed the server's certificate (PEM file or text).
        insecure: skip verifying the server's certificate (kubeconfig's
            ``insecure-skip-tls-verify``).
        token: a bearer token given as it is.
        token_file: a file holding the bearer token, read again as it rotates.
        client_cert_file, client_key_file, client_cert_data, client_key_data: a client
            certificate (kubeconfig users of kind and kubeadm clusters).
        namespace: the service account's namespace (or the context's).
    """

    url: str
    source: str
    ca_file: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    token: str | None = None
    token_file: Path | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: str | None = None
    client_key_data: str | None = None
    namespace: str | None = None

    @property
    def describe(self) -> str:
        return f"{self.url} ({self.source})"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS settings both HTTP clients use: the server's CA and the client certificate
        (None for a plain ``http://`` URL)."""
        if not self.url.startswith("https:"):
            return None
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_file or self.client_cert_data:
            with _pem_files(
                (self.client_cert_file, self.client_cert_data),
                (self.client_key_file, self.client_key_data),
            ) as (cert, key):
                context.load_cert_chain(cert, key)
        return context


@contextlib.contextmanager
def _pem_files(*pairs: tuple[str | None, str | None]) -> Any:
    """File paths for PEM given as a path or as text (Python's ssl loads certificates from
    files only); text goes to temporary files that are gone once the block ends."""
    with contextlib.ExitStack() as stack:
        paths = []
        for path, data in pairs:
            if path or not data:
                paths.append(path)
                continue
            handle = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".pem"))
            handle.write(data)
            handle.flush()
            paths.append(handle.name)
        yield paths


def find_api_server(
    env: Mapping[str, str] | None = None,
    *,
    settings: OperatorSettings | None = None,
    service_account: Path = SERVICE_ACCOUNT,
) -> ApiServer:
    """The API server to use, found as the module docstring says.

    Args:
        env: the environment (``KUBERNETES_SERVICE_*``, ``KUBECONFIG``, ``HOME``).
        settings: the override (``FLOTILLA_OPERATOR_API_*``); by default read from ``env``.
        service_account: where the kubelet mounts the pod's service account.

    Raises:
        LoginError: none of the three ways is available, or the one chosen is unusable.
    """
    env = os.environ if env is None else env
    settings = settings if settings is not None else OperatorSettings.from_env(env)
    if settings.api_url:
        secret = settings.api_token
        return ApiServer(
            url=settings.api_url.strip().rstrip("/"),
            source=OVERRIDE,
            token=secret.get_secret_value() if secret else None,
            token_file=settings.api_token_file,
            ca_file=str(settings.api_ca_file) if settings.api_ca_file else None,
        )
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    token = service_account / "token"
    if host and port and token.exists():
        namespace = service_account / "namespace"
        ca = service_account / "ca.crt"
        return ApiServer(
            url=f"https://{_host(host)}:{port}",
            source=f"service account {service_account}",
            token_file=token,
            ca_file=str(ca) if ca.exists() else None,
            namespace=namespace.read_text().strip() if namespace.exists() else None,
        )
    kubeconfig = _kubeconfig_paths(env)
    if kubeconfig:
        return _from_kubeconfig(kubeconfig)
    if host:
        raise LoginError(
            f"in a pod (KUBERNETES_SERVICE_HOST={host}) but no service account token at "
            f"{token}: give the pod a service account with automountServiceAccountToken: true"
        )
    raise LoginError(
        "no Kubernetes API server to talk to: not in a pod (KUBERNETES_SERVICE_HOST is unset), "
        f"no kubeconfig (KUBECONFIG, ~/.kube/config) and no {OVERRIDE}"
    )


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _kubeconfig_paths(env: Mapping[str, str]) -> list[Path]:
    named = [Path(p).expanduser() for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if named:
        return [p for p in named if p.exists()] or named
    default = Path(env.get("HOME", "~")).expanduser() / ".kube" / "config"
    return [default] if default.exists() else []


def _from_kubeconfig(paths: list[Path]) -> ApiServer:
    """The current context of the merged kubeconfig files (the first file to set a name
    wins, as kubectl merges them)."""
    current: str | None = None
    sections: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {
        "contexts": {},
        "clusters": {},
        "users": {},
    }
    for file in paths:
        try:
            config = yaml.safe_load(file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise LoginError(f"cannot read the kubeconfig {file}: {exc}") from exc
        current = current or config.get("current-context")
        for section, entries in sections.items():
            inner = section[:-1]
            for item in config.get(section) or []:
                entries.setdefault(item["name"], (item.get(inner) or {}, file.parent))
    where = os.pathsep.join(str(p) for p in paths)
    if not current or current not in sections["contexts"]:
        raise LoginError(
            f"the kubeconfig {where} has no current context: kubectl config use-context"
        )
    context, _ = sections["contexts"][current]
    try:
        cluster, cluster_dir = sections["clusters"][context["cluster"]]
        user, user_dir = (
            sections["users"][context.get("user", "")] if context.get("user") else ({}, cluster_dir)
        )
    except KeyError as exc:
        raise LoginError(f"the kubeconfig's context {current} names a missing {exc}") from exc
    if "exec" in user or "auth-provider" in user:
        raise LoginError(
            f"the kubeconfig's user of context {current} logs in with an exec or auth-provider "
            "plugin, which the operator does not run: use a token or a client certificate"
        )

    def path(entry: dict[str, Any], key: str, base: Path) -> str | None:
        value = entry.get(key)
        return str((base / value).resolve()) if value else None

    return ApiServer(
        url=str(cluster.get("server", "")).rstrip("/"),
        source=f"kubeconfig {where}, context {current}",
        ca_file=path(cluster, "certificate-authority", cluster_dir),
        ca_data=_decoded(cluster.get("certificate-authority-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=user.get("token"),
        token_file=Path(p) if (p := path(user, "tokenFile", user_dir)) else None,
        client_cert_file=path(user, "client-certificate", user_dir),
        client_key_file=path(user, "client-key", user_dir),
        client_cert_data=_decoded(user.get("client-certificate-data")),
        client_key_data=_decoded(user.get("client-key-data")),
        namespace=context.get("namespace"),
    )


def _decoded(data: str | None) -> str | None:
    import base64

    return base64.b64decode(data).decode() if data else None


class Credentials:
    """The API server, its current bearer token, and whether the server takes it.

    Shared by kopf's session and the operator's :class:`~flotilla.operator.kube.KubeApi`, so
    both present the same token and both report what the server answers. ``accepted`` is
    the readiness of the operator: True once a request was answered with anything but 401.

    A rejected token is logged once (not once a request): the line says what to check.
    """

    def __init__(
        self,
        server: ApiServer,
        *,
        reread_s: float = TOKEN_REREAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = server
        self._reread_s = reread_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token = server.token
        self._read_at = -float("inf")
        self.accepted = False
        self.problem = "not logged in yet"
        self._reported: str | None = None  # the last token (or reason) logged as a problem

    def token(self) -> str | None:
        """The bearer token to present now (read again from its file once a minute)."""
        with self._lock:
            if self.server.token_file and self._clock() - self._read_at >= self._reread_s:
                self._read_file()
            return self._token

    def reread(self) -> str | None:
        """Read the token file now (after a 401: it may have rotated)."""
        with self._lock:
            if self.server.token_file:
                self._read_file()
            return self._token

    def _read_file(self) -> None:
        assert self.server.token_file is not None
        try:
            self._token = self.server.token_file.read_text().strip() or None
        except OSError as exc:
            logger.warning("cannot read the token file %s: %s", self.server.token_file, exc)
        self._read_at = self._clock()

    def answered(self, status: int, token: str | None) -> None:
        """What the API server answered a request made with ``token``."""
        if status != 401:
            if not self.accepted:
                if self._reported is not None:
                    logger.info("the API server %s accepts the token now", self.server.describe)
                self.accepted, self.problem, self._reported = True, "", None
            return
        self.rejected(token, "401 Unauthorized")

    def rejected(self, token: str | None, reason: str) -> None:
        self.accepted = False
        where = self.server.token_file or self.server.source
        self.problem = f"the API server rejects the token from {where} ({reason})"
        if self._reported != (token or ""):
            self._reported = token or ""
            logger.error(
                "the API server %s rejects the token from %s (%s): check the service account "
                "exists and its token is mounted and current; the operator waits for a token "
                "it accepts (reading the file again) and is not ready until then",
                self.server.url,
                where,
                reason,
            )

    def unreachable(self, reason: str) -> None:
        """The API server could not be reached (the verdict on the token stays)."""
        self.problem = f"cannot reach the API server {self.server.url}: {reason}"
        if self._reported != reason:
            self._reported = reason
            logger.warning("%s; trying again", self.problem)
