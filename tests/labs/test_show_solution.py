"""An attendee's solution cell: it shows the solution once the instructor revealed it, says so
plainly until then, and never raises (tests/e2e/test_console.py drives it in the real stack)."""

from __future__ import annotations

import pytest

from tests.labs.loopback_console import Console
from workshop_labs import progress, solutions


@pytest.fixture
def shown(monkeypatch):
    """What show_solution displays, as the notebook would render it."""
    displayed = []
    monkeypatch.setattr("IPython.display.display", lambda obj: displayed.append(obj.data))
    return displayed


def test_a_hidden_solution_says_it_is_not_revealed_yet(console, shown, capsys):
    console.solutions["1/batch"] = {"lab": 1, "exercise": "batch", "revealed": False}
    assert solutions.show_solution(1, "batch") is False
    assert "lab 1 · batch is not revealed yet" in capsys.readouterr().out
    assert shown == []


def test_once_revealed_the_same_call_shows_it(console, shown):
    console.solutions["1/batch"] = {"lab": 1, "exercise": "batch", "revealed": False}
    assert solutions.show_solution(1, "batch") is False
    markdown = "```python\nbatch = torch.rand(32, 64, device=device)\n```\n"
    console.solutions["1/batch"] = {"revealed": True, "markdown": markdown}
    assert solutions.show_solution(1, "batch") is True
    assert shown == [markdown]


def test_an_unknown_exercise_gets_the_hubs_reason(console, shown, capsys):
    assert solutions.show_solution(1, "no_such") is False
    assert "The hub answered 404 (no such exercise)" in capsys.readouterr().out


def test_a_hub_that_is_away_says_to_try_again(monkeypatch, capsys):
    closed = Console()
    closed.shutdown()
    closed.server_close()
    monkeypatch.setenv(progress.CONSOLE_URL_ENV, closed.url)
    monkeypatch.setenv(progress.TOKEN_ENV, "t")
    assert solutions.show_solution(2, "model") is False
    assert "cannot be reached right now" in capsys.readouterr().out


def test_without_a_hub_it_points_to_the_lab_sources(monkeypatch, capsys):
    monkeypatch.delenv(progress.CONSOLE_URL_ENV, raising=False)
    assert solutions.show_solution(3, "speedup") is False
    assert "labs/ folder" in capsys.readouterr().out
