"""An attendee's notebooks, for the instructor, as inert HTML rendered by the console.

Everything an attendee's server sends under /user/NAME/ on the hub's origin is the
attendee's to write, so an instructor who opened it there would run the attendee's script
with the instructor's cookies. Instead the console reads the attendee's notebooks itself,
through Docker's archive API (never an `exec`: the attendee controls the programs in their
container), and renders them here as HTML with no script, under PAGE_POLICY. Every string
from a notebook is escaped; only PNG and JPEG images are shown, as data: URLs of strict
base64 that decodes to the format's signature; HTML, SVG, JavaScript and widget outputs are
named, never rendered.

The wiring (a handler at .../work/NAME/ and .../work/NAME/PATH, run in a worker thread
because Docker's client blocks):

    listed = await loop.run_in_executor(None, room.containers.listed)
    page = await loop.run_in_executor(
        None, work_view.work_page, room.containers.api, listed, attendee, path_or_none
    )
    self.set_status(page.status)
    for header, value in work_view.PAGE_HEADERS.items():
        self.set_header(header, value)
    self.finish(page.html)

The listing's links are relative to its own address, which must end in "/" (.../work/NAME/:
tornado.web.addslash on the handler); a notebook's page links back with "../" per folder.
Only Docker is read: on Kubernetes (room_sources.AttendeePods) there is no archive API.

Public API:
- ``work_page(api, listed, attendee, path=None, failing=None) -> WorkPage``: the page for the
  attendee's listing (path None) or one notebook (PATH relative to their work folder), with
  the cell of ``failing`` (a FailingCheck: the check they failed last) marked. Never raises for
  anything the attendee controls: a stopped server, a refused path, a link, a notebook too
  large or malformed, Docker unreachable, each gives a message page with its status.
- ``running_container_id(listed, attendee) -> str``, ``list_notebooks(api, container_id) ->
  Listing``, ``read_notebook(api, container_id, path) -> bytes``: its steps; each raises
  WorkUnavailable, whose message says what happened and what to do, and whose `status` is the
  HTTP status to answer with.
- ``render_notebook(raw, title, listing_href=None, failing=None) -> str``,
  ``render_listing(name, listing) -> str``, ``render_message(title, message,
  listing_href=None) -> str``: full HTML pages;
  render_notebook never raises, whatever the bytes.
- ``notebooks_in_archive(chunks) -> Listing`` and ``notebook_from_archive(chunks, file_name)
  -> bytes``: the tar readers, on any iterable of byte chunks.
- ``PAGE_POLICY`` and ``PAGE_HEADERS``: the Content-Security-Policy, and every header such a
  page must carry (the policy, nosniff, no referrer), to set in one loop.

How much is read: a notebook at most NOTEBOOK_MAX_BYTES (its tar header says its size, so a
larger one is refused before its content is read). The listing comes from ONE archive of the
work folder, read as a stream of tar headers whose contents are skipped: Docker's archive
API has no listing without contents, and an archive per folder would send each subfolder
again. The stream is cut after LISTING_MAX_BYTES, LISTING_MAX_ENTRIES entries or
LISTING_MAX_NOTEBOOKS notebooks, and the page says the listing was cut short and why.

A folder on a notebook's path that is a symlink is resolved by Docker inside the attendee's
own container, so at worst the instructor sees a file of that container as escaped text; the
notebook itself must be a regular file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import re
import string
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from pathlib import PurePosixPath
from typing import NamedTuple
from urllib.parse import quote

import docker

from ..room.profiles import WORK_DIR
from ..settings import MiB, human_size
from . import room_sources

PAGE_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'; sandbox"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    # A page is never taken for another type, and the attendee's file names in its address
    # never leave in a Referer.
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

NOTEBOOK_MAX_BYTES = 20 * MiB
# Room for the tar header (and Docker's PAX records) in front of the notebook's own bytes.
ARCHIVE_HEADER_BYTES = 64 * 1024
LISTING_MAX_BYTES = 128 * MiB
LISTING_MAX_ENTRIES = 10_000
LISTING_MAX_NOTEBOOKS = 500
# Folders below the work folder; the labs sit one deep.
MAX_FOLDER_DEPTH = 6
MAX_PATH_CHARS = 1024
# Docker sends the archive in pieces of this size, so a cut overshoots by one piece at most.
ARCHIVE_CHUNK_BYTES = 64 * 1024

MAX_CELLS_SHOWN = 1000
MAX_OUTPUTS_SHOWN = 100
MAX_TEXT_CHARS = 200_000
# The characters of notebook text and images on one page: a browser stays responsive.
PAGE_MAX_CHARS = 8_000_000
MAX_IMAGE_BYTES = 4 * MiB

# Docker writes plain files as REGTYPE; AREGTYPE is the same in older tars. Links, devices,
# folders and sparse or continued files are never read.
REGULAR_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
IMAGE_SIGNATURES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
HIDDEN_OUTPUT_NAMES = {
    "text/html": "an HTML output",
    "image/svg+xml": "an SVG image",
    "application/javascript": "a JavaScript output",
    "application/vnd.jupyter.widget-view+json": "a widget",
}
CELL_KINDS = ("code", "markdown", "raw")

# Terminal colours and titles (the exercise checks colour their verdicts).
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b.")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 70rem; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f6f6; padding: .5rem;
      margin: .25rem 0; font: 13px/1.35 ui-monospace, monospace; }
section { border-top: 1px solid #ccc; padding: .5rem 0; }
.cell-head { color: #555; font-size: 13px; margin: 0; }
.markdown pre { background: #fffdf0; }
.stderr, .error { background: #fdecec; }
.note { color: #8a5a00; font-style: italic; margin: .25rem 0; }
img { max-width: 100%; }
section.failing { border-left: 4px solid #d64541; padding-left: .6rem; background: #fff7f6; }
table { border-collapse: collapse; }
td, th { padding: .2rem .8rem; text-align: left; border-bottom: 1px solid #eee; }
"""


