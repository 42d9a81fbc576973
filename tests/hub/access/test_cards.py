"""The login cards page (workshop_hub/access/cards.py): one card per unused roster entry, what
the list says shown as text, and a QR code that reads back as the hub's address."""

from __future__ import annotations

import io

import segno
import zxingcpp
from PIL import Image

from tests.hub.access.test_auth import authenticator, login  # noqa: F401 (a fixture)
from tests.hub.access.test_roster import add, card_of, roster  # noqa: F401 (a fixture)
from tests.hub.console.test_work_view import PageParts
from workshop_hub.access.cards import render_cards


def test_the_cards_page_escapes_what_the_list_says_and_runs_nothing(roster):  # noqa: F811
    add(roster, b'eve,"<script>alert(1)</script><img src=x onerror=alert(2)>"\nada\n')
    page = render_cards(roster.states(), "http://127.0.0.1:8000/")
    parts = PageParts(page)
    tags = [tag for tag, _ in parts.tags]
    assert "script" not in tags and "img" not in tags
    assert [a["data-name"] for t, a in parts.tags if t == "section"] == ["eve", "ada"]
    assert "<script>alert(1)</script>" in " ".join(parts.text)  # shown as text, not markup
    assert tags.count("svg") == 2 and card_of(roster, "eve") in page


def test_used_cards_are_left_off_the_page(roster, authenticator):  # noqa: F811
    add(roster)
    login(authenticator, "ada", "ada-own-pass", card_of(roster, "ada"))
    page = render_cards(roster.states(), "http://127.0.0.1:8000/")
    assert page.count('class="card"') == 2 and "1 rostered attendee(s) already used" in page


def test_the_cards_qr_code_reads_back_as_the_address():
    # segno draws the page's SVG; its PNG of the same code, read by an independent decoder.
    picture = io.BytesIO()
    segno.make("https://workshop.example.org:8443/", error="m").save(picture, kind="png", scale=6)
    picture.seek(0)
    found = zxingcpp.read_barcodes(Image.open(picture).convert("L"))
    assert [code.text for code in found] == ["https://workshop.example.org:8443/"]
