"""The instructor's guide: per lab, the minute plan, what to say at each picture, and for each
exercise the mistakes attendees make with how to explain them.

Written with the labs, one TOML file per lab (labs/guide/labNN.toml, shipped in the hub image).
A mistake's ``when`` is a regular expression over the reason the exercise's check prints: the
reasons are the checks' own words (tests/labs/corpus_labNN.py feeds every wrong answer a
beginner writes to its check), so the console can put the guide's note beside a raised hand
whose last failing check said it. tests/labs/test_guide.py keeps each file true to its lab:
every exercise has its notes, every wrong answer of the corpus meets one, the plan adds up to
the lab's minutes.

Public API:
- ``load_guide(folder) -> dict[int, LabGuide]``: every lab's guide; a file that is not a valid
  guide raises GuideError naming the file and what is wrong.
- ``LabGuide.note_for(exercise, reason) -> str | None``: the explanation for that refusal.
- ``render_page(guide) -> str``: the lab's guide as a printable, script-free HTML page.
"""

from __future__ import annotations

import html
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

GUIDE_DIR = Path("/opt/workshop/guide")
GUIDE_FILE = re.compile(r"lab(\d\d)\.toml")


class GuideError(ValueError):
    """A guide file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Mistake:
    when: re.Pattern
    explain: str


@dataclass(frozen=True)
class ExerciseGuide:
    exercise: str
    teaches: str
    mistakes: tuple[Mistake, ...]


@dataclass(frozen=True)
class LabGuide:
    lab: int
    title: str
    plan: tuple[tuple[int, str], ...]  # (minutes, what happens), in order
    pictures: tuple[tuple[str, str], ...]  # (the figure, what to say at it)
    exercises: dict[str, ExerciseGuide]

    @property
    def minutes(self) -> int:
        return sum(minutes for minutes, _ in self.plan)

    def note_for(self, exercise: str, reason: str) -> str | None:
        """How to explain the mistake the check named in ``reason``; None when the guide
        does not know it."""
        guide = self.exercises.get(exercise)
        if guide is None:
            return None
        return next((m.explain for m in guide.mistakes if m.when.search(reason)), None)


def _text(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise GuideError(f"{where}: '{key}' must be non-empty text")
    return value.strip()


def _tables(document: dict, key: str, where: str) -> list[dict]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise GuideError(f"{where}: '{key}' must be a list of tables ([[{key}]])")
    return value


def parse_guide(text: str, where: str) -> LabGuide:
    """One lab's guide from its TOML text; ``where`` names it in errors."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GuideError(f"{where} is not valid TOML: {error}") from None
    lab = document.get("lab")
    if not isinstance(lab, int) or isinstance(lab, bool) or not 1 <= lab <= 7:
        raise GuideError(f"{where}: 'lab' must be the lab's number, 1 to 7")
    plan = []
    for step in _tables(document, "plan", where):
        minutes = step.get("minutes")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0:
            raise GuideError(f"{where}: each [[plan]] step needs whole 'minutes' above 0")
        plan.append((minutes, _text(step, "what", f"{where} [[plan]]")))
    pictures = [
        (_text(p, "figure", f"{where} [[pictures]]"), _text(p, "say", f"{where} [[pictures]]"))
        for p in _tables(document, "pictures", where)
    ]
    exercises = {}
    for entry in _tables(document, "exercises", where):
        name = _text(entry, "exercise", f"{where} [[exercises]]")
        mistakes = []
        for mistake in _tables(entry, "mistakes", f"{where} exercise {name}"):
            pattern = _text(mistake, "when", f"{where} exercise {name}")
            try:
                when = re.compile(pattern)
            except re.error as error:
                raise GuideError(
                    f"{where} exercise {name}: 'when' {pattern!r} is no regular expression "
                    f"({error})"
                ) from None
            mistakes.append(Mistake(when, _text(mistake, "explain", f"{where} exercise {name}")))
        if name in exercises:
            raise GuideError(f"{where}: exercise {name} appears twice")
        exercises[name] = ExerciseGuide(
            name, _text(entry, "teaches", f"{where} exercise {name}"), tuple(mistakes)
        )
    return LabGuide(lab, _text(document, "title", where), tuple(plan), tuple(pictures), exercises)


def load_guide(folder: Path = GUIDE_DIR) -> dict[int, LabGuide]:
    guides = {}
    for path in sorted(folder.glob("lab*.toml")):
        if not GUIDE_FILE.fullmatch(path.name):
            continue
        guide = parse_guide(path.read_text(encoding="utf-8"), path.name)
        if f"lab{guide.lab:02d}.toml" != path.name:
            raise GuideError(f"{path.name} says it is lab {guide.lab}: rename it or fix 'lab'")
        guides[guide.lab] = guide
    return guides


PAGE_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 50rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 1.4rem; }
table { border-collapse: collapse; } td { padding: .2rem .6rem; vertical-align: top; }
.mistake { margin: .2rem 0 .5rem 1rem; }
code { background: #f3f3f3; padding: 0 .2rem; }
@media print { body { margin: 0; max-width: none; } }
"""


def render_page(guide: LabGuide) -> str:
    """The guide as one printable page, every string escaped, no script."""
    e = html.escape
    plan = "".join(f"<tr><td>{m} min</td><td>{e(what)}</td></tr>" for m, what in guide.plan)
    pictures = "".join(f"<h3>{e(figure)}</h3><p>{e(say)}</p>" for figure, say in guide.pictures)
    exercises = "".join(
        f"<h3>{e(ex.exercise)}</h3><p>{e(ex.teaches)}</p>"
        + "".join(
            f'<p class="mistake">When the check says <code>{e(m.when.pattern)}</code>: '
            f"{e(m.explain)}</p>"
            for m in ex.mistakes
        )
        for ex in guide.exercises.values()
    )
    title = f"Lab {guide.lab} · {guide.title}: the instructor's guide"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{PAGE_STYLE}</style></head><body><h1>{e(title)}</h1>"
        f"<h2>Minute plan ({guide.minutes} minutes)</h2><table>{plan}</table>"
        f"<h2>At each picture</h2>{pictures}<h2>Exercises and the mistakes people make</h2>"
        f"{exercises}</body></html>\n"
    )
