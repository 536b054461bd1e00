"""The payment provider as orders sees it: charge an order once, refund it.

:class:`PaymentProvider` is what fulfilment needs; :class:`HttpPaymentProvider` speaks the
shape real providers share (Stripe's ``Idempotency-Key`` header, a charge id, refunds), which
the platform's stand-in (``flotilla.payments``) implements. The key is derived from the order,
so every attempt, every worker and every duplicate delivery of one order asks for the same
charge, and the provider answers a repeated key with the first result: one order, at most one
charge, whatever crashes in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from opentelemetry import trace

from flotilla.core import UpstreamError, service_client, translate_http_error

tracer = trace.get_tracer("flotilla.orders")


class PaymentUnavailable(UpstreamError):
    """The provider could not take the request now (unreachable, slow, 5xx): retry later."""


class PaymentRefused(Exception):
    """The provider refused the request for good (a 4xx other than 404)."""


@dataclass(frozen=True)
class Charge:
    id: str
    status: str  # succeeded | refunded
    replayed: bool = False


def charge_key(order_id: str) -> str:
    """The idempotency key of an order's charge: the same for every attempt at it."""
    return f"order-{order_id}"


class PaymentProvider(Protocol):
    def charge(self, *, order_id: str, amount_cents: int) -> Charge: ...

    def refund_order(self, *, order_id: str) -> list[Charge]: ...

    def close(self) -> None: ...


class HttpPaymentProvider:
    """A pooled, traced client of a payment provider's HTTP API."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self._http = service_client(base_url, timeout_s=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise PaymentUnavailable(str(translate_http_error(exc, "payments"))) from exc
        if answer.status_code >= 500 or answer.status_code == 429:
            raise PaymentUnavailable(f"payments answered {answer.status_code}")
        if answer.status_code >= 400 and answer.status_code != 404:
            raise PaymentRefused(f"payments answered {answer.status_code}: {answer.text[:200]}")
        return answer

    def charge(self, *, order_id: str, amount_cents: int) -> Charge:
        """Charge the order (once per order, however often this is called).

        Raises:
            PaymentUnavailable: try again later (with the same key: it is derived here).
            PaymentRefused: the provider refused the charge for good.
        """
        key = charge_key(order_id)
        # NOTE: what the charge was, on the span it runs under (the message's): its HTTP call
        # has a span of its own, and a span around that one only added a span per order
        span = trace.get_current_span()
        span.set_attribute("payments.idempotency_key", key)
        answer = self._call(
            "POST",
            "/charges",
            json={"order_id": order_id, "amount_cents": amount_cents},
            headers={"Idempotency-Key": key},
        )
        body = answer.json()
        replayed = answer.headers.get("Idempotent-Replayed") == "true"
        span.set_attributes({"payments.charge.id": body["id"], "payments.replayed": replayed})
        return Charge(body["id"], body["status"], replayed)

    def refund_order(self, *, order_id: str) -> list[Charge]:
        """Refund every charge the provider holds for the order (idempotent).

        Raises:
            PaymentUnavailable: try again later.
        """
        with tracer.start_as_current_span(
            "payment.refund", attributes={"flotilla.order.id": order_id}
        ):
            listed = self._call("GET", "/charges", params={"order_id": order_id}).json()
            refunded = []
            for item in listed["items"]:
                if item["status"] != "refunded":
                    item = self._call("POST", f"/charges/{item['id']}/refund").json()
                refunded.append(Charge(item["id"], item["status"]))
            return refunded
