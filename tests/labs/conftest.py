"""Shared fixtures for the lab tests: an isolated work folder, so that labs that pass artifacts
to later labs do so inside the test session, and figures that never open a window."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.labs.loopback_console import Console
from workshop_labs import progress
from workshop_labs.checks import STRICT_ENV

# Pictures the tests draw, kept for a person to look at (git-ignored).
FIGURES = Path(__file__).resolve().parents[2] / "reports" / "figures"


def keep_figure(figure, name: str) -> Path:
    """Save ``figure`` as reports/figures/NAME.png; its path."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"{name}.png"
    figure.savefig(path)
    return path


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def strict_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A check called with a wrong answer must raise here, not run past it as in a notebook.
    Per test, not for the whole session: the hub's tests refuse unknown WORKSHOP_ names."""
    monkeypatch.setenv(STRICT_ENV, "1")


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work folder for the whole session (labs run in order and may reuse each other's
    outputs); the kernels inherit it through WORKSHOP_WORK_DIR."""
    folder = tmp_path_factory.mktemp("work")
    previous = os.environ.get("WORKSHOP_WORK_DIR")
    os.environ["WORKSHOP_WORK_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("WORKSHOP_WORK_DIR", None)
    else:
        os.environ["WORKSHOP_WORK_DIR"] = previous


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch):
    """A console on loopback that this kernel reports to and asks for solutions."""
    server = Console()
    monkeypatch.setenv(progress.CONSOLE_URL_ENV, server.url)
    monkeypatch.setenv(progress.TOKEN_ENV, "the-servers-token")
    yield server
    server.shutdown()
