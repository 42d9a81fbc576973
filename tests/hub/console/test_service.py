"""The console service's app, served on loopback: routes, and who may call what before any
hub is asked (tests/e2e/test_console.py drives it in the real stack); and what an attendee
or a stranger can send it: exercises outside the course, a flood of reports, a huge body."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from threading import current_thread, main_thread

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httpserver import HTTPServer

from tests.console_app import PREFIX, console_app, serve_on_loopback
from workshop_hub.console.hands import HandQueue
from workshop_hub.console.progress import ProgressBook
from workshop_hub.console.service import REPORT_BURST, console_server

FLOOD_BYTES = 90 * 2**20


@pytest.fixture
def book(tmp_path):
    return ProgressBook(tmp_path / "progress.sqlite")


@pytest.fixture
def hand_queue(tmp_path):
    return HandQueue(tmp_path / "hands.sqlite")


@pytest.fixture
def app(book, hand_queue, tmp_path, monkeypatch):
    return console_app(tmp_path, monkeypatch, book, hand_queue)


@pytest.fixture
async def console(app):
    server = console_server(app)
    url, _ = serve_on_loopback(server)
    yield url
    server.stop()


async def fetch(url: str, **options):
    try:
        return await AsyncHTTPClient().fetch(url, follow_redirects=False, **options)
    except HTTPClientError as error:
        return error.response


async def post_report(console: str, token: str, exercise: str = "batch", lab: int = 1):
    report = {"lab": lab, "exercise": exercise, "passed": False, "reason": "`batch` is None"}
    return await fetch(
        f"{console}api/progress",
        method="POST",
        body=json.dumps(report),
        headers={"Authorization": f"token {token}"},
    )


def attempts_of(book: ProgressBook, attendee: str) -> dict[str, int]:
    return {state.exercise: state.attempts for state in book.standings(attendee).get(attendee, [])}


async def test_progress_without_a_token_is_401_with_a_json_reason(console):
    response = await fetch(f"{console}api/progress")
    assert response.code == 401 and b"send the server's API token" in response.body


async def test_a_solution_without_a_token_is_401_and_never_shown(console):
    response = await fetch(f"{console}api/solutions/1/batch")
    assert response.code == 401 and b"the solution" not in response.body


async def test_revealing_a_solution_without_token_or_xsrf_is_refused(console):
    body = '{"lab": 1, "exercise": "batch"}'
    response = await fetch(f"{console}api/solutions", method="POST", body=body)
    assert response.code == 403


async def test_the_page_sends_a_browser_to_the_hubs_login(console):
    response = await fetch(console)
    assert response.code == 302
    assert "/hub/api/oauth2/authorize" in response.headers["Location"]


async def test_an_action_without_token_or_xsrf_is_refused_before_anything_runs(console):
    response = await fetch(f"{console}api/attendees/ada/stop", method="POST", body="{}")
    assert response.code == 403


async def test_a_report_of_an_exercise_outside_the_course_is_400_and_not_kept(book, console):
    made_up = await post_report(console, "ada-token", exercise="x0001")
    assert made_up.code == 400
    assert json.loads(made_up.body)["message"] == (
        "lab 1 has no exercise 'x0001'; its exercises: batch"
    )
    assert (await post_report(console, "ada-token", lab=2)).code == 400  # batch is lab 1's
    control = await post_report(console, "ada-token", exercise="batch")
    assert control.code == 201
    assert attempts_of(book, "ada") == {"batch": 1}


async def test_reports_past_the_burst_get_429_with_retry_after_and_are_not_kept(book, console):
    answers = await asyncio.gather(
        *(post_report(console, "ada-token") for _ in range(REPORT_BURST + 30))
    )
    codes = [answer.code for answer in answers]
    refused = [answer for answer in answers if answer.code == 429]
    # A few may refill while they come; the burst goes through, most of the rest not.
    assert codes.count(201) >= REPORT_BURST and len(refused) >= 20, codes
    assert all(int(answer.headers["Retry-After"]) >= 1 for answer in refused)
    assert "send the next in" in json.loads(refused[0].body)["message"]
    assert attempts_of(book, "ada")["batch"] == codes.count(201)
    # Control: another attendee in the same room is not held back by ada's reports.
    assert (await post_report(console, "bob-token")).code == 201


async def test_a_kernel_posting_in_a_loop_gets_an_answer_a_second_once_refused(console):
    answered, until = [], time.monotonic() + 3
    while time.monotonic() < until:
        answered.append((await post_report(console, "ada-token")).code)
    # The burst at once, then what refills (3 a second) and a refusal a second between them:
    # a thousand answers a second without the wait.
    assert answered.count(201) >= REPORT_BURST and len(answered) <= REPORT_BURST + 15, answered


async def test_the_book_is_written_and_read_off_the_event_loop(book, console, monkeypatch):
    threads = []

    def noting_the_thread(call):
        def noted(*args):
            threads.append(current_thread())
            return call(*args)

        return noted

    for method in ("record", "standings"):
        monkeypatch.setattr(book, method, noting_the_thread(getattr(book, method)))
    assert (await post_report(console, "ada-token")).code == 201
    own = await fetch(f"{console}api/progress/ada", headers={"Authorization": "token ada-token"})
    assert own.code == 200 and json.loads(own.body)["attendees"]["ada"][0]["attempts"] == 1
    # Control: this test, and the console's event loop with it, runs on the main thread.
    assert current_thread() is main_thread()
    assert [thread.name.split("_")[0] for thread in threads] == ["progress-book"] * 2


def peak_rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


async def post_anonymous_body(port: int, size: int) -> tuple[int, bytes]:
    """A stranger's POST of ``size`` bytes, streamed from one small buffer (so only the
    server's memory can grow); how much was sent before the server closed, and its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {PREFIX}api/progress HTTP/1.1\r\nHost: console\r\n"
        f"Content-Length: {size}\r\n\r\n".encode()
    )
    chunk, sent = b" " * 2**16, 0
    try:
        while sent < size:
            writer.write(chunk[: size - sent])
            await writer.drain()
            sent += len(chunk)
        answer = await reader.read(200)
    except ConnectionError:
        answer = b""
    writer.close()
    return min(sent, size), answer