class WorkUnavailable(Exception):
    """The work cannot be shown; the message says why and what to do, for the page."""

    def __init__(self, message: str, status: HTTPStatus):
        super().__init__(message)
        self.status = status


class _ArchiveTooLarge(Exception):
    """The archive went on past the bytes its reader may pull."""


@dataclass(frozen=True)
class Notebook:
    path: str  # relative to the work folder, "/"-separated
    size: int
    modified: float  # seconds since the epoch


@dataclass(frozen=True)
class Listing:
    notebooks: tuple[Notebook, ...]
    cut_short: str = ""  # why some notebooks may be missing; "" when the listing is whole


class WorkPage(NamedTuple):
    status: HTTPStatus
    html: str


# --- reading from the attendee's running container -----------------------------------------


def running_container_id(listed: list[dict], attendee: str) -> str:
    """The id of the attendee's running container in `listed` (Containers.listed())."""
    container_id = room_sources.running_container_id(listed, attendee)
    if container_id:
        return container_id
    raise WorkUnavailable(
        f"{attendee}'s server is not running: their notebooks are shown while it runs "
        "(they start it from the hub's home page)",
        HTTPStatus.CONFLICT,
    )


def list_notebooks(api: docker.APIClient, container_id: str) -> Listing:
    return notebooks_in_archive(_archive(api, container_id, WORK_DIR))


def read_notebook(api: docker.APIClient, container_id: str, path: str) -> bytes:
    """The bytes of the notebook at `path`, relative to the work folder."""
    problem = _path_problem(path)
    if problem:
        raise WorkUnavailable(f"{path!r} is not shown: {problem}", HTTPStatus.NOT_FOUND)
    chunks = _archive(api, container_id, f"{WORK_DIR}/{path}")
    return notebook_from_archive(chunks, PurePosixPath(path).name)


def _archive(api: docker.APIClient, container_id: str, path: str) -> Iterable[bytes]:
    try:
        chunks, _ = api.get_archive(container_id, path, chunk_size=ARCHIVE_CHUNK_BYTES)
    except docker.errors.NotFound as missing:
        if "no such container" in str(missing.explanation).lower():
            raise WorkUnavailable(
                "the server stopped while its work was being read: reload when it runs again",
                HTTPStatus.CONFLICT,
            ) from None
        raise WorkUnavailable(
            f"there is no {path} in the server: reload the listing, it may have been renamed",
            HTTPStatus.NOT_FOUND,
        ) from None
    except (docker.errors.DockerException, OSError) as error:
        raise _docker_unreachable(error) from None
    return chunks


