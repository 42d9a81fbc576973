"""The instructor's guide's format (workshop_hub/console/guide.py): what a lab's file must hold, the
note for a check's refusal, and the printable page, which shows every string as text."""

from __future__ import annotations

import pytest

from workshop_hub.console.guide import GuideError, load_guide, parse_guide, render_page

GUIDE = """
lab = 1
title = "Intro to PyTorch"

[[plan]]
minutes = 10
what = "Tensors: shape, dtype, device"

[[plan]]
minutes = 50
what = "The rest"

[[pictures]]
figure = "the computational graph"
say = "Each arrow is a function autograd remembers."

[[exercises]]
exercise = "batch"
teaches = "A batch is rows of samples."

[[exercises.mistakes]]
when = "is None"
explain = "Nothing was assigned yet: replace the None."

[[exercises.mistakes]]
when = "shape \\\\(\\\\d+, \\\\d+\\\\)"
explain = "Rows are samples: transpose."
"""


def test_a_refusal_gets_the_note_for_its_mistake():
    guide = parse_guide(GUIDE, "lab01.toml")
    assert guide.minutes == 60
    assert guide.note_for("batch", "`batch` is None: build it") == (
        "Nothing was assigned yet: replace the None."
    )
    assert guide.note_for("batch", "batch has shape (4, 64), expected (64, 4)") == (
        "Rows are samples: transpose."
    )
    assert guide.note_for("batch", "something the guide never saw") is None
    assert guide.note_for("no_such_exercise", "is None") is None


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (GUIDE.replace("lab = 1", "lab = 9"), "'lab' must be the lab's number"),
        (GUIDE.replace("minutes = 10", "minutes = 0"), "whole 'minutes' above 0"),
        (GUIDE.replace('when = "is None"', 'when = "(unclosed"'), "is no regular expression"),
        (GUIDE.replace('teaches = "A batch is rows of samples."', ""), "'teaches' must be"),
        (GUIDE + '\n[[exercises]]\nexercise = "batch"\nteaches = "again"\n', "appears twice"),
        ("lab = 1\ntitle = [", "is not valid TOML"),
    ],
    ids=["lab", "minutes", "regex", "teaches", "twice", "toml"],
)
def test_a_broken_guide_names_the_file_and_the_fix(broken, message):
    with pytest.raises(GuideError, match=message) as refused:
        parse_guide(broken, "lab01.toml")
    assert "lab01.toml" in str(refused.value)


def test_a_file_under_another_labs_name_is_refused(tmp_path):
    (tmp_path / "lab02.toml").write_text(GUIDE)
    with pytest.raises(GuideError, match="lab02.toml says it is lab 1"):
        load_guide(tmp_path)
    (tmp_path / "lab02.toml").rename(tmp_path / "lab01.toml")
    assert list(load_guide(tmp_path)) == [1]


def test_the_printable_page_escapes_everything():
    hostile = GUIDE.replace("Rows are samples: transpose.", "<script>alert(1)</script>")
    page = render_page(parse_guide(hostile, "lab01.toml"))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Minute plan (60 minutes)" in page
    assert "Each arrow is a function autograd remembers." in page
