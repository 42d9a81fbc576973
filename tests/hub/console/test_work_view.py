"""The instructor's view of an attendee's notebooks, attacked as an attendee would: every page
is parsed, and no tag, attribute or address on it may do anything but show text and images."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import tarfile
import uuid
from html.parser import HTMLParser
from http import HTTPStatus
from urllib.parse import quote

import docker
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from workshop_hub.console import work_view
from workshop_hub.console.work_view import Listing, Notebook, WorkUnavailable
from workshop_hub.room.profiles import LABEL_USER, WORK_DIR
from workshop_hub.settings import COMPOSE_SETTINGS

SCRIPT = "<script>alert(document.cookie)</script>"
PAYLOADS = [
    SCRIPT,
    "</pre><script>alert(1)</script>",
    '"><img src=x onerror="alert(1)">',
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "<a href='javascript:alert(1)'>click</a>",
    "<svg onload=alert(1)>",
    "</title><script>alert(1)</script>",
    "</style><script>alert(1)</script>",
    "<!-- --><script>alert(1)</script>",
    "<meta http-equiv=refresh content='0;url=https://evil.example/'>",
]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256))
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256))

# The page's own markup: these tags, each with these attributes, and nothing else.
ALLOWED_ATTRIBUTES = {
    "html": {"lang"},
    "head": set(),
    "meta": {"charset"},
    "title": set(),
    "style": set(),
    "body": set(),
    "h1": set(),
    "p": {"class"},
    "pre": {"class"},
    "section": {"class", "id"},  # id="failing": the link from the help queue lands there
    "table": set(),
    "tr": set(),
    "th": set(),
    "td": set(),
    "a": {"href"},
    "img": {"alt", "src"},
}
SAFE_IMAGE_SOURCE = re.compile(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/]+={0,2}")
# A path relative to the page: no scheme (no ":"), no host ("//"), not from the root ("/").
RELATIVE_LINK = re.compile(r"[A-Za-z0-9%._~-][A-Za-z0-9%._~/-]*")


class PageParts(HTMLParser):
    """Every tag, attribute and piece of text of a page, as a browser's tokenizer sees them."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self.oddities: list[str] = []
        self._in_style = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)

    def handle_comment(self, data):
        self.oddities.append(f"comment {data!r}")

    def handle_pi(self, data):
        self.oddities.append(f"processing instruction {data!r}")

    def handle_decl(self, decl):
        if decl != "DOCTYPE html":
            self.oddities.append(f"declaration {decl!r}")

    def unknown_decl(self, data):
        self.oddities.append(f"declaration {data!r}")


def assert_inert(page: str) -> str:
    """Fails unless the page can only show text and data: images; returns its text."""
    parts = PageParts(page)
    assert not parts.oddities, parts.oddities
    for tag, attributes in parts.tags:
        assert tag in ALLOWED_ATTRIBUTES, f"a <{tag}> on the page"
        assert set(attributes) <= ALLOWED_ATTRIBUTES[tag], f"<{tag} {attributes}>"
        if tag == "img":
            assert SAFE_IMAGE_SOURCE.fullmatch(attributes["src"] or ""), attributes
        if tag == "a":
            assert RELATIVE_LINK.fullmatch(attributes["href"] or ""), attributes
    assert [tag for tag, _ in parts.tags].count("style") == 1
    assert parts.styles == [work_view.STYLE], "the page's style holds something of the notebook"
    return "".join(parts.text)


def image_sources(page: str) -> list[str]:
    return [attributes["src"] for tag, attributes in PageParts(page).tags if tag == "img"]


def notebook(*cells: object, **fields: object) -> bytes:
    return json.dumps(
        {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells), **fields}
    ).encode()


def code(source: object = "x", *outputs: object, **fields: object) -> dict:
    return {
        "cell_type": "code",
        "execution_count": 1,
        "source": source,
        "outputs": list(outputs),
        "metadata": {},
        **fields,
    }


def display(data: dict, output_type: str = "display_data") -> dict:
    return {"output_type": output_type, "data": data, "metadata": {}}


def rendered_text(*cells: object) -> str:
    return assert_inert(work_view.render_notebook(notebook(*cells), "lab"))


