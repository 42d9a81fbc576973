"""The instructor's announcement ("Break until 10:45"), shown on every hub page and in
JupyterLab.

The console writes it on the hub-data volume; the hub reads it at each page it renders
(JupyterHub's `announcement` template variable, a callable), so a new one shows at the next
page load without a restart. It is the instructor's plain text, escaped for the page.

JupyterLab shows it too, as one of its own news notifications: the console serves it as an
Atom feed, which each attendee's server fetches for JupyterLab (its `LabApp.news_url`, set by
the spawner) when JupyterLab opens.
"""

from __future__ import annotations

import html
import json
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from ..access.credentials import HUB_DATA_DIR, write_atomically

ANNOUNCEMENT_FILE = HUB_DATA_DIR / "announcement.json"
MAX_LENGTH = 300


class BadAnnouncement(ValueError):
    """Text that cannot be announced; the message says why."""


def write(text: str, by: str, path: Path = ANNOUNCEMENT_FILE) -> dict:
    """Announce `text` (empty: take the announcement down); atomically, for readers."""
    text = " ".join(text.split())
    if len(text) > MAX_LENGTH:
        raise BadAnnouncement(f"an announcement is one line of at most {MAX_LENGTH} characters")
    entry = {"text": text, "by": by, "at": time.time()}
    write_atomically(path, json.dumps(entry))
    return entry


def read(path: Path = ANNOUNCEMENT_FILE) -> dict:
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"text": "", "by": "", "at": None}
    return entry if isinstance(entry, dict) and isinstance(entry.get("text"), str) else {"text": ""}


def for_page(_user=None, path: Path = ANNOUNCEMENT_FILE) -> str:
    """JupyterHub's `announcement` template variable: the text, HTML-escaped, or nothing."""
    return html.escape(read(path)["text"])


ATOM = "http://www.w3.org/2005/Atom"


def atom_feed(path: Path = ANNOUNCEMENT_FILE) -> bytes:
    """The announcement as an Atom feed of one entry (none when there is none). Its id
    changes with each announcement, so JupyterLab shows a new one even after the attendee
    dismissed the last."""
    entry = read(path)
    feed = ET.Element("feed", xmlns=ATOM)
    ET.SubElement(feed, "title").text = "Workshop announcements"
    ET.SubElement(feed, "id").text = "urn:workshop:announcements"
    at = entry.get("at") if isinstance(entry.get("at"), int | float) else time.time()
    updated = datetime.fromtimestamp(at, UTC).isoformat()
    ET.SubElement(feed, "updated").text = updated
    if entry["text"]:
        item = ET.SubElement(feed, "entry")
        ET.SubElement(item, "title").text = entry["text"]
        ET.SubElement(item, "id").text = f"urn:workshop:announcement:{at}"
        ET.SubElement(item, "updated").text = updated
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
