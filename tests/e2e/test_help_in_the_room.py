"""Help in the room, in two real browsers (Chromium via Playwright) on the real stack: an
attendee in JupyterLab and the instructor on the console.

The attendee fails a check, opens the Help panel and raises a hand with a note; the hand is on
the console's queue within 2 s with the failing check and the instructor's guide's note on
that mistake; the instructor answers "On my way" and
the attendee's open JupyterLab says so within 5 s; the instructor opens the notebook from the
queue (the console's script-free view: the failing cell marked, its output under it, a
later save shown within 10 s with no click); an announcement and a revealed solution each reach the
open JupyterLab within 5 s; the panel's grid shows what the console's row shows. Each step
leaves reports/screenshots/help-NN-STEP.png, a failure help-failed.png.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from workshop_hub.console.guide import load_guide
from workshop_labs.notebooks import lab_sources

from .browser import SCREENSHOTS, launch, log_in, screenshot
from .hub_client import Attendee
from .stack import ROOT

ATTENDEE = "handup"
LAB_1 = lab_sources(ROOT / "labs")[0].with_suffix(".ipynb").name
GUIDES = load_guide(ROOT / "labs" / "guide")
CONSOLE = "services/console/"
NOTE = "exercise 1 says my batch is None"
FAILED_SHOT = "help-failed"
SERVER_READY_MS = 180_000
# What the issue asks: on the console within 2 s, in JupyterLab within 5 s.
CONSOLE_WITHIN_S = 2.0
JUPYTERLAB_WITHIN_S = 5.0
# The watching page asks for the notebook's fingerprint every 5 s, then reloads its frame.
WATCH_WITHIN_S = 10.0
# A failing check of lab 1, as the attendee's kernel runs it: the report reaches the console.
FAIL_A_CHECK = """
from workshop_labs import lab01, progress
lab01.check_batch(None, "cpu")
progress.wait_until_sent()
"""


@pytest.fixture
def attendee(hub, access_code):
    newcomer = Attendee(hub.url, ATTENDEE)
    assert newcomer.login(access_code).status_code == 200
    newcomer.wait_until_ready()
    assert newcomer.open_lab().status_code == 200  # the server's own login, for its kernels
    yield newcomer
    if newcomer.login().status_code == 200 and newcomer.server_info()["servers"]:
        newcomer.stop_server()


@pytest.fixture
def instructor_password(hub) -> str:
    return hub.hub_exec("workshop-hub", "admin-password").stdout.split()[-1]


def seconds_until(locator, timeout_s: float) -> float:
    """How long until ``locator`` is visible (fails past ``timeout_s``, with the page's shot)."""
    started = time.monotonic()
    expect(locator).to_be_visible(timeout=int(timeout_s * 1000) + 15_000)
    return time.monotonic() - started


def toast(page, text: str):
    return page.locator(".Toastify__toast", has_text=text)


def test_a_raised_hand_reaches_the_instructor_and_the_answer_comes_back(
    hub, attendee, instructor_password
):
    failed = attendee.run_code(FAIL_A_CHECK)
    assert "`batch` is None" in failed.stdout and "Not solved yet" in failed.stdout, failed
    # The attendee's lab 1 as saved after running that check: its output under the cell.
    keep_output_under(attendee, f"labs/{LAB_1}", "check_batch(", failed.stdout)
    (SCREENSHOTS / f"{FAILED_SHOT}.png").unlink(missing_ok=True)
    timings: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        lab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        front = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        front.on("dialog", lambda dialog: dialog.accept())  # the console confirms each action
        said: list[str] = []
        lab.on("console", lambda message: said.append(f"lab: {message.text}"))
        front.on("console", lambda message: said.append(f"console: {message.text}"))
        page, step = lab, "log the attendee in"
        try:
            log_in(lab, hub.url, attendee.name, attendee.password)
            lab.wait_for_url(re.compile(rf"/user/{attendee.name}/lab"), timeout=SERVER_READY_MS)
            help_tab = lab.locator('.lm-TabBar-tab[data-id="workshop-help-panel"]')
            expect(help_tab).to_be_visible(timeout=SERVER_READY_MS)

            step = "log the instructor in to the console"
            page = front
            log_in(front, hub.url, "instructor", instructor_password)
            front.wait_for_load_state()
            front.goto(f"{hub.url}/{CONSOLE}")
            expect(front.locator("#hands-summary")).to_contain_text("raised today", timeout=60_000)
            screenshot(front, "help-01-console-no-hands")

            step = "open lab 1"
            page = lab
            lab.goto(f"{hub.url}/user/{attendee.name}/lab/tree/labs/{LAB_1}")
            expect(lab.locator(".jp-NotebookPanel:visible")).to_be_visible(timeout=60_000)

            step = "open the Help panel: the grid shows the failing check"
            help_tab.click()
            failing = lab.locator('.wh-cell[data-exercise="batch"][data-state="failing"]')
            expect(failing).to_be_visible(timeout=30_000)
            screenshot(lab, "help-02-panel")

            step = "the panel's grid shows what the console's row shows"
            page = front
            console_row = front.locator(f'#rows tr[data-attendee="{attendee.name}"]')
            expect(console_row.locator('.cell.failing[data-exercise="1/batch"]')).to_be_visible(
                timeout=30_000
            )
            panel = grid_states(lab, ".wh-cell", panel_state)
            assert len(panel) >= 50 and panel == grid_states(
                front, f'#rows tr[data-attendee="{attendee.name}"] .cell', console_state
            ), panel

            step = "raise a hand"
            lab.fill(".wh-note", NOTE)
            lab.get_by_role("button", name="✋ I'm stuck").click()
            queued = front.locator(f'#hand-rows tr[data-attendee="{attendee.name}"]')
            page = front
            timings["hand on the console"] = seconds_until(queued, CONSOLE_WITHIN_S)
            expect(queued).to_contain_text(NOTE)
            expect(queued).to_contain_text("lab 1 · batch")
            # What the instructor's guide (labs/guide/lab01.toml) says of that mistake.
            note = GUIDES[1].note_for("batch", "`batch` is None: replace the None")
            expect(queued.locator(".guide-note")).to_have_text(f"Guide: {note}")
            expect(lab.locator(".wh-hand-status")).to_contain_text("Your hand is up")
            screenshot(front, "help-03-hand-on-the-console")

            step = "look at the notebook from the queue: the failing check's cell is marked"
            with front.context.expect_page() as opened:
                queued.get_by_role("link", name=f"labs/{LAB_1}").click()
            shoulder = opened.value
            shoulder.on("console", lambda message: said.append(f"watch: {message.text}"))
            shoulder.on(
                "requestfailed",
                lambda request: said.append(f"watch: {request.url} failed: {request.failure}"),
            )
            page = shoulder
            # The console's watching page frames the inert view of the notebook.
            marked = shoulder.frame_locator("iframe#work").locator("section#failing")
            expect(marked).to_contain_text("check_batch(", timeout=30_000)
            expect(marked).to_contain_text("the check that failed last: `batch` is None")
            expect(marked).to_contain_text("Not solved yet")  # the cell's own output
            screenshot(shoulder, "help-04-shoulder-view")
            step = "the attendee saves again: the instructor's view follows, with no click"
            keep_output_under(attendee, f"labs/{LAB_1}", "check_batch(", "saved again")
            timings["a save in the shoulder view"] = seconds_until(
                marked.get_by_text("saved again"), WATCH_WITHIN_S
            )
            shoulder.close()

            step = "answer: on my way"
            queued.get_by_role("button", name="On my way").click()
            page = lab
            timings["'On my way' in JupyterLab"] = seconds_until(
                toast(lab, "On my way: instructor"), JUPYTERLAB_WITHIN_S
            )
            expect(lab.locator(".wh-hand-status")).to_contain_text("instructor is on the way")
            screenshot(lab, "help-05-on-my-way")

            step = "announce"
            page = front
            front.fill("#announcement", "Break until 10:45")
            front.get_by_role("button", name="Announce").click()
            page = lab
            timings["announcement in JupyterLab"] = seconds_until(
                toast(lab, "Break until 10:45"), JUPYTERLAB_WITHIN_S
            )

            step = "reveal a solution"
            page = front
            front.locator("#solutions-panel summary").click()
            front.locator('#solutions button[data-exercise="1/batch"]').click()
            page = lab
            timings["revealed solution in JupyterLab"] = seconds_until(
                toast(lab, "lab 1 · batch is out"), JUPYTERLAB_WITHIN_S
            )
            screenshot(lab, "help-06-notices")

            step = "close the hand"
            page = front
            queued.get_by_role("button", name="Done").click()
            expect(queued).to_have_count(0, timeout=10_000)
            expect(front.locator("#hands-summary")).to_contain_text("0 up")
            page = lab
            expect(toast(lab, "instructor closed your raised hand")).to_be_visible(timeout=10_000)
            screenshot(front, "help-07-hand-closed")
        except (AssertionError, PlaywrightError) as error:
            shot = screenshot(page, FAILED_SHOT)
            raise AssertionError(
                f"could not {step} ({shot.name} shows {page.url}): {error}\n"
                + "\n".join(said[-40:])
            ) from None
        finally:
            browser.close()
    print("help in the room:", ", ".join(f"{what} {s:.1f} s" for what, s in timings.items()))
    assert timings["hand on the console"] < CONSOLE_WITHIN_S, timings
    assert timings.pop("a save in the shoulder view") < WATCH_WITHIN_S, timings
    for what, seconds in timings.items():
        assert seconds < JUPYTERLAB_WITHIN_S, (what, timings)
    answers = [e for e in audited_actions(hub) if e["attendee"] == attendee.name]
    # Opening the attendee's notebook from the queue is audited too, before the two answers.
    assert [e["action"] for e in answers] == ["view work", "hand: on-my-way", "hand: done"]


def keep_output_under(attendee: Attendee, path: str, marker: str, printed: str) -> None:
    """Save the notebook at ``path`` with ``printed`` as the output of the cell holding
    ``marker``, through the attendee's own server, before JupyterLab opens it."""
    notebook = attendee.api("GET", f"contents/{path}").json()["content"]
    (cell,) = [c for c in notebook["cells"] if c["cell_type"] == "code" and marker in c["source"]]
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": printed}]
    saved = attendee.api(
        "PUT", f"contents/{path}", json={"type": "notebook", "format": "json", "content": notebook}
    )
    assert saved.status_code == 200, saved.text


def panel_state(element) -> tuple[str, str]:
    lab = element.evaluate("e => e.closest('.wh-row').querySelector('.wh-lab').textContent")
    return f"{lab.split()[-1]}/{element.get_attribute('data-exercise')}", element.get_attribute(
        "data-state"
    )


def console_state(element) -> tuple[str, str]:
    classes = element.get_attribute("class").split()
    look = "passed" if "passed" in classes else "failing" if "failing" in classes else "untried"
    return element.get_attribute("data-exercise"), look


def grid_states(page, selector: str, state_of) -> dict[str, str]:
    """Every exercise's state in one grid, "LAB/EXERCISE" -> untried, failing or passed."""
    return dict(state_of(cell) for cell in page.locator(selector).all())


def audited_actions(hub) -> list[dict]:
    text = hub.hub_exec("cat", "/srv/jupyterhub/data/console-actions.jsonl").stdout
    return [json.loads(line) for line in text.splitlines()]