def _docker_unreachable(error: Exception) -> WorkUnavailable:
    return WorkUnavailable(
        f"Docker did not hand over the work ({error}): check that the console's container "
        "still has the Docker socket (docker-compose.yml) and that dockerd runs",
        HTTPStatus.BAD_GATEWAY,
    )


# --- the tar readers -------------------------------------------------------------------------


class _ArchiveReader:
    """A file over Docker's stream of chunks that pulls at most `limit` bytes (plus the last
    chunk), so a huge archive is cut instead of read to its end."""

    def __init__(self, chunks: Iterable[bytes], limit: int):
        self._chunks: Iterator[bytes] = iter(chunks)
        self._limit = limit
        self._pulled = 0
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            if self._pulled >= self._limit:
                raise _ArchiveTooLarge
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pulled += len(chunk)
            self._pending = chunk
        size = len(self._pending) if size < 0 else size
        piece, self._pending = self._pending[:size], self._pending[size:]
        return piece


def notebook_from_archive(chunks: Iterable[bytes], file_name: str) -> bytes:
    """The one regular file `file_name` of a tar stream (Docker's archive of one path)."""
    reader = _ArchiveReader(chunks, NOTEBOOK_MAX_BYTES + ARCHIVE_HEADER_BYTES)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as archive:
            member = archive.next()
            if member is None or member.name != file_name:
                raise WorkUnavailable(
                    f"Docker's archive of {file_name!r} holds something else: reload the listing",
                    HTTPStatus.NOT_FOUND,
                )
            if member.type not in REGULAR_FILE_TYPES:
                raise WorkUnavailable(
                    f"{file_name!r} is not a regular file (a link, folder or device): only "
                    "notebooks saved by JupyterLab are shown",
                    HTTPStatus.NOT_FOUND,
                )
            if member.size > NOTEBOOK_MAX_BYTES:
                raise _ArchiveTooLarge
            content = archive.extractfile(member)
            return content.read() if content else b""
    except _ArchiveTooLarge:
        raise WorkUnavailable(
            f"{file_name!r} is larger than {NOTEBOOK_MAX_BYTES // MiB} MiB, too large to show: "
            "ask the attendee to clear its outputs (Edit > Clear Outputs of All Cells) and save",
            HTTPStatus.CONFLICT,
        ) from None
    except (tarfile.TarError, EOFError) as error:
        raise WorkUnavailable(
            f"Docker's archive of {file_name!r} could not be read ({error}): reload the page",
            HTTPStatus.BAD_GATEWAY,
        ) from None
    except OSError as error:
        raise _docker_unreachable(error) from None


def notebooks_in_archive(chunks: Iterable[bytes]) -> Listing:
    """The notebooks of a tar stream of the work folder (each name starts with the folder's
    own name), read from the tar headers; contents are skipped, never kept."""
    root = PurePosixPath(WORK_DIR).name + "/"
    found: list[Notebook] = []
    cut_short = ""
    try:
        with tarfile.open(fileobj=_ArchiveReader(chunks, LISTING_MAX_BYTES), mode="r|") as archive:
            for entries, member in enumerate(archive, start=1):
                if entries > LISTING_MAX_ENTRIES:
                    cut_short = f"the work folder holds more than {LISTING_MAX_ENTRIES} files"
                    break
                path = member.name.removeprefix(root)
                if (
                    not member.name.startswith(root)
                    or member.type not in REGULAR_FILE_TYPES
                    or _path_problem(path)
                ):
                    continue
                if len(found) == LISTING_MAX_NOTEBOOKS:
                    cut_short = f"only the first {LISTING_MAX_NOTEBOOKS} notebooks are listed"
                    break
                found.append(Notebook(path, member.size, float(member.mtime)))
    except _ArchiveTooLarge:
        cut_short = (
            f"the work folder holds more than {LISTING_MAX_BYTES // MiB} MiB: only the notebooks "
            "in its first part are listed"
        )
    except (tarfile.TarError, EOFError, OSError) as error:
        cut_short = f"the work folder's archive ended early ({error}): reload to try again"
    return Listing(tuple(sorted(found, key=lambda notebook: notebook.path)), cut_short)


