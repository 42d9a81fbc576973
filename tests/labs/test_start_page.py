"""The start page attendees land on in JupyterLab (labs/START_HERE.md) links every lab, in
order, each under the title its notebook opens with."""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

from workshop_labs.notebooks import build_notebook, lab_sources

LABS_DIR = Path(__file__).resolve().parents[2] / "labs"
START_PAGE = LABS_DIR / "START_HERE.md"


def links(markdown: str) -> list[tuple[str, str]]:
    """(target, text) of every link, the text as Markdown source (`code` keeps its ticks)."""
    found = []
    for block in MarkdownIt().parse(markdown):
        pieces, target = [], None
        for token in block.children or []:
            if token.type == "link_open":
                pieces, target = [], token.attrs["href"]
            elif token.type == "link_close":
                found.append((target, "".join(pieces)))
                target = None
            elif target is not None:
                code = token.type == "code_inline"
                pieces.append(f"`{token.content}`" if code else token.content)
    return found


def heading(source: Path) -> str:
    """The title a lab's notebook opens with, e.g. "Lab 1 · Intro to PyTorch"."""
    first_cell = build_notebook(source).cells[0]
    return first_cell.source.splitlines()[0].removeprefix("# ")


def test_the_start_page_links_every_lab_in_order_under_its_title():
    sources = lab_sources(LABS_DIR)
    assert len(sources) == 7
    expected = [(f"{source.stem}.ipynb", heading(source)) for source in sources]
    assert links(START_PAGE.read_text(encoding="utf-8")) == expected