# --- the checker itself catches what it is there for ------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        f"<p>{SCRIPT}</p>",
        "<pre></pre><script>alert(1)</script><pre></pre>",
        '<img alt="" src="x" onerror="alert(1)">',
        '<img alt="" src="https://evil.example/x.png">',
        '<img alt="" src="data:text/html;base64,PHNjcmlwdD4=">',
        '<img alt="" src="data:image/svg+xml;base64,PHNjcmlwdD4=">',
        '<a href="javascript:alert(1)">x</a>',
        '<a href="//evil.example/">x</a>',
        '<a href="/hub/admin">x</a>',
        "<svg><circle/></svg>",
        '<iframe src="data:text/html,x"></iframe>',
        "<p style='background:url(https://evil.example)'>x</p>",
        "<meta http-equiv='refresh' content='0;url=https://evil.example/'>",
        "<!-- a hidden note -->",
    ],
)
def test_the_checker_refuses_markup_that_can_act(page):
    wrapped = f"<html><head><style>{work_view.STYLE}</style></head><body>{page}</body></html>"
    with pytest.raises(AssertionError):
        assert_inert(wrapped)


def test_a_notebook_page_links_to_itself_to_be_read_again():
    page = work_view.render_notebook(
        notebook(code("x = 1")), "ada: labs/lab 1.ipynb", "../", None, "lab%201.ipynb"
    )
    assert_inert(page)
    links = [a["href"] for tag, a in PageParts(page).tags if tag == "a"]
    assert links == ["../", "lab%201.ipynb"]
    assert "Read it again" in page and "As saved at" in page
    # No refresh of its own: the sandbox would refuse it, and a listing stays still.
    assert "refresh" not in page.lower()
    assert "Read it again" not in work_view.render_listing("ada", Listing(()))


def test_the_checker_refuses_a_notebooks_text_in_the_style():
    with pytest.raises(AssertionError, match="style"):
        assert_inert(f"<style>{work_view.STYLE}</style><style>x</style>")


# --- rendering a notebook ---------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_string_of_a_hostile_notebook_is_shown_as_text(payload):
    hostile_cells = [
        {
            "cell_type": "markdown",
            "source": [payload],
            "id": payload,
            "metadata": {payload: payload},
        },
        {"cell_type": "raw", "source": payload, "attachments": {payload: {"text/html": payload}}},
        code(
            payload,
            {"output_type": "stream", "name": "stdout", "text": [payload]},
            {"output_type": "stream", "name": payload, "text": payload},
            display({"text/plain": payload}, "execute_result"),
            {"output_type": "error", "ename": payload, "evalue": payload, "traceback": [payload]},
            {"output_type": "error", "ename": payload, "evalue": payload},
            {"output_type": payload},
            display({payload: payload}),
            id=payload,
            execution_count=payload,
        ),
        {"cell_type": payload, "source": payload},
    ]
    raw = notebook(*hostile_cells, metadata={payload: payload, "title": payload})
    page = work_view.render_notebook(raw, payload)
    text = assert_inert(page)
    # Shown, not dropped: the attendee's text is on the page as text.
    assert payload in text
    assert text.count(payload) >= 8


@pytest.mark.parametrize(
    ("mime", "named"),
    [
        ("text/html", "an HTML output"),
        ("image/svg+xml", "an SVG image"),
        ("application/javascript", "a JavaScript output"),
        ("application/vnd.jupyter.widget-view+json", "a widget"),
        ("text/markdown", "a text/markdown output"),
        ("application/pdf", "a application/pdf output"),
    ],
)
def test_html_svg_script_and_widget_outputs_are_named_never_rendered(mime, named):
    body = (
        "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><script>alert(2)</script></svg>"
    )
    text = rendered_text(code("show()", display({mime: body})))
    assert f"({named}, not shown)" in text
    assert "alert" not in text


def test_a_rich_output_with_a_plain_text_form_shows_that_text():
    text = rendered_text(
        code("df", display({"text/html": SCRIPT, "text/plain": "   a  b\n0  1  2"}))
    )
    assert "   a  b\n0  1  2" in text
    assert "alert" not in text


@pytest.mark.parametrize(("mime", "image"), [("image/png", PNG), ("image/jpeg", JPEG)])
def test_a_real_image_is_shown_as_a_data_url_of_its_base64(mime, image):
    encoded = base64.b64encode(image).decode()
    # Notebook writers may wrap base64 in lines, and give it as a list of strings.
    wrapped = [encoded[:40] + "\n", encoded[40:] + "\n"]
    page = work_view.render_notebook(
        notebook(code("plot()", display({mime: wrapped, "text/plain": "<Figure>"}))), "lab"
    )
    assert_inert(page)
    assert image_sources(page) == [f"data:{mime};base64,{encoded}"]


