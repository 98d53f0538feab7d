"""The strict Content-Security-Policy in a real browser: the staff pages (with htmx at work),
the study-code search, the admin and the API docs run without a single violation, and what
the policy is there for (inline script) is really blocked."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from scheduling.models import Course
from scheduling.services import participant_enrol

pytestmark = pytest.mark.e2e

LogIn = Callable[[Any], None]

# Every violation, as the page itself sees it (Playwright's init scripts are not subject to
# the page's policy).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", event => window.__violations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} in ${event.sourceFile}`
));
"""


@pytest.fixture
def violations(page: Page) -> Iterator[list[str]]:
    """CSP violations on any page the test shows: the browser's console reports and the pages'
    own securitypolicyviolation events (read after each step with ``seen()``)."""
    found: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            found.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.add_init_script(RECORD_VIOLATIONS)
    yield found


def seen(page: Page, violations: list[str]) -> list[str]:
    """Console reports so far plus the current page's own events."""
    events = page.evaluate("window.__violations || []")
    return violations + [f"{page.url}: {event}" for event in events]


def visit(page: Page, violations: list[str], url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.ok, (url, response and response.status)
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "unsafe" not in policy, (url, policy)
    assert "no-store" in response.headers.get("cache-control", ""), url
    page.wait_for_load_state("networkidle")
    assert seen(page, violations) == [], url


@pytest.fixture
def course(site_a: Any, coordinator_a: Any) -> Course:
    return participant_enrol(
        site=site_a,
        code="P-CSP-1",
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=coordinator_a,
    )


def test_the_staff_pages_and_htmx_run_without_a_violation(
    page: Page, violations: list[str], log_in_as: LogIn, course: Course, coordinator_a: Any
) -> None:
    log_in_as(coordinator_a)
    dosing = course.sessions.get(key="dosing-1")
    for url in (
        "/today/",
        "/participants/",
        f"/participants/{course.participant_id}/",
        f"/participants/{course.participant_id}/schedule/",
        f"/sessions/{dosing.pk}/",
        "/calendar/?view=month",
        "/protocols/",
        f"/protocols/mapp-ptsd/v{course.protocol_version.version}/",
        "/participants/new/",
    ):
        visit(page, violations, url)

    # htmx swaps the calendar page in place (no full load: the marker survives)
    visit(page, violations, "/calendar/")
    page.evaluate("window.__still_here = true")
    page.get_by_role("link", name="Next week →").click()
    expect(page.get_by_role("link", name="Next week →")).to_be_visible()
    assert page.evaluate("window.__still_here === true"), "htmx did not swap the calendar"
    # htmx's preview on the session page
    visit(page, violations, f"/sessions/{dosing.pk}/")
    move = page.get_by_role("region", name="Reschedule")
    move.get_by_label("Reason").fill("checking the preview")
    # a style attribute left by a script through the CSSOM (allowed), as browser tools and
    # Playwright's screenshots leave one: htmx must not copy it onto the swapped-in input
    page.evaluate("""() => {
        const input = document.getElementById("id_reason");
        input.style.color = "black";
        input.style.color = "";
    }""")
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.request.headers.get("hx-request") == "true"
    ) as preview:
        move.get_by_role("button", name="Preview").click()
    assert preview.value.ok
    expect(page.get_by_role("region", name="Reschedule")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert seen(page, violations) == []


def test_the_study_code_search_is_posted_and_stays_out_of_the_address(
    page: Page, violations: list[str], log_in_as: LogIn, course: Course, coordinator_a: Any
) -> None:
    log_in_as(coordinator_a)
    visit(page, violations, "/participants/")
    with page.expect_request(re.compile(r"/participants/$")) as search:
        page.get_by_label("Study code").fill("CSP-1")
        page.get_by_label("Study code").press("Enter")
    assert search.value.method == "POST"
    expect(page.get_by_role("status")).to_contain_text("Searching for “CSP-1”")
    expect(page.get_by_role("link", name="P-CSP-1")).to_be_visible()
    assert "CSP" not in page.url
    page.get_by_role("button", name="Clear search").click()
    expect(page.get_by_role("status")).to_have_count(0)
    assert seen(page, violations) == []


def test_the_admin_runs_without_a_violation(
    page: Page, violations: list[str], log_in_as: LogIn, admin_user: Any, site_a: Any
) -> None:
    log_in_as(admin_user)
    visit(page, violations, "/admin/")
    expect(page.get_by_role("link", name="Course scheduler · Administration")).to_be_visible()
    # the pages' colours come from admin.css, not an inline style element
    header = page.locator("#header")
    expect(header).to_have_css("background-color", "rgb(11, 92, 173)")
    visit(page, violations, f"/admin/scheduling/site/{site_a.pk}/change/")
    expect(page.locator("form#site_form")).to_be_visible()
    # the admin's own scripts run: its inline formsets add an "Add another" button
    expect(page.get_by_role("button", name=re.compile(r"Add another")).first).to_be_visible()
    page.get_by_role("button", name="Toggle theme").first.click()
    assert seen(page, violations) == []


def test_the_api_docs_run_without_a_violation(
    page: Page, violations: list[str], log_in_as: LogIn, coordinator_a: Any
) -> None:
    log_in_as(coordinator_a)
    visit(page, violations, "/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Protocol scheduler API")
    expect(page.locator(".opblock").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert seen(page, violations) == []


def test_the_policy_blocks_an_inline_script(
    context: BrowserContext, log_in_as: LogIn, coordinator_a: Any
) -> None:
    """The checks above can fail: a script injected into a page (as an attack would) is
    blocked and reported. (A page of its own: the ``page`` fixture fails on console errors.)"""
    log_in_as(coordinator_a)
    page = context.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto("/today/")
    assert page.evaluate("window.__violations") == []
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__ran = true";
            document.body.append(script);
        }"""
    )
    assert page.evaluate("window.__ran === undefined")
    page.wait_for_function("window.__violations.length > 0")  # dispatched asynchronously
    assert "script-src" in page.evaluate("window.__violations[0]")
