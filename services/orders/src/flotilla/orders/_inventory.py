"""inventory-api as orders sees it: reserve, commit and release over HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from flotilla.core import UpstreamError, service_client, translate_http_error


@dataclass
class StockRefused(Exception):
    """inventory refused the reservation (not enough stock, unknown sku)."""

    status: int
    problem: dict[str, Any]


class ReservationGone(Exception):
    """The reservation was already settled the other way, or expired.

    Args:
        reservation_id: the reservation.
        status: what it is now (``released``, ``expired``, ``committed``), when known.
    """

    def __init__(self, reservation_id: str, status: str | None = None) -> None:
        super().__init__(f"reservation {reservation_id} is {status or 'settled'}")
        self.reservation_id, self.status = reservation_id, status


@dataclass(frozen=True)
class Reservation:
    id: str
    status: str
    amount_cents: int
    expires_at: datetime | None = None  # until when the stock is held


#: The statuses of a reservation whose units are back on the shelf.
RETURNED = ("released", "expired")


class InventoryClient:
    """A pooled, traced client of inventory-api."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self._http = service_client(base_url, timeout_s=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise translate_http_error(exc, "inventory") from exc

    def reserve(
        self,
        *,
        reference: str,
        items: list[dict[str, Any]],
        attempts: int = 1,
        backoff_s: float = 0.1,
    ) -> Reservation:
        """Hold the items for ``reference``.

        A try that fails in transit (timeout, connection lost, 5xx) is repeated with the same
        reference, up to ``attempts`` tries: inventory answers a repeated reference with the
        reservation the first try made, so a slow answer never holds the stock twice.

        Raises:
            StockRefused: inventory answered 404/409/422 (the problem names the sku).
            UpstreamError: inventory is unreachable, slow, or failing, every try.
        """
        for attempt in range(1, attempts + 1):
            try:
                body = {"reference": reference, "items": items}
                answer = self._call("POST", "/reservations", body)
                if answer.status_code in (200, 201):
                    made = answer.json()
                    expires = made.get("expires_at")
                    return Reservation(
                        made["id"],
                        made["status"],
                        int(made["amount_cents"]),
                        datetime.fromisoformat(expires) if expires else None,
                    )
                if answer.status_code in (404, 409, 422):
                    raise StockRefused(answer.status_code, answer.json())
                raise UpstreamError(f"inventory answered {answer.status_code}")
            except UpstreamError:
                if attempt == attempts:
                    raise
                time.sleep(backoff_s * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def renew(self, reservation_id: str) -> str:
        """Hold the reservation another TTL from now (taking its units again if the hold had
        lapsed); returns its status (``held``, or ``committed`` when that was done already).

        Raises:
            ReservationGone: it was released, it expired and its units are gone, or inventory
                does not know it.
            UpstreamError: inventory is unreachable, slow, or failing.
        """
        answer = self._call("POST", f"/reservations/{reservation_id}/renew")
        if answer.status_code == 404:
            raise ReservationGone(reservation_id, None)
        if answer.status_code == 409:
            raise ReservationGone(reservation_id, answer.json().get("reservation_status"))
        if answer.status_code != 200:
            raise UpstreamError(f"inventory answered {answer.status_code} to a renewal")
        return str(answer.json()["status"])

    def settle(self, *, reservation_id: str, action: str) -> str:
        """Commit or release a reservation (idempotent on inventory's side); returns its status.

        Releasing an expired reservation succeeds (its units are back already); committing
        one fails.

        Raises:
            ReservationGone: it was settled the other way, or expired (for a commit).
            UpstreamError: inventory is unreachable, slow, or failing.
        """
        answer = self._call("POST", f"/reservations/{reservation_id}/{action}")
        if answer.status_code == 409:
            raise ReservationGone(reservation_id, answer.json().get("reservation_status"))
        if answer.status_code != 200:
            raise UpstreamError(f"inventory answered {answer.status_code} to {action}")
        return str(answer.json()["status"])

    def release_reference(self, reference: str) -> None:
        """Release whatever is held for ``reference`` (a reserve whose answer never came).

        Raises:
            UpstreamError: inventory is unreachable, slow, or failing.
        """
        answer = self._call("POST", f"/reservations/by-reference/{reference}/release")
        if answer.status_code not in (200, 404, 409):
            raise UpstreamError(f"inventory answered {answer.status_code} to a release")
