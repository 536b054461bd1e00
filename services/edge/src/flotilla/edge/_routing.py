"""Choosing the upstream of a request from the route table (a pure function)."""

from __future__ import annotations

from dataclasses import dataclass

from ._settings import Route


@dataclass(frozen=True)
class Destination:
    route: Route
    url: str


def resolve(routes: list[Route], path: str, query: str = "") -> Destination | None:
    """The longest route prefix that matches ``path`` on a segment boundary, or ``None``."""
    best: Route | None = None
    for route in routes:
        prefix = route.prefix.rstrip("/")
        if (path == prefix or path.startswith(prefix + "/")) and (
            best is None or len(prefix) > len(best.prefix.rstrip("/"))
        ):
            best = route
    if best is None:
        return None
    rest = path[len(best.prefix.rstrip("/")) :]
    target = (best.rewrite.rstrip("/") + rest) or "/"
    url = best.upstream.rstrip("/") + target + (f"?{query}" if query else "")
    return Destination(best, url)
