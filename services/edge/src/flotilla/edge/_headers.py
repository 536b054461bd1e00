"""Which headers cross the edge (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable

# RFC 9110 §7.6.1; "trailers" is RFC 2616's spelling, still sent by some clients. Every
# Proxy-* header (Proxy-Authorization, Proxy-Connection, …) is for this hop only as well.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
)
# NOTE: the client's credentials stop at the edge; upstreams get X-Client-Id instead. Host and
# Content-Length are set by the HTTP client for the upstream request. What a client says about
# forwarding (Forwarded, X-Forwarded-*) is replaced by what the edge saw, so it cannot be forged.
NOT_FORWARDED = frozenset(
    {"authorization", "x-api-key", "host", "content-length", "x-client-id", "forwarded"}
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
            "x-client-id": client_id,
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
        | {"content-length", "content-encoding", "server", "date"}
    )
    return [(n, v) for n, v in pairs if (low := n.lower()) not in drop and not is_hop_by_hop(low)]
