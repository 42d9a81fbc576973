"""Which solutions attendees see: none until the instructor reveals one exercise's or a whole
lab's, kept across console restarts, and nothing else for a name the catalog lacks."""

from __future__ import annotations

import json

import pytest

from workshop_hub.console.solutions import Solutions, UnknownExercise, load_catalog

CATALOG = {1: {"batch": "batch = ...", "train_step": "def train_step(): ..."}, 2: {"model": "m"}}


@pytest.fixture
def solutions(tmp_path):
    return Solutions(CATALOG, tmp_path / "revealed.json")


def test_nothing_is_revealed_at_first(solutions):
    assert solutions.answer(1, "batch") == {"lab": 1, "exercise": "batch", "revealed": False}
    assert not any(e["revealed"] for lab in solutions.overview() for e in lab["exercises"])


def test_one_exercise_revealed_shows_that_one_only(solutions):
    assert solutions.reveal(1, "batch") == ["batch"]
    assert solutions.answer(1, "batch")["markdown"] == "batch = ..."
    assert "markdown" not in solutions.answer(1, "train_step")
    assert solutions.reveal(1, "batch") == []  # revealing again changes nothing


def test_a_whole_lab_is_revealed_and_hidden_again(solutions):
    assert solutions.reveal(1) == ["batch", "train_step"]
    assert not solutions.answer(2, "model")["revealed"]
    assert solutions.reveal(1, "train_step", revealed=False) == ["train_step"]
    assert [e["revealed"] for e in solutions.overview()[0]["exercises"]] == [True, False]


def test_reveals_outlive_a_console_restart(tmp_path):
    Solutions(CATALOG, tmp_path / "revealed.json").reveal(2, "model")
    again = Solutions(CATALOG, tmp_path / "revealed.json")
    assert again.answer(2, "model")["revealed"] and not again.answer(1, "batch")["revealed"]


@pytest.mark.parametrize(
    ("lab", "exercise", "says"),
    [
        (3, None, "no lab 3 has solutions"),
        (True, None, "no lab True"),
        ("1", "batch", "no lab '1'"),
        (1, "nope", "lab 1 has no exercise 'nope': it has batch, train_step"),
        (1, ["batch"], r"lab 1 has no exercise \['batch'\]"),
    ],
)
def test_a_name_the_catalog_lacks_is_refused_with_what_exists(solutions, lab, exercise, says):
    with pytest.raises(UnknownExercise, match=says):
        solutions.reveal(lab, exercise)


def test_a_damaged_reveal_file_hides_everything_and_keeps_working(tmp_path):
    (tmp_path / "revealed.json").write_text("{not json")
    solutions = Solutions(CATALOG, tmp_path / "revealed.json")
    assert not solutions.answer(1, "batch")["revealed"]
    assert solutions.reveal(1, "batch") == ["batch"]
    assert json.loads((tmp_path / "revealed.json").read_text()) == [[1, "batch"]]


def test_an_image_without_a_catalog_has_no_solutions_to_reveal(tmp_path, caplog):
    assert load_catalog(tmp_path / "missing.json") == {}
    assert "no solutions to reveal" in caplog.text
