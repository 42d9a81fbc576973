"""Sizes as people read them, in the labs and in the image's own check: binary units, named as
such. The hub has the same rule (workshop_hub.settings.human_size; a test keeps the two equal):
the two packages ship in different images and neither imports the other."""

from __future__ import annotations

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


def human_size(size: float | None) -> str:
    """ "1.9 GiB", "512.0 MiB", "900 B"; None (no limit set) is "unlimited"."""
    if size is None:
        return "unlimited"
    for unit, scale in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"
