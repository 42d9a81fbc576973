"""The organizer's scripts are files, not a package: load them as modules for their tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def smoke() -> ModuleType:
    """scripts/smoke_test.py"""
    return load_script("smoke_test")


@pytest.fixture(scope="session")
def runner() -> ModuleType:
    """scripts/run_smoke_tests.py"""
    return load_script("run_smoke_tests")
