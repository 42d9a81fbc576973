"""scripts/benchmark_labs.py's table: what each lab holds beside how long it ran."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from workshop_labs import course
from workshop_labs.notebooks import build_notebook, exercise_cells, lab_sources, sections

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_labs.py"
spec = importlib.util.spec_from_file_location("benchmark_labs", SCRIPT)
benchmark_labs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark_labs)


def test_the_table_counts_each_labs_sections_and_exercises_and_its_share_of_minutes():
    sources = lab_sources()
    times = {(s.name, mode): (60.0, "ok") for s in sources for mode in ("quick", "full")}
    times[(sources[1].name, "full")] = (0.0, "FAILED")
    header, *rows = benchmark_labs.lab_table(sources, ["quick", "full"], times).splitlines()
    assert header.split()[:4] == ["lab", "sections", "exercises", "minutes"]
    assert len(rows) == 7
    for source, row in zip(sources, rows, strict=True):
        nb = build_notebook(source)
        minutes = course.MINUTES_IN_THE_DAY[int(source.name[:2])]
        name, n_sections, n_exercises, n_minutes, quick, *rest = row.split()
        assert name == source.name
        assert int(n_sections) == len(sections(nb))
        assert int(n_exercises) == len(exercise_cells(nb.cells))
        assert int(n_minutes) == minutes
        assert quick == "60.0"
        if source == sources[1]:
            assert "FAILED" in rest
        else:
            assert rest[-1] == f"{60 / (minutes * 60):.1%}"
