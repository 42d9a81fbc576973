"""workshop_labs.smoke.labs: which labs run, the sources or the attendees' notebooks."""

from __future__ import annotations

from workshop_labs.smoke.labs import NOTEBOOKS_DIR_ENV, default_labs_dir, lab_checks, lab_files

LAB = "# %%\nprint('a lab')\n"


def test_sources_win_over_notebooks_in_one_folder(tmp_path):
    (tmp_path / "01_first.py").write_text(LAB)
    (tmp_path / "01_first.ipynb").write_text("{}")
    assert lab_files(tmp_path) == [tmp_path / "01_first.py"]
    (tmp_path / "01_first.py").unlink()
    assert lab_files(tmp_path) == [tmp_path / "01_first.ipynb"]


def test_without_sources_the_images_notebooks_are_the_default(tmp_path, monkeypatch):
    no_sources, notebooks = tmp_path / "labs-src", tmp_path / "labs"
    no_sources.mkdir()
    notebooks.mkdir()
    (notebooks / "02_second.ipynb").write_text("{}")
    monkeypatch.setenv("WORKSHOP_LABS_DIR", str(no_sources))
    monkeypatch.setenv(NOTEBOOKS_DIR_ENV, str(notebooks))
    assert default_labs_dir() == notebooks
    assert [check.name for check in lab_checks(None)] == ["lab:02_second"]
    monkeypatch.delenv(NOTEBOOKS_DIR_ENV)
    assert default_labs_dir() is None
    (nothing,) = lab_checks(None)
    assert nothing.name == "labs"