@pytest.mark.parametrize(
    "fake_image",
    [
        base64.b64encode(b"<html><script>alert(1)</script></html>").decode(),
        base64.b64encode(b"<svg onload=alert(1)>").decode(),
        base64.b64encode(PNG).decode() + '" onerror="alert(1)',
        base64.b64encode(PNG).decode() + "'><script>alert(1)</script>",
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
        base64.b64encode(PNG).decode()[:-3],  # not a whole base64 text
        base64.b64encode(PNG).decode().replace("A", "-"),  # base64url, not base64
        base64.b64encode(JPEG).decode(),  # a JPEG given as a PNG
        base64.b64encode(PNG + bytes(work_view.MAX_IMAGE_BYTES)).decode(),
        ["iVBORw0KGgo", 5],
        {"src": "javascript:alert(1)"},
        "",
    ],
)
def test_an_image_that_is_not_strictly_a_png_is_not_shown(fake_image):
    page = work_view.render_notebook(
        notebook(code("plot()", display({"image/png": fake_image}))), "lab"
    )
    text = assert_inert(page)
    assert image_sources(page) == []
    assert "(an image that is not a valid image/png, not shown)" in text


def test_an_exercise_checks_verdict_and_a_traceback_are_text_without_terminal_colours():
    verdict = {
        "output_type": "stream",
        "name": "stdout",
        "text": "\x1b[31m✗ the loss did not go down\x1b[0m\n",
    }
    error = {
        "output_type": "error",
        "ename": "ZeroDivisionError",
        "evalue": "division by zero",
        "traceback": [
            "\x1b[0;31m---------\x1b[0m",
            "\x1b]0;title\x07\x1b[1;31mZeroDivisionError\x1b[0m: division by zero",
        ],
    }
    text = rendered_text(code("check()", verdict, error))
    assert "✗ the loss did not go down\n" in text
    assert "---------\nZeroDivisionError: division by zero" in text
    assert "\x1b" not in text


@pytest.mark.parametrize(
    ("count", "prompt"),
    [(3, "In [3]"), (None, "In [ ]"), (True, "In [ ]"), ("<script>", "In [ ]"), (2.5, "In [ ]")],
)
def test_cells_are_numbered_with_their_execution_count(count, prompt):
    text = rendered_text(
        {"cell_type": "markdown", "source": "# Lab"}, code("x = 1", execution_count=count)
    )
    assert "Cell 1 · markdown" in text
    assert f"Cell 2 · code · {prompt}" in text


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{", "it is not JSON"),
        (b"", "it is not JSON"),
        (b"\xff\xfe<script>", "it is not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "it is not JSON"),
        (b'{"cells": [{"execution_count": ' + b"9" * 5000 + b"}]}", "it is not JSON"),
        (b"[1, 2]", "it is not a JSON object"),
        (b'"<script>alert(1)</script>"', "it is not a JSON object"),
        (b'{"cells": "<script>alert(1)</script>"}', "it has no list of cells"),
        (b'{"nbformat": 3, "worksheets": [{"cells": []}]}', "it has no list of cells"),
    ],
)
def test_a_file_that_is_not_a_notebook_gives_a_message_page(raw, problem):
    text = assert_inert(work_view.render_notebook(raw, "labs/01.ipynb"))
    assert f"This file cannot be shown: {problem}" in text


def test_cells_and_outputs_of_the_wrong_shape_are_named_and_the_rest_shown():
    text = rendered_text(
        1,
        "<script>alert(1)</script>",
        None,
        {"cell_type": "code", "source": ["a", 1], "outputs": "<script>"},
        code(
            "fine",
            7,
            {"output_type": "stream", "text": {"a": 1}},
            {"output_type": "execute_result", "data": "<script>"},
            {"output_type": "display_data", "data": {}},
        ),
    )
    assert "Cell 1 is not a cell object: not shown." in text
    assert "Cell 2 is not a cell object: not shown." in text
    assert "(source not readable)" in text
    assert "fine" in text
    assert "(an output that is not an object, not shown)" in text
    assert "(unreadable output)" in text
    assert "(an empty output)" in text
    assert "alert" not in text


def test_lone_surrogates_from_json_escapes_still_give_a_page_in_utf8():
    raw = b'{"cells": [{"cell_type": "code", "source": "a\\ud800b", "outputs": []}]}'
    page = work_view.render_notebook(raw, "lab\udcff")
    page.encode("utf-8")
    assert "a?b" in assert_inert(page)


