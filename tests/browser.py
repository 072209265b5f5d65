"""Debian's chromium driven by Playwright, for the browser tests (tests/observability,
tests/web): one launch, and screenshots saved under the run's output directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tools.mesh.topology import ROOT

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 60_000
# Screenshots of the browser tests (kept after the run, ignored by git like .run/).
OUTPUT_DIR = Path(os.environ.get("MESHMART_TEST_OUTPUT", ROOT / ".run" / "test-output"))


@contextmanager
def chromium() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make setup` installs Debian's chromium"
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def save(page: Page, name: str, folder: Path = OUTPUT_DIR) -> Path:
    """A full-page screenshot and the page's text, side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    (folder / f"{name}.txt").write_text(page.inner_text("body"))
    return path
