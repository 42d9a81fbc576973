"""workshop_labs.smoke.versions: reading the pins it compares the installed packages with."""

from __future__ import annotations

from workshop_labs.smoke.versions import CONSTRAINTS, public_version, read_constraints


def test_constraints_lines_are_read_by_normalized_name(tmp_path):
    path = tmp_path / "constraints.txt"
    path.write_text("# pins\nTorch==2.13.0\nscikit_learn == 1.6.1  # why\nrequests>=2\n")
    assert read_constraints(path) == {"torch": "2.13.0", "scikit-learn": "1.6.1"}


def test_a_local_build_tag_is_the_same_pin():
    assert public_version("2.13.0+cpu") == public_version("2.13.0") == "2.13.0"


def test_the_default_constraints_are_the_repositorys():
    assert read_constraints(CONSTRAINTS)["torch"]