def test_long_texts_and_many_outputs_and_cells_are_cut_and_say_so():
    long_output = {
        "output_type": "stream",
        "name": "stdout",
        "text": "y" * (work_view.MAX_TEXT_CHARS + 10),
    }
    many_outputs = [{"output_type": "stream", "text": "o"}] * (work_view.MAX_OUTPUTS_SHOWN + 2)
    cells = [code("x", long_output), code("x", *many_outputs)] + [
        code("z")
    ] * work_view.MAX_CELLS_SHOWN
    text = rendered_text(*cells)
    assert "(10 more characters not shown)" in text
    assert "(2 more outputs not shown)" in text
    assert "2 more cells not shown." in text
    assert f"Cell {work_view.MAX_CELLS_SHOWN} · code" in text
    assert f"Cell {work_view.MAX_CELLS_SHOWN + 1} · code" not in text


def test_a_page_stops_showing_content_when_it_holds_enough(monkeypatch):
    monkeypatch.setattr(work_view, "PAGE_MAX_CHARS", 1000)
    image = display({"image/png": base64.b64encode(PNG).decode()})
    page = work_view.render_notebook(
        notebook(code("a" * 600), code("b" * 600), code("c", image)), "lab"
    )
    text = assert_inert(page)
    assert "(200 more characters not shown)" in text
    assert "(not shown: this page already shows all it can hold)" in text
    assert "(an image, not shown: this page already shows all it can hold)" in text
    assert image_sources(page) == []


JSON_KEYS = [
    "cells", "cell_type", "source", "outputs", "output_type", "data", "text", "name",
    "traceback", "ename", "evalue", "execution_count", "image/png", "image/jpeg",
    "text/plain", "text/html", "metadata", "id",
]  # fmt: skip
JSON_WORDS = ["code", "markdown", "stream", "error", "display_data", "execute_result", "stderr"]
hostile_text = st.sampled_from(PAYLOADS + JSON_WORDS + [base64.b64encode(PNG).decode()]) | st.text(
    max_size=20
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(JSON_KEYS) | hostile_text, inner, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"cells": st.lists(json_values, max_size=6)}) | json_values)
def test_no_json_whatsoever_makes_the_renderer_fail_or_emit_markup(document):
    assert_inert(work_view.render_notebook(json.dumps(document).encode(), "lab"))


# --- the listing page ---------------------------------------------------------------------


def test_the_listing_shows_names_as_text_and_links_them_relative_to_the_page():
    names = [
        '"><script>alert(1)</script>.ipynb',
        "javascript:alert(1).ipynb",
        "labs/a b#?&.ipynb",
        "<img src=x onerror=alert(1)>/x.ipynb",
    ]
    listing = Listing(tuple(Notebook(name, 2048, 1_700_000_000.0) for name in names))
    page = work_view.render_listing("<b>ada</b>", listing)
    text = assert_inert(page)
    hrefs = [attributes["href"] for tag, attributes in PageParts(page).tags if tag == "a"]
    assert hrefs == [quote(name) for name in names]
    assert all(name in text for name in names)
    assert "<b>ada</b>'s notebooks" in text
    assert "2.0 KiB" in text and "2023-11-14 22:13" in text


def test_an_empty_or_cut_short_listing_says_so():
    empty = assert_inert(work_view.render_listing("ada", Listing(())))
    assert "ada has no notebooks in their work folder" in empty
    cut = assert_inert(work_view.render_listing("ada", Listing((), "only <the> first 3")))
    assert "Listing cut short: only <the> first 3." in cut


# --- the tar readers ----------------------------------------------------------------------


