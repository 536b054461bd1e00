"""How the operator finds the API server and logs in, and what it does when the token changes
or is refused.

The API server is kmock's emulator behind tests/support/api_front.py: HTTPS with a
certificate from a CA made for the test, and bearer tokens checked on every request, as a
cluster's API server does (no API server can run here). The operator processes are real; none
is given ``FLOTILLA_OPERATOR_API_URL`` except where the override itself is tested. The
in-pod path (the service account the kubelet mounts) runs in tests/containers, where the
operator's image gets the projected files at their real path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from flotilla.operator.kube import ApiServer, LoginError, find_api_server
from tests.operator.cluster import NS, autoscaler, create, declare, eventually, fill, replicas
from tests.operator.processes import OperatorProcess, answers, operator_process
from tests.support.api_front import ApiFront, CertificateAuthority

pytestmark = pytest.mark.integration

PEERING = "flotilla-operator"


@pytest_asyncio.fixture
async def front(kmock: Any, tmp_path: Path) -> AsyncIterator[ApiFront]:
    """The emulator behind HTTPS and a token check; it accepts no token until a test says."""
    declare(kmock, peering=PEERING)
    authority = CertificateAuthority(tmp_path / "pki")
    running = await ApiFront(str(kmock.url), authority, tokens=set()).start()
    yield running
    await running.stop()


def kubeconfig(path: Path, front: ApiFront, user: dict[str, Any]) -> Path:
    """A kubeconfig whose current context is the front, the CA given as a file beside it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "clusters": [
            {
                "name": "front",
                "cluster": {"server": front.url(), "certificate-authority": "pki/ca.crt"},
            }
        ],
        "users": [{"name": "operator", "user": user}],
        "contexts": [
            {"name": "test", "context": {"cluster": "front", "user": "operator", "namespace": NS}}
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def readiness(op: OperatorProcess) -> tuple[int, dict[str, Any]]:
    answer = await op.get(op.probes, "/readyz")
    return answer.status_code, answer.json()


async def ready(op: OperatorProcess, timeout_s: float = 30) -> None:
    async def check() -> bool:
        return (await readiness(op))[0] == 200

    await answers(check, timeout_s)


@pytest.mark.asyncio
async def test_with_a_kubeconfig_it_logs_in_over_https_and_follows_a_rotated_token_file(
    front: ApiFront, kmock: Any, redis_url: str, tmp_path: Path
) -> None:
    """Outside a cluster: the kubeconfig's server, CA and token file, with no
    FLOTILLA_OPERATOR_API_URL. The token file is rotated and the old token revoked at once
    (as an expired projected token is): kopf and the operator's own client go on with the
    new one, without a restart."""
    token = tmp_path / "token"
    token.write_text("token-one")
    front.tokens = {"token-one"}
    config = kubeconfig(tmp_path / "config", front, {"tokenFile": str(token)})
    queue = f"login-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 45)
    async with operator_process({"KUBECONFIG": str(config)}) as op:
        await ready(op)
        await create(kmock, autoscaler(queue, redis_url))
        await eventually(lambda: replicas(kmock) == 5, timeout_s=30)
        assert front.served["token-one"] > 0 and front.refused == []

        token.write_text("token-two")
        front.tokens = {"token-two"}
        fill(redis_url, queue, 10).close()  # 55 messages: only a working operator asks for 6
        await eventually(lambda: replicas(kmock) == 6, timeout_s=30)
        assert front.served["token-two"] > 0
        assert (await readiness(op))[0] == 200
        assert not op.said("rejects the token")  # a 401, the file read again, the call redone
        assert await op.stop() == 0
    broker.close()


@pytest.mark.asyncio
async def test_a_refused_token_is_said_once_fails_readiness_and_is_tried_again_slowly(
    front: ApiFront, kmock: Any, redis_url: str, tmp_path: Path
) -> None:
    """A token the API server refuses: one clear log line, /readyz 503 saying why, /healthz
    200 (a restart cannot fix a token), a few attempts with growing pauses, not a tight loop;
    once the token file holds a good token, the operator logs in and works."""
    token = tmp_path / "token"
    token.write_text("revoked")
    front.tokens = {"good"}
    config = kubeconfig(tmp_path / "config", front, {"tokenFile": str(token)})
    async with operator_process({"KUBECONFIG": str(config)}) as op:
        await answers(lambda: op.get(op.probes, "/healthz"))
        started = time.monotonic()
        await asyncio.sleep(12)
        status, body = await readiness(op)
        assert status == 503 and str(token) in body["problem"], body
        assert (await op.get(op.probes, "/healthz")).status_code == 200
        assert op.proc.returncode is None
        assert 1 <= front.refused_since(started) <= 8  # pauses of 1, 2, 4, 8 s: not a loop
        said = [line for line in op.log if "rejects the token" in line]
        assert len(said) == 1, said
        assert json.loads(said[0])["level"] == "error"

        token.write_text("good")
        await ready(op, timeout_s=40)
        queue = f"login-{uuid.uuid4().hex[:8]}"
        broker = fill(redis_url, queue, 25)
        await create(kmock, autoscaler(queue, redis_url))
        await eventually(lambda: replicas(kmock) == 3, timeout_s=30)
        assert op.said("accepts the token now")
        assert await op.stop() == 0
        broker.close()


@pytest.mark.asyncio
async def test_the_override_takes_a_url_a_token_and_a_ca_file(
    front: ApiFront, kmock: Any, redis_url: str, tmp_path: Path
) -> None:
    front.tokens = {"override-token"}
    queue = f"login-{uuid.uuid4().hex[:8]}"
    broker = fill(redis_url, queue, 15)
    login = {
        "FLOTILLA_OPERATOR_API_URL": front.url(),
        "FLOTILLA_OPERATOR_API_TOKEN": "override-token",
        "FLOTILLA_OPERATOR_API_CA_FILE": str(front.authority.ca_file),
    }
    async with operator_process(login) as op:
        await ready(op)
        await create(kmock, autoscaler(queue, redis_url))
        await eventually(lambda: replicas(kmock) == 2, timeout_s=30)
        assert await op.stop() == 0
    assert front.refused == []
    broker.close()


def refusal(tmp_path: Path, **env: str) -> str:
    """The one line an operator started with nothing but ``env`` stops with (exit 2)."""
    done = subprocess.run(
        [sys.executable, "-m", "flotilla.operator", "--namespace", NS],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_without_any_way_to_an_api_server_the_operator_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    line = refusal(tmp_path)
    assert "KUBECONFIG" in line and "KUBERNETES_SERVICE_HOST" in line


# --- finding the API server (no process) -------------------------------------------------------


def service_account(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "token").write_text("sa-token\n")
    (folder / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (folder / "namespace").write_text("shop")
    return folder


def test_in_a_pod_the_service_account_and_the_service_env_name_the_api_server(
    tmp_path: Path,
) -> None:
    mounted = service_account(tmp_path / "sa")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    found = find_api_server(env, service_account=mounted)
    assert found.url == "https://10.96.0.1:443"
    assert found.token_file == mounted / "token" and found.token is None
    assert found.ca_file == str(mounted / "ca.crt") and found.namespace == "shop"
    ipv6 = find_api_server({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}, service_account=mounted)
    assert ipv6.url == "https://[fd00::1]:443"


def test_the_override_comes_first_and_a_kubeconfig_before_nothing(tmp_path: Path) -> None:
    mounted = service_account(tmp_path / "sa")
    pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    override = {**pod, "FLOTILLA_OPERATOR_API_URL": "https://api.example:6443/"}
    assert find_api_server(override, service_account=mounted).url == "https://api.example:6443"
    config = tmp_path / "config"
    config.write_text(
        yaml.safe_dump(
            {
                "current-context": "kind",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:7443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "kind", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    # in a pod, the service account wins over a kubeconfig that happens to be around
    both = {**pod, "KUBECONFIG": str(config)}
    assert find_api_server(both, service_account=mounted).url == "https://10.96.0.1:443"
    away = find_api_server({"KUBECONFIG": str(config)}, service_account=tmp_path / "none")
    assert (away.url, away.token) == ("https://127.0.0.1:7443", "t")


def test_a_kubeconfigs_certificates_come_as_files_beside_it_or_as_data(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    data = base64.b64encode(pem.encode()).decode()
    (tmp_path / "keys").mkdir()
    config = tmp_path / "config"
    config.write_text(
        yaml.safe_dump(
            {
                "current-context": "a",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://h:1", "certificate-authority-data": data},
                    }
                ],
                "users": [
                    {
                        "name": "u",
                        "user": {"client-certificate": "keys/me.crt", "client-key-data": data},
                    }
                ],
                "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    found = find_api_server({"KUBECONFIG": str(config)}, service_account=tmp_path / "none")
    assert found.ca_data == pem and found.client_key_data == pem
    assert found.client_cert_file == str(tmp_path / "keys" / "me.crt")


@pytest.mark.parametrize(
    ("user", "says"),
    [
        ({"exec": {"command": "aws"}}, "exec or auth-provider plugin"),
        ({"auth-provider": {"name": "gcp"}}, "exec or auth-provider plugin"),
    ],
)
def test_a_kubeconfig_the_operator_cannot_use_is_refused_with_the_reason(
    tmp_path: Path, user: dict[str, Any], says: str
) -> None:
    config = tmp_path / "config"
    config.write_text(
        yaml.safe_dump(
            {
                "current-context": "a",
                "clusters": [{"name": "c", "cluster": {"server": "https://h:1"}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    with pytest.raises(LoginError, match=says):
        find_api_server({"KUBECONFIG": str(config)}, service_account=tmp_path / "none")


def test_in_a_pod_without_a_mounted_token_the_error_says_what_to_set(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(LoginError, match="automountServiceAccountToken"):
        find_api_server({**env, "HOME": str(tmp_path)}, service_account=tmp_path / "none")


def test_a_plain_http_url_has_no_tls_and_https_trusts_the_given_ca(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path / "pki")
    assert ApiServer("http://127.0.0.1:1", source="t").ssl_context() is None
    context = ApiServer("https://h:1", source="t", ca_file=str(authority.ca_file)).ssl_context()
    assert context is not None
    assert any(
        c["subject"] == ((("commonName", "flotilla-test-ca"),),) for c in context.get_ca_certs()
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FLOTILLA_OPERATOR_METRICS_PORT", "70000"), ("FLOTILLA_OPERATOR_LOG_LEVEL", "LOUD")],
)
def test_a_bad_setting_stops_the_operator_with_one_line_naming_it(
    variable: str, value: str, tmp_path: Path
) -> None:
    """Its settings class (``FLOTILLA_OPERATOR_*``) refuses a bad value before it looks for an
    API server, in one line naming the variable, as every other process does."""
    line = refusal(tmp_path, **{variable: value})
    assert line.startswith(f"flotilla operator: {variable}: "), line
