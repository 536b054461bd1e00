"""What the running platform sells, read over HTTP (for examples and default load)."""

from __future__ import annotations

import httpx


class CatalogueUnavailable(RuntimeError):
    """The product list could not be read."""


def sku_in_stock(products_url: str, headers: dict[str, str] | None = None) -> str:
    """The sku with the most units available, from inventory's ``GET /products``.

    Args:
        products_url: inventory's ``/products`` directly, or ``/api/inventory/products``
            through the edge.
        headers: e.g. the edge's ``Authorization``.

    Raises:
        CatalogueUnavailable: the list did not answer, was not a product list, or is sold out.
    """
    try:
        answer = httpx.get(products_url, headers=headers, timeout=5)
        answer.raise_for_status()
        items = answer.json()["items"]
        sku, available = max(((i["sku"], int(i["available"])) for i in items), key=lambda p: p[1])
    except httpx.HTTPStatusError as exc:
        raise CatalogueUnavailable(f"{products_url} answered {exc.response.status_code}") from exc
    except httpx.HTTPError as exc:
        raise CatalogueUnavailable(f"{products_url} does not answer ({exc})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CatalogueUnavailable(f"{products_url} did not answer a product list") from exc
    if available <= 0:
        raise CatalogueUnavailable(f"every product at {products_url} is sold out")
    return str(sku)
