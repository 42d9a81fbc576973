"""An attendee's first minutes, in a real browser: log in with the hub's form, land in
JupyterLab on the start page (rendered, no pop-up), open lab 1 from its link, run the first
cells with Shift+Enter and see what they print. Each step leaves a screenshot in
reports/screenshots/attendee-NN-STEP.png, and a failing step one more (attendee-failed.png)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from workshop_labs.notebooks import build_notebook, lab_sources

from .browser import SCREENSHOTS, launch, screenshot
from .hub_client import Attendee
from .stack import ROOT

# A name of this test's own: letters only, so container and volume names need no escaping.
ATTENDEE = "firstlook"
START_PAGE = ROOT / "labs" / "START_HERE.md"
LAB_1 = lab_sources(ROOT / "labs")[0]
# The first code cells: setup(), the imports, and the first cell that prints tensors.
FIRST_CODE_CELLS = 3
# Login to JupyterLab includes starting the server; the first cells import torch on the
# main stack's single CPU.
SERVER_READY_MS = 120_000
KERNEL_READY_MS = 60_000
CELLS_DONE_MS = 120_000
# JupyterLab shows its news and update questions as toasts a moment after it opens.
POPUP_GRACE_MS = 3_000
FAILED_SHOT = "attendee-failed"


def shift_enters_through_the_first_code_cells() -> int:
    """From the first code cell to the last of the first FIRST_CODE_CELLS: the markdown cells
    in between take a Shift+Enter each too (they are only rendered)."""
    kinds = [cell.cell_type for cell in build_notebook(LAB_1).cells]
    code = [index for index, kind in enumerate(kinds) if kind == "code"][:FIRST_CODE_CELLS]
    return code[-1] - code[0] + 1


def title_of(markdown: str) -> str:
    """The text of the first line's heading: what JupyterLab shows as the page's title."""
    return markdown.splitlines()[0].removeprefix("# ")


@pytest.fixture
def attendee(hub):
    """A new attendee, who logs in through the browser; their server is stopped afterwards
    (over HTTP, as themselves), so the session's other tests find the machine as before."""
    newcomer = Attendee(hub.url, ATTENDEE)
    yield newcomer
    if newcomer.login().status_code == 200 and newcomer.server_info()["servers"]:
        newcomer.stop_server()


def test_an_attendee_lands_on_the_start_page_opens_lab_1_and_runs_its_first_cells(
    hub, access_code, attendee
):
    welcome = title_of(START_PAGE.read_text(encoding="utf-8"))
    # The start page links each lab under its notebook's title (tests/labs/test_start_page.py).
    lab_1_title = title_of(build_notebook(LAB_1).cells[0].source)
    # A failure's screenshot from an earlier run must not sit beside this run's steps.
    (SCREENSHOTS / f"{FAILED_SHOT}.png").unlink(missing_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
        said = []  # the page's console and errors, shown when a step fails
        page.on("console", lambda message: said.append(f"console: {message.text}"))
        page.on("pageerror", lambda error: said.append(f"error: {error}"))
        step = "log in"
        try:
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", attendee.name)
            page.fill("#password_input", attendee.password)
            page.fill("#room_code_input", access_code)
            screenshot(page, "attendee-01-login")
            page.click("#login_submit")

            step = "land on the start page"
            start_url = rf"/user/{attendee.name}/lab/tree/labs/{re.escape(START_PAGE.name)}"
            page.wait_for_url(re.compile(start_url), timeout=SERVER_READY_MS)
            preview = page.locator(".jp-MarkdownViewer .jp-RenderedMarkdown")
            expect(preview.locator("h1")).to_contain_text(welcome, timeout=SERVER_READY_MS)
            current_tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
            expect(current_tab).to_have_text(START_PAGE.name)
            expect(page.locator(".jp-Launcher")).to_have_count(0)
            # Nothing asks the attendee anything: no news or update question, no dialog, and
            # no extension manager (it would ask before searching PyPI, out of reach here).
            page.wait_for_timeout(POPUP_GRACE_MS)
            expect(page.locator(".jp-Dialog")).to_have_count(0)
            expect(page.locator(".Toastify__toast")).to_have_count(0)
            extension_manager = '.lm-TabBar-tab[data-id="extensionmanager.main-view"]'
            expect(page.locator(extension_manager)).to_have_count(0)
            screenshot(page, "attendee-02-start-page")

            step = "open lab 1 from the start page"
            preview.get_by_role("link", name=lab_1_title).click()
            notebook = page.locator(".jp-NotebookPanel:visible")
            expect(current_tab).to_have_text(f"{LAB_1.stem}.ipynb", timeout=30_000)
            # The status bar's "Python 3 (ipykernel) | Idle": JupyterLab skips cells run while
            # the kernel is still starting (the toolbar's indicator says idle before it knows).
            kernel_idle = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$"))
            expect(kernel_idle).to_be_visible(timeout=KERNEL_READY_MS)
            screenshot(page, "attendee-03-lab-1")

            step = "run the first cells with Shift+Enter"
            code_cells = notebook.locator(".jp-Notebook .jp-CodeCell")
            code_cells.first.locator(".jp-InputArea-editor").click()
            expect(code_cells.first).to_have_class(re.compile(r"\bjp-mod-active\b"))
            for _ in range(shift_enters_through_the_first_code_cells()):
                page.keyboard.press("Shift+Enter")
            # setup() says which PyTorch and device; the third cell prints each tensor's facts.
            setup_output = code_cells.nth(0).locator(".jp-OutputArea-output")
            expect(setup_output).to_contain_text("PyTorch", timeout=CELLS_DONE_MS)
            tensors_output = code_cells.nth(FIRST_CODE_CELLS - 1).locator(".jp-OutputArea-output")
            expect(tensors_output).to_contain_text("dtype=torch.float32", timeout=CELLS_DONE_MS)
            for number in range(FIRST_CODE_CELLS):
                prompt = code_cells.nth(number).locator(".jp-InputPrompt")
                expect(prompt).to_have_text(f"[{number + 1}]:")
            expect(kernel_idle).to_be_visible(timeout=CELLS_DONE_MS)
            # JupyterLab scrolled along with the run: back up, so the shot shows every output.
            code_cells.nth(0).evaluate("cell => cell.scrollIntoView({block: 'start'})")
            screenshot(page, "attendee-04-first-cells-run")
        except (AssertionError, PlaywrightError) as error:
            shot = screenshot(page, FAILED_SHOT)
            raise AssertionError(
                f"could not {step} ({shot.name} shows the page at {page.url}): {error}\n"
                "the page said:\n" + "\n".join(said[-40:])
            ) from None
        finally:
            browser.close()
