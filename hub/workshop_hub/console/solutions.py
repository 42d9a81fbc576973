"""Solutions the instructor reveals, per exercise or per lab, from the console.

Attendees' notebooks hold no solutions (the lab image builds the attendee edition): each
solution cell there asks the console for it (workshop_labs/solutions.py). The hub's image
holds every solution in a catalog built from the lab sources at image build time
(scripts/build_notebooks.py --solutions-catalog); which ones are revealed is kept on the
hub-data volume, so a reveal outlives a hub restart.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..access.credentials import HUB_DATA_DIR, write_atomically
from .progress import is_lab_number

SOLUTIONS_CATALOG = Path("/opt/workshop/solutions.json")
REVEALED_FILE = HUB_DATA_DIR / "solutions-revealed.json"

log = logging.getLogger("workshop.console")


class UnknownExercise(LookupError):
    """No solution of that lab and exercise is in the catalog; the message says which."""


def load_catalog(path: Path) -> dict[int, dict[str, str]]:
    """lab -> {exercise: the solution's markdown}, in the labs' order; empty (with a warning
    in the log) when the image has no catalog, so the rest of the console still works."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        log.warning("no solutions to reveal: cannot read %s (%s)", path, error)
        return {}
    return {
        int(lab): {entry["exercise"]: entry["markdown"] for entry in entries}
        for lab, entries in stored.items()
    }


class Solutions:
    def __init__(self, catalog: dict[int, dict[str, str]], revealed_path: Path = REVEALED_FILE):
        self.catalog = catalog
        self.revealed_path = revealed_path
        self._revealed = self._load()

    def _load(self) -> set[tuple[int, str]]:
        try:
            stored = json.loads(self.revealed_path.read_text())
        except FileNotFoundError:
            return set()
        except (OSError, ValueError):
            log.warning("%s is damaged: every solution is hidden again", self.revealed_path)
            return set()
        return {
            (lab, exercise)
            for lab, exercise in (stored if isinstance(stored, list) else [])
            if exercise in self.catalog.get(lab, {})
        }

    def _save(self) -> None:
        write_atomically(self.revealed_path, json.dumps(sorted(self._revealed)))

    def _exercises(self, lab: object, exercise: object = None) -> list[str]:
        """The exercises named: one, or all of the lab when `exercise` is None."""
        if not is_lab_number(lab) or lab not in self.catalog:
            raise UnknownExercise(f"no lab {lab!r} has solutions: labs {sorted(self.catalog)}")
        if exercise is None:
            return list(self.catalog[lab])
        if not isinstance(exercise, str) or exercise not in self.catalog[lab]:
            raise UnknownExercise(
                f"lab {lab} has no exercise {exercise!r}: it has {', '.join(self.catalog[lab])}"
            )
        return [exercise]

    def answer(self, lab: int, exercise: str) -> dict:
        """What an attendee's solution cell gets: the solution only once it is revealed."""
        self._exercises(lab, exercise)
        answer = {"lab": lab, "exercise": exercise, "revealed": (lab, exercise) in self._revealed}
        if answer["revealed"]:
            answer["markdown"] = self.catalog[lab][exercise]
        return answer

    def reveal(self, lab: object, exercise: object = None, revealed: bool = True) -> list[str]:
        """Reveal (or hide again) one exercise's solution, or all of a lab's; returns the
        exercises whose state changed."""
        changed = []
        for name in self._exercises(lab, exercise):
            if ((lab, name) in self._revealed) != revealed:
                changed.append(name)
                (self._revealed.add if revealed else self._revealed.discard)((lab, name))
        if changed:
            self._save()
        return changed

    def overview(self) -> list[dict]:
        """Per lab, its exercises in order and whether each solution is revealed."""
        return [
            {
                "lab": lab,
                "exercises": [
                    {"exercise": name, "revealed": (lab, name) in self._revealed}
                    for name in exercises
                ],
            }
            for lab, exercises in sorted(self.catalog.items())
        ]