async def test_a_90_mb_anonymous_body_is_refused_before_the_console_holds_it(app, console):
    port = int(console.split(":")[2].split("/")[0])
    reset_peak_rss()
    before = peak_rss_kib()
    sent, answer = await post_anonymous_body(port, FLOOD_BYTES)
    grown = peak_rss_kib() - before
    assert sent < FLOOD_BYTES / 4 and not answer.startswith(b"HTTP/1.1 401"), (sent, answer)
    assert grown < 8 * 1024, f"the console's memory grew by {grown} KiB"

    # Control: Tornado's own limits buffer all 90 MB before the handler says 401.
    unlimited = HTTPServer(app)
    _, unlimited_port = serve_on_loopback(unlimited)
    reset_peak_rss()
    before = peak_rss_kib()
    sent, answer = await post_anonymous_body(unlimited_port, FLOOD_BYTES)
    unlimited.stop()
    assert sent == FLOOD_BYTES and answer.startswith(b"HTTP/1.1 401"), answer
    assert peak_rss_kib() - before > FLOOD_BYTES // 1024 * 0.8


# The console as JupyterHub runs it, on a port of the test's and a book in a folder of it.
SERVE = textwrap.dedent(
    """
    import asyncio, logging, sys
    from pathlib import Path
    from jupyterhub.services.auth import HubAuth
    from workshop_hub.console.service import make_app, serve
    from workshop_hub.console.hands import HandQueue
    from workshop_hub.console.progress import ProgressBook
    from workshop_hub.console.solutions import Solutions

    logging.basicConfig(level=logging.INFO)
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    book = ProgressBook(folder / "progress.sqlite")
    solutions = Solutions({}, folder / "revealed.json")
    app = make_app(HubAuth(), book, solutions, HandQueue(folder / "hands.sqlite"), "/console/")
    asyncio.run(serve(app, port, background=lambda: asyncio.sleep(3600)))
    """
)
# Control: how the console ran before, a bare IOLoop.start().
SERVE_BARE = textwrap.dedent(
    """
    import sys
    from tornado import ioloop, web

    web.Application([]).listen(int(sys.argv[1]), address="127.0.0.1")
    ioloop.IOLoop.current().start()
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stopped_by(stop_signal: int, program: str, folder: Path) -> subprocess.CompletedProcess:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", program, str(port), str(folder)],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "it never listened"
            time.sleep(0.1)
    process.send_signal(stop_signal)
    _, stderr = process.communicate(timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, "", stderr)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_console_stops_quietly_when_the_hub_stops_it(stop_signal, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "the-services-token")
    monkeypatch.setenv("JUPYTERHUB_CLIENT_ID", "service-console")
    stopped = stopped_by(stop_signal, SERVE, tmp_path)
    assert stopped.returncode == 0 and "Traceback" not in stopped.stderr, stopped.stderr
    assert "console service stopping" in stopped.stderr


def test_control_a_bare_ioloop_prints_a_traceback_on_sigint(tmp_path):
    stopped = stopped_by(signal.SIGINT, SERVE_BARE, tmp_path)
    assert "KeyboardInterrupt" in stopped.stderr and "Traceback" in stopped.stderr


def as_attendee(token: str, **options) -> dict:
    return {"headers": {"Authorization": f"token {token}"}, **options}


async def test_a_hand_is_raised_seen_and_lowered_by_its_owner_only(console, hand_queue):
    raised = await fetch(
        console + "api/hand",
        method="POST",
        body=json.dumps({"kind": "stuck", "note": "Ex 3\nhelp", "notebook": "lab1.ipynb"}),
        **as_attendee("ada-token"),
    )
    assert raised.code == 201
    hand = json.loads(raised.body)["hand"]
    assert (hand["attendee"], hand["kind"], hand["note"]) == ("ada", "stuck", "Ex 3 help")
    # Bob's token sees Bob's hand, none, and cannot lower Ada's.
    bobs = await fetch(console + "api/hand", **as_attendee("bob-token"))
    assert json.loads(bobs.body) == {"hand": None}
    lowered = await fetch(console + "api/hand", method="DELETE", **as_attendee("bob-token"))
    assert json.loads(lowered.body) == {"lowered": False}
    assert hand_queue.mine("ada") is not None
    lowered = await fetch(console + "api/hand", method="DELETE", **as_attendee("ada-token"))
    assert json.loads(lowered.body) == {"lowered": True}
    assert hand_queue.mine("ada") is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "admin"}, "'kind' must be one of stuck, done"),
        ({"kind": "stuck", "note": "x" * 201}, "say it in 200"),
        ({"kind": "stuck", "notebook": "../../etc/passwd.ipynb"}, "path in the work folder"),
        ({"kind": "stuck", "notebook": "/home/jovyan/x.ipynb"}, "path in the work folder"),
        ({"kind": "stuck", "notebook": "run.sh"}, "path in the work folder"),
        ([1, 2], "a hand is a JSON object"),
    ],
    ids=["kind", "long-note", "dotdot", "absolute", "not-a-notebook", "list"],
)
async def test_a_hand_an_attendee_could_not_send_is_400_and_not_kept(
    console, hand_queue, body, reason
):
    refused = await fetch(
        console + "api/hand", method="POST", body=json.dumps(body), **as_attendee("ada-token")
    )
    assert refused.code == 400
    assert reason in json.loads(refused.body)["message"]
    assert hand_queue.mine("ada") is None


async def test_hands_without_a_token_or_as_a_stranger_are_refused(console, hand_queue):
    anonymous = await fetch(console + "api/hand", method="POST", body='{"kind": "stuck"}')
    assert anonymous.code == 401
    stranger = await fetch(
        console + "api/hand", method="POST", body='{"kind": "stuck"}', **as_attendee("forged")
    )
    assert stranger.code == 403
    assert hand_queue.queue()["open"] == []


async def test_the_queue_and_its_answers_need_an_instructors_login(console, hand_queue):
    """Without the hub's login (an attendee's server token is not one: tests/e2e/test_console.py
    sends one against the real hub), the queue goes to the hub's login and "done" is refused
    before anything changes."""
    await fetch(
        console + "api/hand", method="POST", body='{"kind": "stuck"}', **as_attendee("ada-token")
    )
    queue = await fetch(console + "api/hands")
    assert queue.code == 302 and "/hub/api/oauth2/authorize" in queue.headers["Location"]
    done = await fetch(console + "api/hands/ada/done", method="POST", body="{}")
    assert done.code == 403
    assert hand_queue.mine("ada") is not None


async def test_notices_wait_for_news_and_bring_only_the_callers(app, console):
    start = json.loads((await fetch(console + "api/notices", **as_attendee("ada-token"))).body)
    query = f"api/notices?after={start['seq']}&boot={start['boot']}&wait=10"
    adas = asyncio.ensure_future(fetch(console + query, **as_attendee("ada-token")))
    bobs = asyncio.ensure_future(fetch(console + query, **as_attendee("bob-token")))
    await asyncio.sleep(0.3)
    assert not adas.done()
    started = time.monotonic()
    app.notices.publish("hand", "On my way: kim", to="ada")
    news = json.loads((await adas).body)
    assert time.monotonic() - started < 2
    assert [notice["text"] for notice in news["notices"]] == ["On my way: kim"]
    bobs.cancel()


async def test_notices_without_a_token_or_with_nonsense_are_refused(console):
    assert (await fetch(console + "api/notices")).code == 401
    nonsense = await fetch(console + "api/notices?after=x", **as_attendee("ada-token"))
    assert nonsense.code == 400


async def test_the_guide_is_for_instructors_only(console):
    response = await fetch(console + "guide/1")
    assert response.code == 302 and "/hub/api/oauth2/authorize" in response.headers["Location"]


def test_a_broken_guide_leaves_the_console_running_without_one(tmp_path, monkeypatch, caplog):
    from workshop_hub.console import guide
    from workshop_hub.console import service as console_module

    (tmp_path / "lab01.toml").write_text("lab = [")
    monkeypatch.setattr(guide, "GUIDE_DIR", tmp_path)
    assert console_module.load_guides() == {}
    assert "lab01.toml is not valid TOML" in caplog.text


async def test_a_script_cannot_hold_more_than_a_few_waits_for_notices(console):
    from workshop_hub.console.service import MAX_NOTICE_WAITS_PER_ATTENDEE

    start = json.loads((await fetch(console + "api/notices", **as_attendee("ada-token"))).body)
    query = f"api/notices?after={start['seq']}&boot={start['boot']}&wait=3"
    waits = [
        asyncio.ensure_future(fetch(console + query, **as_attendee("ada-token")))
        for _ in range(MAX_NOTICE_WAITS_PER_ATTENDEE + 3)
    ]
    codes = sorted([(await wait).code for wait in waits])
    assert codes == [200] * MAX_NOTICE_WAITS_PER_ATTENDEE + [429] * 3
    # Bob is not Ada's script's neighbour in line: his wait is his own.
    bobs = await fetch(console + "api/notices?wait=0", **as_attendee("bob-token"))
    assert bobs.code == 200
