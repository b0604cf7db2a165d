"""The Mini App's browser tests' Chromium, shared by the paywall and ways-in tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.webapp.test_miniapp_browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium driven by Playwright, or a skip saying what is missing (a failure in CI, which installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs it")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
