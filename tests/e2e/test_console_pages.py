"""The console's pages in real headless Chromium, against the real platform (``flotilla up``).

Orders go through the edge; the browser reads what a person would: the waterfall of a trace
across the five services with its queue waits, the trace search, and the pools changing after
a burst. Chromium is Debian's, driven by Playwright (tests/support/browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Platform
from tests.e2e.orders import SERVICES, start_burst, traced_order
from tests.support.browser import chromium


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
        for path in ("/", f"/traces/{trace_id}", "/pools"):
            narrow.goto(platform.console + path)
            overflow = narrow.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390px"
        health = narrow.locator(".health")
        for service in ("edge", "orders-api", "inventory-api", "payments-api"):
            expect(health).to_contain_text(service)
        expect(health.locator(".chip.ok")).to_have_count(4)
    finally:
        context.close()


def test_an_unknown_trace_is_a_page_that_says_so(platform: Platform, page: Page) -> None:
    answer = page.goto(f"{platform.console}/traces/{'0' * 32}")
    assert answer is not None and answer.status == 404
    expect(page.locator("h1")).to_have_text("Unknown trace")
    answer = page.goto(f"{platform.console}/traces/not-a-trace-id")
    assert answer is not None and answer.status == 422
