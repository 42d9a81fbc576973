"""scripts/build_lab_extension.py: the help add-on's built page that the repository keeps (and
the lab image copies) is what its source builds to, and the script says so when it is not."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build_lab_extension.py"
spec = importlib.util.spec_from_file_location("build_lab_extension", SCRIPT)
build_lab_extension = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_lab_extension)

KEPT = build_lab_extension.KEPT


def test_the_kept_extension_holds_the_files_its_manifest_loads():
    manifest = json.loads((KEPT / "package.json").read_text())
    build = manifest["jupyterlab"]["_build"]
    assert (KEPT / build["load"]).is_file()
    source = json.loads((REPO / "lab-extension" / "package.json").read_text())
    assert manifest["name"] == source["name"] == "workshop-help"
    # Where docker/lab/Dockerfile copies the page from.
    assert KEPT == REPO / "lab-extension" / "labextension"


def test_differences_names_every_file_added_removed_or_changed(tmp_path):
    built, kept = tmp_path / "built", tmp_path / "kept"
    shutil.copytree(KEPT, built)
    shutil.copytree(KEPT, kept)
    assert build_lab_extension.differences(built, kept) == []

    (kept / "package.json").write_text((kept / "package.json").read_text() + " ")
    (kept / "static" / "stale.js").write_text("old build")
    (built / "static" / "new.js").write_text("new build")
    assert build_lab_extension.differences(built, kept) == [
        "missing: static/new.js",
        "no longer built: static/stale.js",
        "changed: package.json",
    ]
    assert build_lab_extension.differences(built, tmp_path / "absent") == [
        f"missing: {name}" for name in sorted(build_lab_extension._files(built))
    ]


@pytest.mark.e2e
def test_the_kept_extension_matches_a_fresh_build_of_its_source(capsys):
    """Builds lab-extension/ in Docker (cached after the first run) and compares byte for byte:
    a change to the add-on's source without a rebuild fails here."""
    assert build_lab_extension.main(["--check"]) == 0, capsys.readouterr().err
