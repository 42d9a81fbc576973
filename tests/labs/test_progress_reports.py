"""Each check reports to the instructor's console in the background, and never waits for it."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

from tests.labs.loopback_console import Console
from workshop_labs import checks, progress


def lab03_check(check):
    """``check`` as if lab 3 defined it (a check's lab comes from its module's name)."""
    check.__module__ = "workshop_labs.lab03"
    return checks.exercise(stand_in=lambda: 0, stand_in_is="zero")(check)


@lab03_check
def check_speedup(value):
    checks.expect(value > 1, f"a speed-up of {value} is no speed-up")
    checks.passed("faster")


def test_a_check_reports_passes_and_failures_with_the_servers_token(console, monkeypatch):
    monkeypatch.setenv(checks.STRICT_ENV, "0")
    check_speedup(0.5)
    check_speedup(2.0)
    assert progress.wait_until_sent()
    assert console.received == [
        (
            "token the-servers-token",
            {
                "lab": 3,
                "exercise": "speedup",
                "passed": False,
                "reason": "a speed-up of 0.5 is no speed-up",
            },
        ),
        (
            "token the-servers-token",
            {"lab": 3, "exercise": "speedup", "passed": True, "reason": ""},
        ),
    ]


def test_strict_mode_reports_the_failure_too(console):
    with pytest.raises(checks.ExerciseNotSolved):
        check_speedup(0.5)
    assert progress.wait_until_sent()
    assert [body["passed"] for _, body in console.received] == [False]


def test_a_slow_console_never_slows_the_check(monkeypatch):
    slow = Console(delay=2.0)
    monkeypatch.setenv(progress.CONSOLE_URL_ENV, slow.url)
    monkeypatch.setenv(progress.TOKEN_ENV, "t")
    started = time.perf_counter()
    check_speedup(3.0)
    took = time.perf_counter() - started
    assert took < slow.delay / 2, f"the check waited {took:.2f} s for the console"
    assert progress.wait_until_sent(timeout=10) and len(slow.received) == 1
    slow.shutdown()


def test_without_a_console_a_check_works_as_before(monkeypatch, capsys):
    monkeypatch.delenv(progress.CONSOLE_URL_ENV, raising=False)
    assert progress.report(3, "speedup", passed=True) is False
    assert check_speedup(2.0) == 2.0
    assert "✅ faster" in capsys.readouterr().out


def test_a_console_that_is_away_is_not_noticed(monkeypatch, capsys):
    closed = Console()
    url = closed.url
    closed.shutdown()
    closed.server_close()  # nothing listens on that port any more
    monkeypatch.setenv(progress.CONSOLE_URL_ENV, url)
    monkeypatch.setenv(progress.TOKEN_ENV, "t")
    assert check_speedup(2.0) == 2.0
    assert progress.wait_until_sent()
    assert "✅ faster" in capsys.readouterr().out


class BusyConsole(ThreadingHTTPServer):
    """A console that refuses the first ``refusals`` reports with 429 and Retry-After: 1, as
    the real one does past an attendee's rate; when each report came, and what it answered."""

    def __init__(self, refusals: int):
        self.answers: list[tuple[float, int]] = []
        console = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                code = 429 if len(console.answers) < refusals else 201
                console.answers.append((time.monotonic(), code))
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(b'{"message": "send the next in 1 s"}')

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/console/api/"


def test_a_console_that_says_too_many_is_waited_for_quietly_and_told_again(monkeypatch, capsys):
    busy = BusyConsole(refusals=1)
    monkeypatch.setenv(progress.CONSOLE_URL_ENV, busy.url)
    monkeypatch.setenv(progress.TOKEN_ENV, "t")
    started = time.perf_counter()
    assert check_speedup(2.0) == 2.0
    assert time.perf_counter() - started < 0.5, "the check waited for the console"
    assert progress.wait_until_sent(timeout=10)
    busy.shutdown()
    (refused_at, refused), (sent_at, sent) = busy.answers
    # Control: the console did refuse the first time; the report came again a second later.
    assert (refused, sent) == (429, 201) and sent_at - refused_at >= 1.0
    out, err = capsys.readouterr()
    assert "✅ faster" in out and "Traceback" not in out + err and "429" not in out + err