def member(name: str, content: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mtime = kind, len(content), link, 1_700_000_000
    return info, content


def tar_bytes(*members: tuple) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in members:
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def in_chunks(data: bytes, size: int = work_view.ARCHIVE_CHUNK_BYTES) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


class CountedStream:
    """`head`, then `length` zero bytes made as they are pulled, in Docker's chunk size;
    `pulled` counts what the reader took."""

    def __init__(self, head: bytes, length: int):
        self.head, self.length, self.pulled = head, length, 0

    def __iter__(self):
        self.pulled += len(self.head)
        yield self.head
        zeros = bytes(work_view.ARCHIVE_CHUNK_BYTES)
        for _ in range(0, self.length, len(zeros)):
            self.pulled += len(zeros)
            yield zeros


def header_of(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(format=tarfile.PAX_FORMAT)


ROOT = WORK_DIR.rsplit("/", 1)[1]


def test_the_listing_holds_only_visible_regular_notebooks():
    archive = tar_bytes(
        member(f"{ROOT}/labs", kind=tarfile.DIRTYPE),
        member(f"{ROOT}/labs/01_intro.ipynb", b"{}" * 10),
        member(f"{ROOT}/labs/notes.txt", b"x"),
        member(f"{ROOT}/labs/.ipynb_checkpoints/01_intro-checkpoint.ipynb", b"{}"),
        member(f"{ROOT}/.hidden/secret.ipynb", b"{}"),
        member(f"{ROOT}/link.ipynb", kind=tarfile.SYMTYPE, link="/etc/shadow"),
        member(f"{ROOT}/hard.ipynb", kind=tarfile.LNKTYPE, link=f"{ROOT}/labs/01_intro.ipynb"),
        member(f"{ROOT}/tty.ipynb", kind=tarfile.CHRTYPE),
        member(f"{ROOT}/disk.ipynb", kind=tarfile.BLKTYPE),
        member(f"{ROOT}/pipe.ipynb", kind=tarfile.FIFOTYPE),
        member(f"{ROOT}/folder.ipynb", kind=tarfile.DIRTYPE),
        member(f"{ROOT}/../escape.ipynb", b"{}"),
        member(f"{ROOT}/a/../../escape.ipynb", b"{}"),
        member("/etc/absolute.ipynb", b"{}"),
        member("elsewhere/x.ipynb", b"{}"),
        member(f"{ROOT}/{'d/' * (work_view.MAX_FOLDER_DEPTH + 1)}deep.ipynb", b"{}"),
        member(f"{ROOT}/{'d/' * work_view.MAX_FOLDER_DEPTH}deep.ipynb", b"{}"),
        member(f"{ROOT}/new\nline.ipynb", b"{}"),
        member(f"{ROOT}/<script>.ipynb", b"{}"),
    )
    listing = work_view.notebooks_in_archive(in_chunks(archive))
    assert listing == Listing(
        (
            Notebook("<script>.ipynb", 2, 1_700_000_000.0),
            Notebook(f"{'d/' * work_view.MAX_FOLDER_DEPTH}deep.ipynb", 2, 1_700_000_000.0),
            Notebook("labs/01_intro.ipynb", 20, 1_700_000_000.0),
        )
    )


def test_the_listing_skips_contents_and_stops_at_its_byte_budget(monkeypatch):
    monkeypatch.setattr(work_view, "LISTING_MAX_BYTES", 4 * work_view.MiB)
    big = tarfile.TarInfo(f"{ROOT}/data.bin")
    big.size = 1024**3
    stream = CountedStream(header_of(big), big.size)
    listing = work_view.notebooks_in_archive(stream)
    assert listing.notebooks == ()
    assert "more than 4 MiB" in listing.cut_short
    assert stream.pulled <= 4 * work_view.MiB + work_view.ARCHIVE_CHUNK_BYTES


def test_the_listing_stops_at_its_notebook_and_entry_counts(monkeypatch):
    archive = tar_bytes(*(member(f"{ROOT}/n{number:02}.ipynb", b"{}") for number in range(10)))
    monkeypatch.setattr(work_view, "LISTING_MAX_NOTEBOOKS", 3)
    by_notebooks = work_view.notebooks_in_archive(in_chunks(archive))
    assert [notebook.path for notebook in by_notebooks.notebooks] == [
        "n00.ipynb",
        "n01.ipynb",
        "n02.ipynb",
    ]
    assert by_notebooks.cut_short == "only the first 3 notebooks are listed"
    monkeypatch.setattr(work_view, "LISTING_MAX_ENTRIES", 2)
    by_entries = work_view.notebooks_in_archive(in_chunks(archive))
    assert len(by_entries.notebooks) == 2
    assert by_entries.cut_short == "the work folder holds more than 2 files"


@pytest.mark.parametrize(
    ("broken", "listed"),
    [
        (b"not a tar at all" * 100, ()),
        # Cut inside a notebook's content: what came before it is listed.
        (tar_bytes(member(f"{ROOT}/a.ipynb", b"{}" * 500))[:1100], ("a.ipynb",)),
    ],
)
def test_a_broken_listing_archive_lists_what_came_before_and_says_so(broken, listed):
    listing = work_view.notebooks_in_archive(in_chunks(broken))
    assert tuple(notebook.path for notebook in listing.notebooks) == listed
    assert "the work folder's archive ended early" in listing.cut_short


def test_a_notebook_is_read_from_its_archive():
    raw = notebook(code("print('hi')"))
    assert (
        work_view.notebook_from_archive(in_chunks(tar_bytes(member("01.ipynb", raw))), "01.ipynb")
        == raw
    )


@pytest.mark.parametrize(
    "kind",
    [
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.CHRTYPE,
        tarfile.BLKTYPE,
        tarfile.FIFOTYPE,
        tarfile.DIRTYPE,
    ],
)
def test_a_link_device_pipe_or_folder_is_never_read(kind):
    archive = tar_bytes(member("01.ipynb", kind=kind, link="/etc/shadow"))
    with pytest.raises(WorkUnavailable, match="'01.ipynb' is not a regular file") as refused:
        work_view.notebook_from_archive(in_chunks(archive), "01.ipynb")
    assert refused.value.status == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize("name", ["../01.ipynb", "other.ipynb", "/01.ipynb"])
def test_an_archive_that_holds_another_file_is_refused(name):
    with pytest.raises(WorkUnavailable, match="holds something else"):
        work_view.notebook_from_archive(in_chunks(tar_bytes(member(name, b"{}"))), "01.ipynb")


def test_a_100_mb_notebook_is_refused_after_its_header_without_reading_it():
    huge = tarfile.TarInfo("huge.ipynb")
    huge.size = 100 * work_view.MiB
    stream = CountedStream(header_of(huge), huge.size)
    with pytest.raises(WorkUnavailable, match="larger than 20 MiB, too large to show"):
        work_view.notebook_from_archive(stream, "huge.ipynb")
    assert stream.pulled <= work_view.ARCHIVE_CHUNK_BYTES + len(stream.head)


def test_an_archive_whose_header_never_ends_is_cut_at_the_cap():
    # A PAX header that claims 100 MB of records: tarfile would read them all into memory.
    records = tarfile.TarInfo("././@PaxHeader")
    records.type, records.size = tarfile.XHDTYPE, 100 * work_view.MiB
    stream = CountedStream(records.tobuf(format=tarfile.USTAR_FORMAT), records.size)
    with pytest.raises(WorkUnavailable, match="too large to show"):
        work_view.notebook_from_archive(stream, "huge.ipynb")
    cap = work_view.NOTEBOOK_MAX_BYTES + work_view.ARCHIVE_HEADER_BYTES
    assert stream.pulled <= cap + work_view.ARCHIVE_CHUNK_BYTES


def test_a_truncated_notebook_archive_is_a_message():
    archive = tar_bytes(member("01.ipynb", b"{}" * 5000))[:3000]
    with pytest.raises(WorkUnavailable, match="could not be read") as refused:
        work_view.notebook_from_archive(in_chunks(archive), "01.ipynb")
    assert refused.value.status == HTTPStatus.BAD_GATEWAY


# --- the page for a request, with Docker stood in for ---------------------------------------


class FakeDocker:
    """Docker's archive API over in-memory tars by path, or failing with `error`."""

    def __init__(self, archives: dict[str, bytes] | None = None, error: Exception | None = None):
        self.archives, self.error, self.asked = archives or {}, error, []

    def get_archive(self, container_id: str, path: str, chunk_size: int):
        self.asked.append((container_id, path))
        if self.error:
            raise self.error
        return in_chunks(self.archives[path], chunk_size), {"name": path.rsplit("/", 1)[1]}


def attendee_container(name: str, state: str = "running", container_id: str = "c-ada") -> dict:
    return {"Id": container_id, "State": state, "Labels": {LABEL_USER: name}}


ROOM = [attendee_container("bob", container_id="c-bob"), attendee_container("ada")]


def test_a_notebook_page_comes_from_the_attendees_own_running_container():
    raw = notebook(code(SCRIPT, {"output_type": "stream", "text": "✓ done"}))
    docker_api = FakeDocker({f"{WORK_DIR}/labs/01.ipynb": tar_bytes(member("01.ipynb", raw))})
    page = work_view.work_page(docker_api, ROOM, "ada", "labs/01.ipynb")
    assert page.status == HTTPStatus.OK
    assert docker_api.asked == [("c-ada", f"{WORK_DIR}/labs/01.ipynb")]
    text = assert_inert(page.html)
    assert "ada: labs/01.ipynb" in text and SCRIPT in text and "✓ done" in text
    links = [attributes["href"] for tag, attributes in PageParts(page.html).tags if tag == "a"]
    assert links == ["../", "01.ipynb"]  # the listing, and this page to read it again


def test_a_notebooks_stamp_changes_with_each_save_and_is_none_when_unreadable():
    path = f"{WORK_DIR}/labs/01.ipynb"
    first = work_view.notebook_stamp(
        FakeDocker({path: tar_bytes(member("01.ipynb", notebook(code("x = 1"))))}),
        ROOM,
        "ada",
        "labs/01.ipynb",
    )
    again = work_view.notebook_stamp(
        FakeDocker({path: tar_bytes(member("01.ipynb", notebook(code("x = 1"))))}),
        ROOM,
        "ada",
        "labs/01.ipynb",
    )
    saved = work_view.notebook_stamp(
        FakeDocker({path: tar_bytes(member("01.ipynb", notebook(code("x = 2"))))}),
        ROOM,
        "ada",
        "labs/01.ipynb",
    )
    assert first == again != saved and len(first) == 16
    assert work_view.notebook_stamp(FakeDocker({}), ROOM, "zoe", "labs/01.ipynb") is None


def test_the_watch_page_escapes_the_names_and_frames_only_the_consoles_inert_view():
    page = work_view.render_watch_page(
        "/services/console/", "ada", 'labs/"><script>alert(1)</script>.ipynb'
    )
    parts = PageParts(page)
    assert "<script>alert(1)" not in page
    frames = [attributes for tag, attributes in parts.tags if tag == "iframe"]
    assert [frame["sandbox"] for frame in frames] == [""]  # the inert view, framed sandboxed
    body = next(a for tag, a in parts.tags if tag == "body")
    assert body["data-frame"] == (
        "/services/console/work/ada/labs/%22%3E%3Cscript%3Ealert%281%29%3C/script%3E.ipynb"
    )
    assert body["data-stamp"].startswith("/services/console/api/work-stamp/ada/labs/%22%3E")
    assert [tag for tag, _ in parts.tags].count("script") == 1  # the page's own, nothing more


def test_the_listing_page_comes_from_one_archive_of_the_work_folder():
    archive = tar_bytes(member(f"{ROOT}/labs/01.ipynb", b"{}"), member(f"{ROOT}/mine.ipynb", b"{}"))
    docker_api = FakeDocker({WORK_DIR: archive})
    page = work_view.work_page(docker_api, ROOM, "ada")
    assert page.status == HTTPStatus.OK and docker_api.asked == [("c-ada", WORK_DIR)]
    hrefs = [attributes["href"] for tag, attributes in PageParts(page.html).tags if tag == "a"]
    assert hrefs == ["labs/01.ipynb", "mine.ipynb"]


@pytest.mark.parametrize(
    "listed", [[], [attendee_container("ada", "exited")], [attendee_container("bob")]]
)
def test_a_stopped_server_gives_a_message_page(listed):
    docker_api = FakeDocker()
    page = work_view.work_page(docker_api, listed, "ada", "labs/01.ipynb")
    assert page.status == HTTPStatus.CONFLICT and docker_api.asked == []
    assert "ada's server is not running: their notebooks are shown while it runs" in assert_inert(
        page.html
    )


@pytest.mark.parametrize(
    "path",
    [
        "../../../etc/passwd.ipynb",
        "labs/../../x.ipynb",
        "/etc/x.ipynb",
        "labs/01\x00.ipynb",
        "labs//01.ipynb",
        "./01.ipynb",
        ".ipynb_checkpoints/01-checkpoint.ipynb",
        "labs/.hidden.ipynb",
        "labs/01.py",
        "new\nline.ipynb",
        "a\udcff.ipynb",
        "d/" * (work_view.MAX_FOLDER_DEPTH + 1) + "x.ipynb",
        "x" * work_view.MAX_PATH_CHARS + ".ipynb",
        "",
    ],
)
def test_a_path_outside_the_work_folders_notebooks_is_refused_before_docker_is_asked(path):
    docker_api = FakeDocker()
    page = work_view.work_page(docker_api, ROOM, "ada", path)
    assert page.status == HTTPStatus.NOT_FOUND and docker_api.asked == []
    assert "is not shown:" in assert_inert(page.html)


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (
            docker.errors.NotFound("404", explanation="No such container: c-ada"),
            HTTPStatus.CONFLICT,
            "the server stopped",
        ),
        (
            docker.errors.NotFound("404", explanation="Could not find the file"),
            HTTPStatus.NOT_FOUND,
            "there is no",
        ),
        (
            docker.errors.APIError("500", explanation="boom"),
            HTTPStatus.BAD_GATEWAY,
            "Docker socket",
        ),
        (requests.exceptions.ConnectionError("refused"), HTTPStatus.BAD_GATEWAY, "Docker socket"),
    ],
)
def test_docker_failures_give_a_message_page_that_says_what_to_do(error, status, message):
    for path in (None, "labs/01.ipynb"):
        page = work_view.work_page(FakeDocker(error=error), ROOM, "ada", path)
        assert page.status == status
        assert message in assert_inert(page.html)


