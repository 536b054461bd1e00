"""Which headers cross the edge (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from flotilla.core import CLIENT_ID_HEADER, CLIENT_SCOPES_HEADER, DEPENDENCY_FAILURE_HEADER

from ._routing import Route

# RFC 9110 §7.6.1; "trailers" is RFC 2616's spelling, still sent by some clients. Every
# Proxy-* header (Proxy-Authorization, Proxy-Connection, …) is for this hop only as well.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
)
# NOTE: the client's credentials stop at the edge; upstreams get X-Client-Id instead. Host and
# Content-Length are set by the HTTP client for the upstream request. What a client says about
# forwarding (Forwarded, X-Forwarded-*) is replaced by what the edge saw, so it cannot be forged.
NOT_FORWARDED = frozenset(
    {
        "authorization",
        "x-api-key",
        "host",
        "content-length",
        "x-client-id",
        "x-client-scopes",
        "forwarded",
        # NOTE: trace context crosses the edge only through the edge's own span: the HTTP
        # client's instrumentation injects it (with the baggage the edge chose to keep).
        "traceparent",
        "tracestate",
        "baggage",
    }
)


def is_hop_by_hop(name: str) -> bool:
    """Whether the header ``name`` (lower case) concerns one connection only."""
    return name in HOP_BY_HOP or name.startswith("proxy-")


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def upstream_request_headers(
    headers: Iterable[tuple[str, str]],
    *,
    client_ip: str,
    scheme: str,
    host: str,
    client_id: str,
    client_scopes: Iterable[str] = (),
    request_id: str,
    trust_forwarded: bool,
) -> dict[str, str]:
    """The headers the upstream receives: end-to-end ones plus forwarding information."""
    pairs = list(headers)
    drop = HOP_BY_HOP | NOT_FORWARDED | _connection_tokens(pairs)
    out: dict[str, str] = {}
    forwarded_for = ""
    for name, value in pairs:
        lower = name.lower()
        if lower == "x-forwarded-for":
            forwarded_for = value
        elif lower not in drop and not lower.startswith(("x-forwarded-", "proxy-")):
            out[lower] = value
    chain = f"{forwarded_for}, {client_ip}" if trust_forwarded and forwarded_for else client_ip
    out.update(
        {
            "x-forwarded-for": chain,
            "x-forwarded-proto": scheme,
            "x-forwarded-host": host,
            CLIENT_ID_HEADER.lower(): client_id,
            CLIENT_SCOPES_HEADER.lower(): " ".join(sorted(client_scopes)),
            "x-request-id": request_id,
        }
    )
    return out


def downstream_response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's answer headers the client receives."""
    pairs = list(headers)
    drop = (
        HOP_BY_HOP
        | _connection_tokens(pairs)
        | {
            "content-length",
            "content-encoding",
            "server",
            "date",
            DEPENDENCY_FAILURE_HEADER.lower(),
        }
    )
    return [(n, v) for n, v in pairs if (low := n.lower()) not in drop and not is_hop_by_hop(low)]


def public_location(value: str, route: Route, upstream_base: str) -> str:
    """A ``Location`` (or ``Content-Location``) from the upstream, as the client must follow it.

    ``/orders/42`` from orders-api (rewrite ``/orders``) becomes ``/api/orders/42``; an
    absolute URL on the upstream's own origin is made relative first. Anything else (another
    origin, a path outside the rewrite) is passed on as it is.
    """
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        base = urlsplit(upstream_base)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            return value
    path = parts.path
    rewrite = route.rewrite
    if rewrite and path != rewrite and not path.startswith(rewrite + "/"):
        return value
    if not path.startswith("/"):
        return value
    public = route.prefix.rstrip("/") + path[len(rewrite) :]
    return public + (f"?{parts.query}" if parts.query else "")


def retry_after_s(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delta-seconds or an HTTP date), or ``None``
    when there is none or it cannot be read."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