def _path_problem(path: str) -> str | None:
    """Why `path` is not a notebook path the console shows, or None."""
    if len(path) > MAX_PATH_CHARS:
        return f"longer than {MAX_PATH_CHARS} characters"
    if _CONTROL_CHARACTER.search(path):
        return "it holds a control character"
    if not _encodes(path):
        return "its name is not UTF-8"
    if path.startswith("/"):
        return "an absolute path; paths are relative to the work folder"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "an empty, '.' or '..' part; paths stay inside the work folder"
    if any(part.startswith(".") for part in parts):
        return "a hidden file or folder (such as .ipynb_checkpoints)"
    if len(parts) > MAX_FOLDER_DEPTH + 1:
        return f"deeper than {MAX_FOLDER_DEPTH} folders"
    if not path.endswith(".ipynb"):
        return "not a notebook (.ipynb)"
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # tarfile keeps undecodable bytes as lone surrogates
        return False
    return True


# --- the pages -------------------------------------------------------------------------------


def work_page(
    api: docker.APIClient,
    listed: list[dict],
    attendee: str,
    path: str | None = None,
    failing: FailingCheck | None = None,
) -> WorkPage:
    """The attendee's listing (path None) or one notebook, or a page that says why not;
    ``failing``, the check the attendee failed last, marks its cell."""
    title = f"{attendee}'s notebooks" if path is None else f"{attendee}: {path}"
    listing_href = None if path is None else _listing_href(path)
    try:
        container_id = running_container_id(listed, attendee)
        if path is None:
            return WorkPage(
                HTTPStatus.OK, render_listing(attendee, list_notebooks(api, container_id))
            )
        raw = read_notebook(api, container_id, path)
    except WorkUnavailable as unavailable:
        return WorkPage(unavailable.status, render_message(title, str(unavailable), listing_href))
    own_address = quote(PurePosixPath(path).name)
    return WorkPage(HTTPStatus.OK, render_notebook(raw, title, listing_href, failing, own_address))


def notebook_stamp(
    api: docker.APIClient, listed: list[dict], attendee: str, path: str
) -> str | None:
    """A fingerprint of the notebook as last saved, None when it cannot be read: how a
    watching page knows when to read it again without reading it each time itself."""
    try:
        raw = read_notebook(api, running_container_id(listed, attendee), path)
    except WorkUnavailable:
        return None
    return hashlib.sha256(raw).hexdigest()[:16]


WATCH_PAGE = string.Template(
    resources.files(__package__).joinpath("watch.html").read_text(encoding="utf-8")
)


def render_watch_page(prefix: str, attendee: str, path: str) -> str:
    """The console's page that frames one notebook's inert view and reloads it on each save;
    names and paths go into it escaped, and into its addresses quoted."""
    where = f"{quote(attendee, safe='')}/{quote(path)}"
    return WATCH_PAGE.substitute(
        title=_escaped(f"{attendee}: {path}"),
        frame=_escaped(f"{prefix}work/{where}"),
        stamp=_escaped(f"{prefix}api/work-stamp/{where}"),
    )


def _listing_href(path: str) -> str:
    """From a notebook's page to the listing: one "../" per folder of its path."""
    return "../" * path.count("/") or "./"


def render_message(title: str, message: str, listing_href: str | None = None) -> str:
    return _page(title, _note(message), listing_href)


def render_listing(name: str, listing: Listing) -> str:
    rows = "".join(
        f'<tr><td><a href="{_escaped(quote(notebook.path))}">{_escaped(notebook.path)}</a></td>'
        f"<td>{human_size(notebook.size)}</td><td>{_time_text(notebook.modified)}</td></tr>"
        for notebook in listing.notebooks
    )
    body = (
        f"<table><tr><th>Notebook</th><th>Size</th><th>Saved (UTC)</th></tr>{rows}</table>"
        if rows
        else _note(f"{name} has no notebooks in their work folder")
    )
    if listing.cut_short:
        body += _note(f"Listing cut short: {listing.cut_short}.")
    return _page(f"{name}'s notebooks", body)


