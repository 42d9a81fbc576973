"""A real browser for the end-to-end tests: Debian's Chromium, driven by Playwright (no
browser download is possible here). Screenshots go to reports/, kept for diagnosis."""

from __future__ import annotations

from .stack import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "reports" / "screenshots"


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


def screenshot(page, name: str):
    """Save the page as reports/screenshots/NAME.png; the path, for messages."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, hub_url: str, name: str, password: str) -> None:
    """The hub's login form, filled in and sent as a person does."""
    page.goto(f"{hub_url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_load_state()
