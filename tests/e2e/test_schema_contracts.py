"""schemathesis, with every check it has, against the OpenAPI documents on the running
platform: through the edge for the public operations of orders-api and inventory-api (with the
local API key), and directly for every service's own (inventory's internal reservations,
payments-api, the console's API and OTLP receiver included). It finds nothing: every answer is
documented, problem+json included.

Runs last in tests/e2e (it places orders and holds stock the other e2e tests do not expect).
The seed is fixed so that CI is deterministic; change it to explore.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
SEED = "20261201"


def schemathesis(schema_url: str, base_url: str, *options: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "run",
        schema_url,
        "--url",
        base_url,
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--seed",
        SEED,
        "--no-color",
        *options,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize(
    ("service", "prefix", "operations"),
    [("orders", "/api", "^/orders"), ("inventory", "/api/inventory", "^/products")],
)
def test_the_public_operations_through_the_edge_keep_their_contract(
    platform: Platform, service: str, prefix: str, operations: str
) -> None:
    run = schemathesis(
        f"{platform.url(service)}/openapi.json",
        platform.edge + prefix,
        "-H",
        f"Authorization: Bearer {platform.api_key}",
        "--include-path-regex",
        operations,
    )
    assert run.returncode == 0, run.stdout[-6000:]


@pytest.mark.parametrize("service", ["orders", "inventory", "payments", "console"])
def test_each_services_own_operations_keep_their_contract(platform: Platform, service: str) -> None:
    """Called as the edge calls them (orders needs X-Client-Id), internal routes included."""
    who = ["-H", "X-Client-Id: key:contract-test"] if service == "orders" else []
    run = schemathesis(f"{platform.url(service)}/openapi.json", platform.url(service), *who)
    assert run.returncode == 0, run.stdout[-6000:]