class FailingCheck(NamedTuple):
    """The check an attendee failed last: its cell calls ``check_<exercise>(``."""

    exercise: str
    reason: str


def render_notebook(
    raw: bytes,
    title: str,
    listing_href: str | None = None,
    failing: FailingCheck | None = None,
    self_href: str | None = None,
) -> str:
    """The notebook as inert HTML; a page that says why when `raw` is not a notebook.
    ``self_href``, the page's own address relative to itself, gives a link to read it again."""
    cells, problem = _cells_of(raw)
    if problem:
        return render_message(title, f"This file cannot be shown: {problem}.", listing_href)
    budget = _PageBudget()
    sections = [
        _cell_html(number, cell, budget, failing)
        for number, cell in enumerate(cells[:MAX_CELLS_SHOWN], start=1)
    ]
    if len(cells) > MAX_CELLS_SHOWN:
        sections.append(_note(f"{len(cells) - MAX_CELLS_SHOWN} more cells not shown."))
    return _page(title, "".join(sections), listing_href, self_href)


def _cells_of(raw: bytes) -> tuple[list, str]:
    """The notebook's cells, or why it is not a notebook of format 4."""
    try:
        notebook = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return [], "it is not UTF-8 text"
    except (ValueError, RecursionError) as error:
        return [], f"it is not JSON ({str(error)[:200]})"
    if not isinstance(notebook, dict):
        return [], "it is not a JSON object"
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        return [], "it has no list of cells (only notebooks of format 4 are shown)"
    return cells, ""


class _PageBudget:
    """The characters of notebook content one page may still show."""

    def __init__(self) -> None:
        self.left = PAGE_MAX_CHARS

    def text(self, text: str, css_class: str) -> str:
        if self.left <= 0:
            return _note("(not shown: this page already shows all it can hold)")
        text = _readable(text)
        shown = text[: min(MAX_TEXT_CHARS, self.left)]
        self.left -= len(shown)
        html_text = f'<pre class="{css_class}">{html.escape(shown, quote=True)}</pre>'
        if len(shown) < len(text):
            html_text += _note(f"({len(text) - len(shown)} more characters not shown)")
        return html_text

    def image(self, data_url: str) -> str:
        if len(data_url) > self.left:
            return _note("(an image, not shown: this page already shows all it can hold)")
        self.left -= len(data_url)
        return f'<img alt="an output image" src="{data_url}">'


def _cell_html(
    number: int, cell: object, budget: _PageBudget, failing: FailingCheck | None = None
) -> str:
    if not isinstance(cell, dict):
        return f"<section>{_note(f'Cell {number} is not a cell object: not shown.')}</section>"
    kind = cell.get("cell_type")
    kind = kind if kind in CELL_KINDS else "unknown kind"
    head = f"Cell {number} · {kind}"
    if kind == "code":
        count = cell.get("execution_count")
        head += f" · In [{count if type(count) is int else ' '}]"
    source = _joined(cell.get("source"))
    marked = (
        failing is not None
        and kind == "code"
        and source is not None
        and f"check_{failing.exercise}(" in source
    )
    if marked:
        head += f" · the check that failed last: {failing.reason}"
    parts = [f'<p class="cell-head">{_escaped(head)}</p>']
    parts.append(
        budget.text(source, "source") if source is not None else _note("(source not readable)")
    )
    outputs = cell.get("outputs") if kind == "code" else None
    if isinstance(outputs, list):
        parts += [_output_html(output, budget) for output in outputs[:MAX_OUTPUTS_SHOWN]]
        if len(outputs) > MAX_OUTPUTS_SHOWN:
            parts.append(_note(f"({len(outputs) - MAX_OUTPUTS_SHOWN} more outputs not shown)"))
    css_class = kind.split()[0] + (" failing" if marked else "")
    anchor = ' id="failing"' if marked else ""
    return f'<section class="{css_class}"{anchor}>{"".join(parts)}</section>'