def test_the_page_headers_forbid_script_plugins_framing_and_sniffing():
    directives = dict(d.strip().partition(" ")[::2] for d in work_view.PAGE_POLICY.split(";"))
    assert directives["default-src"] == "'none'" and directives["img-src"] == "data:"
    assert directives["sandbox"] == ""  # a sandbox that allows nothing: no allow-scripts
    assert "script-src" not in directives and "unsafe-eval" not in work_view.PAGE_POLICY
    assert directives["frame-ancestors"] == "'self'" and directives["base-uri"] == "'none'"
    assert work_view.PAGE_HEADERS == {
        "Content-Security-Policy": work_view.PAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


# --- with the real Docker daemon ---------------------------------------------------------


@pytest.fixture
def attendee_server():
    """A running container labelled as ada's server, its work folder holding a hostile mix.
    Named with the end-to-end tests' prefix, so a run that dies leaves nothing behind."""
    client = docker.from_env()
    image = os.environ.get("BASE_IMAGE") or COMPOSE_SETTINGS["BASE_IMAGE"][0]
    container = client.containers.run(
        image,
        ["sleep", "300"],
        name=f"wstest{os.getpid()}x{uuid.uuid4().hex[:6]}-work-view",
        labels={LABEL_USER: "ada"},
        detach=True,
    )
    work = WORK_DIR.lstrip("/")
    container.put_archive(
        "/",
        tar_bytes(
            member(
                f"{work}/labs/01.ipynb",
                notebook(code(SCRIPT, {"output_type": "stream", "text": "✓"})),
            ),
            member(f"{work}/.ipynb_checkpoints/01-checkpoint.ipynb", b"{}"),
            member(f"{work}/passwd.ipynb", kind=tarfile.SYMTYPE, link="/etc/passwd"),
            member(f"{work}/big.ipynb", bytes(work_view.NOTEBOOK_MAX_BYTES + 1)),
        ),
    )
    yield client.api, container
    container.remove(force=True)


@pytest.mark.e2e
def test_notebooks_are_read_from_a_real_container_through_the_archive_api(attendee_server):
    api, container = attendee_server
    listed = api.containers(filters={"id": container.id})
    listing = work_view.work_page(api, listed, "ada")
    hrefs = [attributes["href"] for tag, attributes in PageParts(listing.html).tags if tag == "a"]
    assert listing.status == HTTPStatus.OK and hrefs == ["big.ipynb", "labs/01.ipynb"]
    shown = work_view.work_page(api, listed, "ada", "labs/01.ipynb")
    assert SCRIPT in assert_inert(shown.html) and "✓" in assert_inert(shown.html)
    expected = {
        "passwd.ipynb": "is not a regular file",
        "big.ipynb": "too large to show",
        "gone.ipynb": "there is no",
    }
    for path, message in expected.items():
        assert message in assert_inert(work_view.work_page(api, listed, "ada", path).html)
    container.stop(timeout=0)
    stopped = work_view.work_page(
        api, api.containers(all=True, filters={"id": container.id}), "ada"
    )
    assert "ada's server is not running" in assert_inert(stopped.html)


def test_the_cell_of_the_check_that_failed_last_is_marked_and_its_reason_escaped():
    failing = work_view.FailingCheck("batch", f"batch is None {SCRIPT}")
    page = work_view.render_notebook(
        notebook(code("batch = None"), code("batch = lab01.check_batch(batch, device)")),
        "lab",
        failing=failing,
    )
    assert_inert(page)
    marked = re.findall(r'<section class="code failing" id="failing">(.*?)</section>', page, re.S)
    assert len(marked) == 1
    assert "check_batch(" in marked[0]
    assert "the check that failed last: batch is None &lt;script&gt;" in marked[0]
    # Without a failing check, or for another exercise, nothing is marked.
    for other in (None, work_view.FailingCheck("zeros", "wrong")):
        plain = work_view.render_notebook(notebook(code("lab01.check_batch(b)")), "x", None, other)
        assert 'id="failing"' not in plain and "failed last" not in plain
