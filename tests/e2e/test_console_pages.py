"""The console's pages in real headless Chromium, against the real platform (``flotilla up``).

Orders go through the edge; the browser reads what a person would: the waterfall of a trace
across the five services with its queue waits and its log lines, the trace search, the
services page and the pools changing after a burst. Chromium is Debian's, driven by
Playwright (tests/support/browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Platform
from tests.e2e.orders import SERVICES, start_burst, traced_order
from tests.support.browser import chromium
from tests.support.waiting import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="module")
def order_trace(platform: Platform) -> tuple[str, dict[str, Any]]:
    return traced_order(platform)


def depth_of(page: Page, span_name: str) -> int:
    row = page.locator(".row", has=page.locator(".op", has_text=span_name)).first
    return int(row.evaluate("r => getComputedStyle(r).getPropertyValue('--depth')"))


def test_the_waterfall_nests_five_services_and_shows_the_queue_waits(
    platform: Platform, page: Page, order_trace: tuple[str, dict[str, Any]]
) -> None:
    trace_id, trace = order_trace
    answer = page.goto(f"{platform.console}/traces/{trace_id}")
    assert answer is not None and answer.status == 200
    expect(page.locator("h1")).to_contain_text(trace_id)
    legend = page.locator(".legend").inner_text()
    for service in SERVICES:
        assert service in legend
    assert len(page.locator(".row").all()) == len(trace["spans"])
    # nested in the right order: edge → orders-api → publish → worker → publish → notifications
    chain = ["POST /api/orders", "POST /orders", "publish orders", "process orders"]
    chain += ["publish notifications", "process notifications"]
    depths = [depth_of(page, name) for name in chain]
    assert depths == sorted(depths) and len(set(depths)) == len(depths), depths
    services = page.locator(".row .svc-tag").all_inner_texts()
    first = [services.index(s) for s in ("edge", "orders-api", "orders-worker")]
    assert first == sorted(first)
    for queue in ("orders", "notifications"):
        expect(page.locator(".wait-label", has_text=f"in {queue}")).to_be_visible()


def test_a_span_opens_its_detail_with_the_keyboard(
    platform: Platform, page: Page, order_trace: tuple[str, dict[str, Any]]
) -> None:
    trace_id, _ = order_trace
    page.goto(f"{platform.console}/traces/{trace_id}")
    link = page.locator(".span-link", has=page.locator(".op", has_text="process orders"))
    link.focus()
    page.keyboard.press("Enter")
    detail = page.locator("#detail")
    expect(detail).to_be_focused()
    expect(detail.locator("h2")).to_contain_text("process orders")
    expect(detail).to_contain_text("messaging.dramatiq.queue_wait_ms")
    expect(detail).to_contain_text("Queue wait")
    page.keyboard.press("Shift+Tab")  # back to the row; the arrow keys walk the rows
    link.focus()
    page.keyboard.press("ArrowDown")
    expect(detail.locator("h2")).not_to_contain_text("process orders")


def test_the_trace_list_searches_by_service_and_updates_itself(
    platform: Platform, page: Page, order_trace: tuple[str, dict[str, Any]]
) -> None:
    trace_id, _ = order_trace
    page.goto(platform.console)
    page.select_option("select[name=service]", "notifications-worker")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(f'a[href="/traces/{trace_id}"]')).to_be_visible()
    page.fill("input[name=operation]", "no-such-operation")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody")).to_contain_text("No trace matches")

    page.goto(f"{platform.console}/?service=edge")
    newer, _ = traced_order(platform)  # arrives while the page is open: no reload
    expect(page.locator(f'a[href="/traces/{newer}"]')).to_be_visible(timeout=15_000)


def test_the_pools_page_shows_both_pools_and_follows_a_burst(
    platform: Platform, page: Page
) -> None:
    page.goto(f"{platform.console}/pools")
    for pool in ("orders-worker", "notifications-worker"):
        expect(page.get_by_role("heading", name=pool)).to_be_visible()
    orders = page.locator("section.pool", has=page.get_by_role("heading", name="orders-worker"))
    expect(orders.locator(".chart")).to_be_visible()
    burst = start_burst(platform, 60)
    try:  # the page updates itself: a scale-up appears among the last decisions
        expect(orders.locator("td.action.scale-up").first).to_be_visible(timeout=60_000)
    finally:
        burst.wait(120)
    expect(orders).to_contain_text("target 5/replica")


def test_pages_fit_a_narrow_window_and_name_the_health_of_services(
    platform: Platform, browser: Browser, order_trace: tuple[str, dict[str, Any]]
) -> None:
    trace_id, _ = order_trace
    context = browser.new_context(viewport={"width": 390, "height": 800})
    narrow = context.new_page()
    try:
        for path in ("/", f"/traces/{trace_id}", "/pools", "/services"):
            narrow.goto(platform.console + path)
            overflow = narrow.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390px"
        health = narrow.locator(".health")
        for service in ("edge", "orders-api", "inventory-api", "payments-api"):
            expect(health).to_contain_text(service)
        expect(health.locator(".chip.ok")).to_have_count(4)
    finally:
        context.close()


#: what each service logs for one order (flotilla.orders, .inventory, .notifications)
ORDER_LOGS = {
    "inventory-api": "stock reserved",
    "orders-api": "order accepted",
    "orders-worker": "order processed",
    "notifications-worker": "confirmation sent",
}


def logs_of(platform: Platform, trace_id: str) -> list[dict[str, Any]] | None:
    """The trace's log lines once every service's line for the order has arrived."""
    logs: list[dict[str, Any]] = httpx.get(f"{platform.console}/api/traces/{trace_id}").json()[
        "logs"
    ]
    said = {(line["service"], line["body"]) for line in logs}
    return logs if set(ORDER_LOGS.items()) <= said else None


def test_a_traces_page_shows_its_log_lines_under_their_spans_and_filters_them(
    platform: Platform, page: Page, order_trace: tuple[str, dict[str, Any]]
) -> None:
    """Every process exports its log records over OTLP (flotilla up sends them to the
    console): four services' lines appear in the waterfall, each right under a span of its
    own service and deeper than it; choosing a level keeps only lines at it or above."""
    trace_id, _ = order_trace
    wait_for(lambda: logs_of(platform, trace_id), timeout_s=30)
    page.goto(f"{platform.console}/traces/{trace_id}")
    entries = page.locator("ol.spans > li")
    kinds = entries.evaluate_all(
        """items => items.map(li => ({
            log: li.classList.contains('log'),
            depth: Number(getComputedStyle(li).getPropertyValue('--depth')),
            service: li.querySelector('.svc-tag').textContent,
            text: li.textContent}))"""
    )
    for service, message in ORDER_LOGS.items():
        (at,) = [i for i, e in enumerate(kinds) if e["log"] and message in e["text"]]
        owner = next(
            e for e in reversed(kinds[:at]) if not e["log"] and e["depth"] < kinds[at]["depth"]
        )
        assert kinds[at]["service"] == service
        assert owner["service"] == service, (message, owner["text"][:80])
    expect(page.locator("#log-count")).to_contain_text("log lines")

    page.select_option("select[name=level]", "warn")  # applies at once (a script submits)
    expect(page.locator("#log-count")).to_contain_text("at warn or above")
    expect(page.locator("li.log.level-info")).to_have_count(0)
    assert "level=warn" in page.url
    expect(page.locator(".row").first).to_be_visible()  # the spans stay


def test_the_services_page_shows_every_service_and_queue_after_a_burst(
    platform: Platform, page: Page
) -> None:
    """Rate, errors and latency per service and route, per queue messages/s and wait, from
    the stored spans; each row links to an example trace."""
    burst = start_burst(platform, 30)
    assert burst.wait(120) == 0
    page.goto(f"{platform.console}/services")
    for service in ("edge", "orders-api", "inventory-api"):
        total = page.locator(f'tbody[data-service="{service}"] tr.service-row')
        expect(total).to_be_visible()
        rate = float(total.locator("td.num").first.inner_text())
        assert rate > 0, f"{service} shows no requests"
    expect(page.locator('tbody[data-service="orders-api"]')).to_contain_text("POST /orders")
    expect(page.locator('tbody[data-service="edge"]')).to_contain_text("POST /api/orders")
    for queue in ("orders", "notifications"):
        row = page.locator(f'tr[data-queue="{queue}"]')
        expect(row).to_be_visible()
        assert float(row.locator("td.num").first.inner_text()) > 0
    expect(page.locator('tr[data-queue="orders"]')).to_contain_text("orders-worker")
    page.locator('tbody[data-service="orders-api"] tr.service-row a', has_text="slowest").click()
    expect(page.locator("h1")).to_contain_text("Trace")
    expect(page.locator(".row").first).to_be_visible()


def test_an_unknown_trace_is_a_page_that_says_so(platform: Platform, page: Page) -> None:
    answer = page.goto(f"{platform.console}/traces/{'0' * 32}")
    assert answer is not None and answer.status == 404
    expect(page.locator("h1")).to_have_text("Unknown trace")
    answer = page.goto(f"{platform.console}/traces/not-a-trace-id")
    assert answer is not None and answer.status == 422
