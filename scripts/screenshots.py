"""Screenshots of the console's pages for the README and the guides (docs/images/).

Run against a platform started with ``make run``: it places an order through the edge and a
small burst, waits for the trace and a scale-up, then photographs ``/``, the order's
``/traces/{id}`` (spans and log lines), ``/services`` and ``/pools`` in headless Chromium at
1280x800::

    uv run python scripts/screenshots.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.browser import CHROMIUM, FLAGS

ROOT = Path(__file__).resolve().parents[1]
EDGE, CONSOLE = "http://127.0.0.1:8080", "http://127.0.0.1:8090"


def main() -> None:
    key = (ROOT / "var" / "local" / "api-key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    products = httpx.get(f"{EDGE}/api/inventory/products", headers=headers).json()["items"]
    order = {
        "customer_email": "ada@example.com",
        "items": [{"sku": products[0]["sku"], "quantity": 1}],
    }
    answer = httpx.post(f"{EDGE}/api/orders", json=order, headers=headers)
    answer.raise_for_status()
    trace_id = answer.headers["x-trace-id"]
    subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "load", "--orders", "150", "--concurrency", "8"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    time.sleep(3)
    out = ROOT / "docs" / "images"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for path, name in (
            ("/", "traces"),
            (f"/traces/{trace_id}?span=", "trace"),
            ("/services", "services"),
            ("/pools", "pools"),
        ):
            page.goto(CONSOLE + path)
            if name == "trace":  # a span's detail open, the top of the waterfall in view
                page.locator(".span-link", has_text="process orders").first.click()
                page.evaluate("scrollTo(0, 0)")
            page.screenshot(path=str(out / f"console-{name}.png"))
        browser.close()
    print(f"wrote {out}/console-{{traces,trace,services,pools}}.png (trace {trace_id})")


if __name__ == "__main__":
    main()
