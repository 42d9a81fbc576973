import json

import pytest

from workshop_labs import workfolder


@pytest.fixture
def shipped(tmp_path):
    folder = tmp_path / "image-labs"
    folder.mkdir()
    (folder / "01_intro.ipynb").write_text('{"v": 1}')
    (folder / "02_modules.ipynb").write_text('{"v": 1}')
    return folder


def test_first_start_copies_every_lab(shipped, tmp_path):
    work = tmp_path / "work"
    actions = workfolder.sync_labs(shipped, work)
    assert sorted(p.name for p in (work / "labs").glob("*.ipynb")) == [
        "01_intro.ipynb",
        "02_modules.ipynb",
    ]
    assert len(actions) == 2


def test_edits_survive_restarts(shipped, tmp_path):
    work = tmp_path / "work"
    workfolder.sync_labs(shipped, work)
    mine = work / "labs" / "01_intro.ipynb"
    mine.write_text('{"my": "answers"}')
    assert workfolder.sync_labs(shipped, work) == []
    assert mine.read_text() == '{"my": "answers"}'


def test_a_newer_lab_appears_beside_the_attendees_copy(shipped, tmp_path):
    work = tmp_path / "work"
    workfolder.sync_labs(shipped, work)
    mine = work / "labs" / "01_intro.ipynb"
    mine.write_text('{"my": "answers"}')
    (shipped / "01_intro.ipynb").write_text('{"v": 2}')
    actions = workfolder.sync_labs(shipped, work)
    assert mine.read_text() == '{"my": "answers"}'
    beside = list((work / "labs").glob("01_intro.updated-*.ipynb"))
    assert len(beside) == 1 and beside[0].read_text() == '{"v": 2}'
    assert "kept your 01_intro.ipynb" in actions[0]
    assert workfolder.sync_labs(shipped, work) == []


def test_unedited_lab_from_an_older_image_is_not_overwritten_either(shipped, tmp_path):
    work = tmp_path / "work"
    workfolder.sync_labs(shipped, work)
    (shipped / "02_modules.ipynb").write_text('{"v": 2}')
    workfolder.sync_labs(shipped, work)
    assert (work / "labs" / "02_modules.ipynb").read_text() == '{"v": 1}'


def test_deleting_a_lab_brings_back_a_fresh_copy(shipped, tmp_path):
    work = tmp_path / "work"
    workfolder.sync_labs(shipped, work)
    (work / "labs" / "01_intro.ipynb").unlink()
    assert workfolder.sync_labs(shipped, work) == ["added 01_intro.ipynb"]


def test_lost_manifest_does_not_overwrite_edits(shipped, tmp_path):
    work = tmp_path / "work"
    workfolder.sync_labs(shipped, work)
    (work / "labs" / "01_intro.ipynb").write_text('{"my": "answers"}')
    (work / "labs" / workfolder.MANIFEST_NAME).unlink()
    workfolder.sync_labs(shipped, work)
    assert (work / "labs" / "01_intro.ipynb").read_text() == '{"my": "answers"}'
    manifest = json.loads((work / "labs" / workfolder.MANIFEST_NAME).read_text())
    assert set(manifest) == {"01_intro.ipynb", "02_modules.ipynb"}


def test_full_disk_reports_and_still_succeeds(shipped, tmp_path, capsys, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(workfolder.shutil, "copyfile", disk_full)
    work = tmp_path / "work"
    assert workfolder.main(["--labs", str(shipped), "--work", str(work)]) == 0
    err = capsys.readouterr().err
    assert "No space left on device" in err and "free some space" in err
    assert list((work / "labs").iterdir()) == []
