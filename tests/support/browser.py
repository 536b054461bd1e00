"""Real headless Chromium for the browser tests: Debian's ``chromium``, driven by Playwright.

Playwright's own browser download cannot happen here (no registry serves it), so it drives the
system browser (``FLOTILLA_TEST_CHROMIUM``, default ``/usr/bin/chromium``; ``make test``
installs Debian's package when it is missing). Absent locally, the browser tests skip with the
reason; under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.services import in_ci

CHROMIUM = os.environ.get("FLOTILLA_TEST_CHROMIUM") or shutil.which("chromium") or ""
# Without the network-quieting flags Chromium keeps dialling Google's hosts, which this
# closed network refuses; --no-sandbox because tests may run as root.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM or not os.access(CHROMIUM, os.X_OK):
        message = (
            "Chromium is not installed (make test installs Debian's chromium; "
            "or set FLOTILLA_TEST_CHROMIUM)"
        )
        if in_ci():
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
