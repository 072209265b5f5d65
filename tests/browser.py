"""Debian's chromium driven by Playwright, for the browser tests (tests/observability,
tests/web): one launch, and screenshots saved under the run's output directory."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

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


def consul_ui_log_in(context: BrowserContext, consul_url: str, token_file: Path) -> None:
    """Log the Consul UI of ``context`` in with the token in ``token_file``, as its "Log
    in" does: the UI keeps the token (what /v1/acl/token/self answers) in localStorage
    under consul:token and sends its SecretID on every request."""
    secret = token_file.read_text().strip()
    answer = requests.get(f"{consul_url}/v1/acl/token/self",
                          headers={"X-Consul-Token": secret}, timeout=10)
    answer.raise_for_status()
    stored = json.dumps(answer.json())
    context.add_init_script(
        f"window.localStorage.setItem('consul:token', {json.dumps(stored)});"
    )
