"""Login cards: one printable card per rostered attendee, cut out and handed over at the door.

Each card has the hub's address (also as a QR code, drawn by `segno` as inline SVG), the
attendee's name and one-time password, and what to do with them. The same page comes from
the console (for instructors) and from `workshop-hub roster cards` (a file to print). The
page has no script and no outside resource; every name goes in escaped, since the roster is
a file an organizer was handed.
"""

from __future__ import annotations

import html
import string

import segno

from .roster import CardState

# Medium error correction survives a crease or a smudge on a printed card.
QR_ERROR_CORRECTION = "m"
# 4 px a module: about 26 mm across on paper, read by any phone at arm's length.
QR_SCALE = 4
WHAT_TO_DO = (
    "Open the address, type your name, type this one-time password in the Room code box, and "
    "choose your own password (8 characters or more). The one-time password then stops working."
)
# No script, no outside resource, no form: the page is read and printed, nothing else.
CARDS_PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)

PAGE = string.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Login cards</title>
<style>
  body { font: 13px system-ui, sans-serif; margin: 12px; }
  .intro { margin-bottom: 12px; }
  .cards { display: flex; flex-wrap: wrap; gap: 8px; }
  /* Two cards across an A4 or Letter page; nothing may spill onto the next card (its QR code
     would not read), so long addresses and names wrap inside their own card. */
  .card { border: 1px dashed #888; padding: 10px 12px; width: 100mm; box-sizing: border-box;
          break-inside: avoid; page-break-inside: avoid; display: flex; gap: 10px;
          overflow: hidden; }
  .card > div:last-child { flex: 1; min-width: 0; overflow-wrap: anywhere; }
  .card h2 { font-size: 16px; margin: 0 0 4px; }
  .card dl { margin: 0; }
  .card dt { color: #555; font-size: 11px; }
  .card dd { margin: 0 0 4px; font-family: ui-monospace, monospace; font-size: 14px; }
  .card dd.one-time-password { font-size: 16px; white-space: nowrap; }
  .card p { margin: 6px 0 0; font-size: 11px; }
  .qr { flex: none; }
  .qr svg { display: block; }
  @media print { .intro { display: none; } body { margin: 0; } }
</style></head>
<body>
<p class="intro">$intro</p>
<div class="cards">
$cards
</div>
</body></html>
""")

CARD = string.Template("""<section class="card" data-name="$name">
  <div class="qr" role="img" aria-label="QR code of $address">$qr</div>
  <div>
    <h2>$display_name</h2>
    <dl>
      <dt>Address</dt><dd class="address">$address</dd>
      <dt>Name</dt><dd class="name">$name</dd>
      <dt>One-time password</dt><dd class="one-time-password">$one_time_password</dd>
    </dl>
    <p>$what_to_do</p>
  </div>
</section>""")


def qr_svg(address: str) -> str:
    """The address as a QR code, inline SVG (no XML declaration, no outside reference)."""
    return segno.make(address, error=QR_ERROR_CORRECTION).svg_inline(scale=QR_SCALE)


def render_cards(states: list[CardState], address: str) -> str:
    """The page of cards of every rostered attendee who has not used theirs yet."""
    unused = [state.entry for state in states if state.card_unused]
    used = len(states) - len(unused)
    qr = qr_svg(address)
    cards = "\n".join(
        CARD.substitute(
            name=html.escape(entry.name),
            display_name=html.escape(entry.display_name),
            one_time_password=html.escape(entry.one_time_password),
            address=html.escape(address),
            qr=qr,
            what_to_do=html.escape(WHAT_TO_DO),
        )
        for entry in unused
    )
    intro = f"{len(unused)} login card(s) to print and cut out"
    if used:
        intro += f"; {used} rostered attendee(s) already used theirs and are left out"
    if not states:
        intro = "Nobody is on the roster: add the list with `workshop-hub roster add FILE`"
    return PAGE.substitute(intro=html.escape(intro) + ".", cards=cards)
