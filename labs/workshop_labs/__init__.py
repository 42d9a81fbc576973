"""Helpers shared by the workshop labs: setup, exercise checks, data, timing and figures."""

from workshop_labs.runtime import setup

__all__ = ["setup"]
