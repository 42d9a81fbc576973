"""The instructor's announcement: one line, escaped on hub pages, and an Atom feed that
JupyterLab's news reader (jupyterlab.handlers.announcements) reads back as typed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from workshop_hub.console import announcement

ATOM = {"atom": announcement.ATOM}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "announcement.json"


def entries(feed: bytes) -> list[dict[str, str]]:
    tree = ET.fromstring(feed)
    return [
        {field: entry.find(f"atom:{field}", ATOM).text for field in ("title", "id", "updated")}
        for entry in tree.findall("atom:entry", ATOM)
    ]


def test_no_announcement_is_a_feed_without_entries(path):
    assert entries(announcement.atom_feed(path)) == []


def test_the_feed_holds_the_text_as_typed_and_a_new_id_for_each(path):
    announcement.write("Break until 10:45 <b>sharp</b> & back", by="instructor", path=path)
    (first,) = entries(announcement.atom_feed(path))
    assert first["title"] == "Break until 10:45 <b>sharp</b> & back"
    announcement.write("Lab 4 now", by="instructor", path=path)
    (second,) = entries(announcement.atom_feed(path))
    assert second["title"] == "Lab 4 now" and second["id"] != first["id"]
    announcement.write("", by="instructor", path=path)
    assert entries(announcement.atom_feed(path)) == []


def test_hub_pages_get_it_escaped_and_a_long_one_is_refused(path):
    announcement.write("  Break\n until <10:45>  ", by="instructor", path=path)
    assert announcement.for_page(path=path) == "Break until &lt;10:45&gt;"
    with pytest.raises(announcement.BadAnnouncement, match="at most 300 characters"):
        announcement.write("x" * 301, by="instructor", path=path)


def test_a_damaged_file_means_no_announcement(path):
    path.write_text("{broken")
    assert announcement.for_page(path=path) == ""
    assert entries(announcement.atom_feed(path)) == []