def _output_html(output: object, budget: _PageBudget) -> str:
    if not isinstance(output, dict):
        return _note("(an output that is not an object, not shown)")
    output_type = output.get("output_type")
    if output_type == "stream":
        text = _joined(output.get("text"))
        stream = "stderr" if output.get("name") == "stderr" else "stdout"
        return budget.text(text, stream) if text is not None else _note("(unreadable output)")
    if output_type == "error":
        return budget.text(_error_text(output), "error")
    if output_type in ("execute_result", "display_data"):
        data = output.get("data")
        return _rich_output_html(data if isinstance(data, dict) else {}, budget)
    return _note(f"(an output of type {str(output_type)[:40]!r}, not shown)")


def _error_text(output: dict) -> str:
    traceback = output.get("traceback")
    if isinstance(traceback, list) and traceback and all(isinstance(t, str) for t in traceback):
        return "\n".join(traceback)
    return f"{output.get('ename')}: {output.get('evalue')}"


def _rich_output_html(data: dict, budget: _PageBudget) -> str:
    """An image or the plain text of a display; what only another form has is named."""
    notes = []
    for mime in IMAGE_SIGNATURES:
        if mime in data:
            data_url = _image_data_url(mime, data[mime])
            if data_url:
                return budget.image(data_url)
            notes.append(f"(an image that is not a valid {mime}, not shown)")
    text = _joined(data.get("text/plain"))
    if text is not None:
        return "".join(map(_note, notes)) + budget.text(text, "result")
    notes += [
        f"({HIDDEN_OUTPUT_NAMES.get(mime, f'a {str(mime)[:60]} output')}, not shown)"
        for mime in list(data)[:10]
        if mime not in IMAGE_SIGNATURES
    ]
    return "".join(map(_note, notes or ["(an empty output)"]))


def _image_data_url(mime: str, value: object) -> str | None:
    """A data: URL of the image, or None unless `value` is strict base64 of at most
    MAX_IMAGE_BYTES that starts with the format's signature."""
    encoded = _joined(value)
    # Base64 is 4/3 of the image; twice leaves room for line breaks, and bounds the work.
    if encoded is None or len(encoded) > MAX_IMAGE_BYTES * 2:
        return None
    # Notebook writers may wrap base64 in lines.
    compact = "".join(encoded.split())
    try:
        # validate: only the base64 alphabet and whole padding, no skipped characters.
        image = base64.b64decode(compact, validate=True)
    except binascii.Error:
        return None
    if len(image) > MAX_IMAGE_BYTES or not image.startswith(IMAGE_SIGNATURES[mime]):
        return None
    return f"data:{mime};base64,{compact}"


def _joined(value: object) -> str | None:
    """A notebook's text: a string, or a list of strings (nbformat's multiline form)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "".join(value)
    return None


def _readable(text: str) -> str:
    """`text` without terminal escapes, and with lone surrogates (valid in JSON, not in UTF-8)
    replaced, so the page always encodes."""
    return _TERMINAL_ESCAPE.sub("", text).encode("utf-8", "replace").decode("utf-8")


def _escaped(text: str) -> str:
    return html.escape(_readable(text), quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{_escaped(text)}</p>'


def _time_text(seconds: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):  # a date the attendee set out of range
        return "?"


def _page(
    title: str, body: str, listing_href: str | None = None, self_href: str | None = None
) -> str:
    back = f'<p><a href="{_escaped(listing_href)}">All notebooks</a></p>' if listing_href else ""
    # The page cannot read itself again on a timer: its sandbox (no scripts) also stops a
    # meta refresh. A plain link to itself does it, with the time the notebook was read.
    read_at = ""
    if self_href:
        read_at = (
            f'<p class="note">As saved at {time.strftime("%H:%M:%S")}. '
            f'<a href="{_escaped(self_href)}">Read it again</a></p>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_escaped(title)}</title><style>{STYLE}</style></head>"
        f"<body>{back}<h1>{_escaped(title)}</h1>{read_at}{body}</body></html>\n"
    )
