"""Helpers shared by the workshop labs: setup, exercise checks, data, timing and figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workshop_labs.runtime import setup

__all__ = ["setup"]


def __getattr__(name: str):
    # Imported on first use: the container's start step (workshop_labs.workfolder) needs only
    # the standard library, and importing torch there would slow every server start.
    if name == "setup":
        from workshop_labs.runtime import setup

        return setup
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
