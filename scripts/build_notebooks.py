"""Build every lab source into an output-free notebook.

Used at image build time and by organizers:

    python scripts/build_notebooks.py OUTDIR [--labs-dir labs] [--with-solutions]
    python scripts/build_notebooks.py --solutions-catalog FILE [--labs-dir labs]

By default it builds the attendee edition, where each solution is a cell that shows it once
the instructor reveals it; --with-solutions builds the instructor's edition. The catalog is
the JSON of every solution that the hub's console reveals (built into the hub's image).

Needs only jupytext, nbformat and the workshop_labs package (no kernel, no torch run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

from workshop_labs.notebooks import (
    attendee_edition,
    build_notebook,
    lab_sources,
    solutions_catalog,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "outdir", type=Path, nargs="?", help="folder to write the .ipynb files into"
    )
    parser.add_argument(
        "--labs-dir", type=Path, default=REPO_ROOT / "labs", help="folder with 0*_*.py sources"
    )
    parser.add_argument(
        "--with-solutions", action="store_true", help="the instructor's edition, solutions in"
    )
    parser.add_argument(
        "--solutions-catalog", type=Path, metavar="FILE", help="write every solution as JSON"
    )
    args = parser.parse_args(argv)
    if (args.outdir is None) == (args.solutions_catalog is None):
        parser.error("give either OUTDIR (notebooks) or --solutions-catalog FILE")
    sources = lab_sources(args.labs_dir)
    if not sources:
        print(f"error: no lab sources (0*_*.py) in {args.labs_dir}", file=sys.stderr)
        return 1
    try:
        if args.solutions_catalog is not None:
            return write_catalog(sources, args.solutions_catalog)
        return write_notebooks(sources, args.outdir, args.with_solutions)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def write_catalog(sources: list[Path], target: Path) -> int:
    catalog = solutions_catalog(sources)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(catalog, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    count = sum(len(solutions) for solutions in catalog.values())
    print(f"wrote {count} solutions of {len(catalog)} labs into {target}")
    return 0


def write_notebooks(sources: list[Path], outdir: Path, with_solutions: bool) -> int:
    outdir.mkdir(parents=True, exist_ok=True)
    for number, source in enumerate(sources, start=1):
        nb = build_notebook(source)
        if not with_solutions:
            nb = attendee_edition(nb)
        target = outdir / f"{source.stem}.ipynb"
        nbformat.write(nb, target)
        print(f"[{number}/{len(sources)}] {source.name} → {target} ({len(nb.cells)} cells)")
    edition = "instructor's edition, with solutions" if with_solutions else "attendee edition"
    print(f"built {len(sources)} notebooks ({edition}) into {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
