"""The README stays a short front page, every manual under docs/ is reachable from it, and no
relative link in the documentation points at a file or heading that is not there."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, ROOT / "labs" / "README.md", ROOT / "labs" / "START_HERE.md"]

FENCE = re.compile(r"^ *(```|~~~).*?^ *\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")
HEADING = re.compile(r"^#{1,6} +(.+?)(?: +#+)? *$", re.MULTILINE)


def prose(path: Path) -> str:
    """The page's text without fenced code blocks, where `#` lines and links are code."""
    return FENCE.sub("", path.read_text())


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped (hyphens and underscores
    kept), each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; GitHub numbers a repeated one -1, -2, ..."""
    counts: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(path)):
        base = slug(heading)
        count = counts.get(base, 0)
        counts[base] = count + 1
        found.add(f"{base}-{count}" if count else base)
    return found


def relative_links(path: Path) -> list[str]:
    """The page's links to files of this repository (external addresses left out)."""
    targets = LINK.findall(INLINE_CODE.sub("", prose(path)))
    return [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def resolve(page: Path, target: str) -> tuple[Path, str]:
    file, _, anchor = target.partition("#")
    return ((page.parent / file).resolve() if file else page), anchor


def exists(path: Path) -> bool:
    # START_HERE.md lies beside the lab notebooks, which the image builds from the .py sources.
    return path.exists() or (path.suffix == ".ipynb" and path.with_suffix(".py").exists())


def broken(page: Path, target: str) -> bool:
    path, anchor = resolve(page, target)
    if not exists(path):
        return True
    return bool(anchor) and (path.suffix != ".md" or anchor not in anchors(path))


def test_the_readme_is_short():
    assert len(README.read_text().splitlines()) <= 150


def test_the_readme_links_every_docs_page():
    linked = {resolve(README, target)[0] for target in relative_links(README)}
    assert DOCS
    assert not [page.name for page in DOCS if page not in linked]


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.name)
def test_every_docs_page_links_back_to_the_readme(page):
    assert README in {resolve(page, target)[0] for target in relative_links(page)}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert not [target for target in relative_links(page) if broken(page, target)]


def test_anchors_follow_githubs_rule(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# HTTPS for a hosted hub\n## The instructor's guide\n## `nn.Module` · layers (2)\n"
        "## Stop — and: reset\n## Notes\n## Notes\n```sh\n# not a heading\n```\n"
    )
    assert anchors(page) == {
        "https-for-a-hosted-hub",
        "the-instructors-guide",
        "nnmodule--layers-2",
        "stop--and-reset",
        "notes",
        "notes-1",
    }
