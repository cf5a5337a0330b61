"""A real Chromium (Debian's package), started headless per test: bare (``chromium``) or
driven by Playwright (``browser``)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.demo import open_demo as open_demo  # the fixture

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Playwright adds --headless itself.
PLAYWRIGHT_ARGS = [flag for flag in CHROMIUM_FLAGS if flag != "--headless"]


@pytest.fixture
def chromium(tmp_path: Path) -> Callable[[str], object]:
    """Open a URL in headless Chromium for the duration of an ``async with``."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it)")

    @asynccontextmanager
    async def open_page(url: str) -> AsyncIterator[None]:
        process = await asyncio.create_subprocess_exec(
            path,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            process.kill()
            await process.wait()

    return open_page


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = shutil.which("chromium")
    if path is None:
        reason = "Chromium is not installed (.ci/run installs Chromium)"
        print(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path, args=PLAYWRIGHT_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
