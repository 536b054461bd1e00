"""The edge's settings (``FLOTILLA_EDGE_*``)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from flotilla.contracts import catalogue
from flotilla.core import ComponentSettings, component_config

from ._routing import ROUTE_TABLE, Route

#: where each upstream listens on this machine (the catalogue's ports)
DEFAULT_UPSTREAMS = catalogue.local_url_map("upstreams", "edge")


class EdgeSettings(ComponentSettings):
    """The edge's settings (``FLOTILLA_EDGE_*``)."""

    model_config = component_config("EDGE")
    secret_fields = ("jwt_secret",)

    host: str = "127.0.0.1"
    port: int = catalogue.port("edge")
    server: Literal["uvicorn", "granian"] = "uvicorn"
    http_client: Literal["httpx", "aiohttp"] = "aiohttp"  # bench/edge.py: +0.6 ms vs +2.5 ms
    admin_host: str = "127.0.0.1"
    #: /metrics and detailed /readyz; None: no admin listener
    admin_port: int | None = catalogue.component("edge").admin_port
    # NOTE: the route table is code (flotilla.edge ROUTE_TABLE); deployments say where each
    # upstream is. FLOTILLA_EDGE_ROUTES replaces the table only for a platform of your own.
    routes: list[Route] = Field(default_factory=lambda: list(ROUTE_TABLE))
    upstreams: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_UPSTREAMS))
    # comma-separated client:sha256hex(key)[:scope scope …]; keys are never stored
    api_keys: str = ""
    jwt_secret: SecretStr = SecretStr("local-dev-secret-not-for-production-use")
    # NOTE: NoDecode so that the documented plain form (HS256 or HS256,RS256) works as well
    # as a JSON list; pydantic-settings would otherwise insist on JSON for a list field.
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["HS256"])
    jwt_issuer: str = "flotilla-local"
    jwt_audience: str = "flotilla"
    jwt_leeway_s: float = Field(default=30.0, ge=0)  # clock skew allowed for exp, nbf, iat
    # NOTE: whether a client's traceparent/tracestate/baggage is believed; off in the chart
    # (the trace then starts here, with a link to the caller's), on for local development.
    trust_trace_context: bool = False
    redis_url: str = "redis://127.0.0.1:6379/0"
    rate_limit_per_second: float = Field(default=200.0, gt=0)
    rate_limit_burst: int = Field(default=400, ge=1)
    rate_limit_prefix: str = "flotilla:ratelimit"
    # requests without valid credentials, per client address (credential guessing is not free)
    anonymous_rate_limit_per_second: float = Field(default=5.0, gt=0)
    anonymous_rate_limit_burst: int = Field(default=20, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=0)
    upstream_timeout_s: float = Field(default=10.0, gt=0)
    upstream_connect_timeout_s: float = Field(default=1.0, gt=0)
    retries: int = Field(default=2, ge=0)  # extra attempts, for idempotent methods only
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=10.0, gt=0)
    trust_forwarded: bool = False  # behind a trusted proxy, extend its X-Forwarded-For

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _some_algorithm(cls, value: list[str]) -> list[str]:
        if not value or any(alg.lower() == "none" for alg in value):
            raise ValueError("name at least one signing algorithm, and never 'none'")
        return value

    @field_validator("upstreams")
    @classmethod
    def _upstreams_are_http(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"upstream {name!r}: an upstream is an http(s):// base URL")
        return {name: url.rstrip("/") for name, url in value.items()}

    @model_validator(mode="after")
    def _every_route_has_its_upstream(self) -> EdgeSettings:
        missing = sorted({r.upstream for r in self.routes} - set(self.upstreams))
        if missing:
            raise ValueError(
                f"FLOTILLA_EDGE_UPSTREAMS names no address for {', '.join(missing)}; "
                "set it to a JSON object such as "
                + json.dumps({"orders-api": f"http://orders-api:{catalogue.port('orders-api')}"})
            )
        return self

    @field_validator("api_keys")
    @classmethod
    def _api_keys_are_hashed(cls, value: str) -> str:
        from ._auth import parse_api_keys  # NOTE: _auth imports nothing from here; no cycle

        parse_api_keys(value)
        return value
