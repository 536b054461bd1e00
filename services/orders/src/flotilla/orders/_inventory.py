"""inventory-api as orders sees it: reserve, commit and release over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from flotilla.core import UpstreamError, service_client, translate_http_error


@dataclass
class StockRefused(Exception):
    """inventory refused the reservation (not enough stock, unknown sku)."""

    status: int
    problem: dict[str, Any]


class ReservationGone(Exception):
    """The reservation was already settled the other way (released vs committed)."""


class InventoryClient:
    """A pooled, traced client of inventory-api."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self._http = service_client(base_url, timeout_s=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise translate_http_error(exc, "inventory") from exc

    def reserve(self, *, reference: str, items: list[dict[str, Any]]) -> str:
        """Hold the items for ``reference``; returns the reservation id.

        Raises:
            StockRefused: inventory answered 404/409/422 (the problem names the sku).
            UpstreamError: inventory is unreachable, slow, or failing.
        """
        answer = self._post("/reservations", {"reference": reference, "items": items})
        if answer.status_code in (200, 201):
            return str(answer.json()["id"])
        if answer.status_code in (404, 409, 422):
            raise StockRefused(answer.status_code, answer.json())
        raise UpstreamError(f"inventory answered {answer.status_code}")

    def settle(self, *, reservation_id: str, action: str) -> None:
        """Commit or release a reservation (idempotent on inventory's side).

        Raises:
            ReservationGone: it was already settled the other way.
            UpstreamError: inventory is unreachable, slow, or failing.
        """
        answer = self._post(f"/reservations/{reservation_id}/{action}")
        if answer.status_code == 409:
            raise ReservationGone(reservation_id)
        if answer.status_code != 200:
            raise UpstreamError(f"inventory answered {answer.status_code} to {action}")
