"""The route table and choosing a request's upstream from it (pure functions).

A route names a public prefix, the upstream behind it and the path it is rewritten to; its
rules name each path pattern under the prefix, the methods allowed there and the scope a
caller needs. Nothing else is routed: a path no rule covers is 404, a method a rule does not
allow is 405 with ``Allow``. The table below is the only one: the edge's defaults,
``flotilla up`` and the chart give the edge upstream addresses (``FLOTILLA_EDGE_UPSTREAMS``),
never routes, and ``docs/security.md`` is checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field, field_validator

from flotilla.contracts.scopes import CUSTOMER_SCOPES, OPERATOR_SCOPE

from ._paths import encode_segments

__all__ = ["CUSTOMER_SCOPES", "OPERATOR_SCOPE"]  # NOTE: the edge's face re-exports them


class Rule(BaseModel):
    """Requests for ``path`` (under the route's prefix) with one of ``methods`` need ``scope``.

    ``path`` is literal segments and ``{name}`` placeholders (one segment each), e.g.
    ``/{order_id}/cancel``; ``""`` is the prefix itself. ``GET`` allows ``HEAD`` too.
    """

    methods: list[str] = Field(min_length=1)
    path: str = ""
    scope: str = Field(min_length=1)

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        methods = [method.upper() for method in value]
        if "GET" in methods and "HEAD" not in methods:
            methods.append("HEAD")
        return methods

    @field_validator("path")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if value and (not value.startswith("/") or value.endswith("/") or "//" in value):
            raise ValueError("a rule's path is '' or '/segment/{placeholder}/…'")
        return value

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")[1:]) if self.path else ()

    def matches(self, segments: tuple[str, ...]) -> bool:
        pattern = self.segments
        return len(pattern) == len(segments) and all(
            (p.startswith("{") and p.endswith("}")) or p == s
            for p, s in zip(pattern, segments, strict=True)
        )


class Route(BaseModel):
    """One line of the route table: rules under ``prefix`` go to the upstream named
    ``upstream``, with ``prefix`` replaced by ``rewrite``.

    ``/api/orders/42`` with prefix ``/api/orders`` and rewrite ``/orders`` is sent to
    ``{upstream}/orders/42``.
    """

    name: str = Field(min_length=1)
    prefix: str
    upstream: str = Field(min_length=1)
    rewrite: str = ""
    rules: list[Rule] = Field(min_length=1)

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a route prefix is a path and starts with '/'")
        return value.rstrip("/") or "/"

    @field_validator("rewrite")
    @classmethod
    def _rewrite_is_a_path(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("a rewrite is '' or a path that starts with '/'")
        return value.rstrip("/")

    @property
    def prefix_segments(self) -> tuple[str, ...]:
        return tuple(part for part in self.prefix.split("/") if part)


ROUTE_TABLE = [
    Route(
        name="orders-api",
        prefix="/api/orders",
        upstream="orders-api",
        rewrite="/orders",
        rules=[
            Rule(methods=["POST"], path="", scope="orders:write"),
            Rule(methods=["GET"], path="", scope="orders:read"),
            Rule(methods=["GET"], path="/{order_id}", scope="orders:read"),
            Rule(methods=["POST"], path="/{order_id}/cancel", scope="orders:write"),
        ],
    ),
    # NOTE: inventory's public face is its catalogue; reservations are for orders-api only
    # and are never routed (in the cluster the NetworkPolicies keep them internal too).
    Route(
        name="inventory-api",
        prefix="/api/inventory",
        upstream="inventory-api",
        rewrite="",
        rules=[
            Rule(methods=["GET"], path="/products", scope="inventory:read"),
            Rule(methods=["GET"], path="/products/{sku}", scope="inventory:read"),
        ],
    ),
]


@dataclass(frozen=True)
class Destination:
    """Where a request goes: its route and rule, and the upstream path (encoded)."""

    route: Route
    rule: Rule
    path: str


@dataclass(frozen=True)
class NoRoute:
    """No rule covers the path (404)."""


@dataclass(frozen=True)
class MethodNotAllowed:
    """Rules cover the path, but not with this method (405); ``allow`` lists those that are."""

    route: Route
    allow: tuple[str, ...]


def resolve(
    routes: list[Route], segments: tuple[str, ...], method: str
) -> Destination | NoRoute | MethodNotAllowed:
    """Match the decoded path ``segments`` and ``method`` against ``routes``.

    The longest prefix wins (on whole segments); within it, the first rule whose pattern and
    method match.
    """
    best: Route | None = None
    for route in routes:
        prefix = route.prefix_segments
        if segments[: len(prefix)] == prefix and (
            best is None or len(prefix) > len(best.prefix_segments)
        ):
            best = route
    if best is None:
        return NoRoute()
    rest = segments[len(best.prefix_segments) :]
    matching = [rule for rule in best.rules if rule.matches(rest)]
    if not matching:
        return NoRoute()
    for rule in matching:
        if method.upper() in rule.methods:
            return Destination(best, rule, (best.rewrite + encode_segments(rest)) or "/")
    allow = sorted({m for rule in matching for m in rule.methods})
    return MethodNotAllowed(best, tuple(allow))
