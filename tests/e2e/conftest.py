"""Browser fixtures for the end-to-end tests: Playwright (sync API) driving Debian's Chromium
against pytest-django's live server.

- ``browser``: one headless Chromium per test module (module, not session, scope: see
  ``playwright``). Playwright's own browser download is not used; a missing
  ``/usr/bin/chromium`` fails every e2e test with the command that installs it (``.ci/run``
  installs it), it is never a silent skip.
- ``page``: a fresh browser context and page per test, pointed at the live server; a JavaScript
  or console error in it fails the test.
- ``screenshot``: ``screenshot("step")`` saves ``test-artifacts/e2e/<test-name>-<step>.png``.
- ``log_in_as``: puts a logged-in session cookie into the page's context (the login form itself
  is tested in ``test_staff_flows.py``).

The live server needs a transactional database: every table is flushed after each test, and
Django's flush then emits ``post_migrate``, which loads the shipped protocols again (see
``protocol/apps.py``), so tests that run afterwards still find ``mapp-ptsd``. The
``_shipped_protocols`` fixture checks that before each e2e test and loads them if absent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
TIMEOUT_MS = 15_000  # for actions and for expect(): a loaded CI machine is slow, not broken

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API keeps an asyncio loop running in this thread while it is started;
    the test's own ORM calls (creating data, checking the database) are plain synchronous code,
    so Django's async-safety check is turned off for exactly that long. Module scope ends the
    loop (and restores the check) before the tests of other modules run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as running:
            yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"The end-to-end tests need Debian's Chromium at {CHROMIUM}: install it with "
            "`apt-get install -y chromium` (.ci/run does this when it is missing).",
            pytrace=False,
        )
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, live_server: Any) -> Iterator[BrowserContext]:
    opened = browser.new_context(
        base_url=live_server.url,
        viewport={"width": 1280, "height": 900},
        locale="en-US",
        timezone_id="America/New_York",
    )
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    opened.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page of its own; a JavaScript error or a console error on any page it showed fails the
    test (htmx and the pages' scripts must run cleanly), except those a test provokes on
    purpose and names with ``@pytest.mark.console_errors(<regex>, ...)``."""
    opened = context.new_page()
    problems: list[str] = []
    marker = request.node.get_closest_marker("console_errors")
    provoked = [re.compile(pattern) for pattern in (marker.args if marker else ())]

    def on_console(message: ConsoleMessage) -> None:
        # The browser asks for /favicon.ico by itself; the app has none, and that is no error.
        if message.type != "error" or message.location["url"].endswith("/favicon.ico"):
            return
        if not any(pattern.search(message.text) for pattern in provoked):
            problems.append(f"{opened.url}: console error: {message.text} {message.location}")

    opened.on("pageerror", lambda error: problems.append(f"{opened.url}: {error}"))
    opened.on("console", on_console)
    yield opened
    assert not problems, "errors in the browser:\n" + "\n".join(problems)


@pytest.fixture
def screenshot(page: Page, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``screenshot(step)`` saves the whole page as test-artifacts/e2e/<test>-<step>.png."""
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def take(step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{test_name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def log_in_as(context: BrowserContext, live_server: Any) -> Callable[[Any], None]:
    """``log_in_as(user)``: the page's browser context is then logged in as ``user``."""
    from django.test import Client

    def log_in(user: Any) -> None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])

    return log_in


@pytest.fixture(autouse=True)
def _shipped_protocols(transactional_db: None) -> None:
    """The shipped protocols are in the database (a flush reloads them through post_migrate;
    this makes the e2e tests independent of that)."""
    from protocol.models import Protocol
    from protocol.services import shipped_protocols_load

    if not Protocol.objects.filter(slug="mapp-ptsd").exists():
        shipped_protocols_load()
