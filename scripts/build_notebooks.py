"""Build every lab source into an output-free notebook.

Used at image build time and by organizers:

    python scripts/build_notebooks.py OUTDIR [--labs-dir labs]

Needs only jupytext, nbformat and the workshop_labs package (no kernel, no torch run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from workshop_labs.notebooks import build_notebook, lab_sources

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="folder to write the .ipynb files into")
    parser.add_argument(
        "--labs-dir", type=Path, default=REPO_ROOT / "labs", help="folder with 0*_*.py sources"
    )
    args = parser.parse_args(argv)
    sources = lab_sources(args.labs_dir)
    if not sources:
        print(f"error: no lab sources (0*_*.py) in {args.labs_dir}", file=sys.stderr)
        return 1
    args.outdir.mkdir(parents=True, exist_ok=True)
    for number, source in enumerate(sources, start=1):
        try:
            nb = build_notebook(source)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        target = args.outdir / f"{source.stem}.ipynb"
        nbformat.write(nb, target)
        print(f"[{number}/{len(sources)}] {source.name} → {target} ({len(nb.cells)} cells)")
    print(f"built {len(sources)} notebooks into {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
