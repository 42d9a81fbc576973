import hashlib
import itertools
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from logging import WARNING
from pathlib import Path

import pytest

from workshop_labs import workfolder

ROOT = Path(__file__).resolve().parents[2]
START_SCRIPT = ROOT / "docker" / "lab" / "start-workshop.sh"
# The attendee of the lab image (jovyan); as root, the seeding step is run as them, so that
# permissions apply as they do in the container.
ATTENDEE_UID, ATTENDEE_GID = 1000, 100
# Long enough for a slow CI machine, short enough that a hang fails the test, not the run.
HOSTILE = pytest.mark.timeout(30)
FAST_SECONDS = 5


@pytest.fixture
def shipped(tmp_path):
    folder = tmp_path / "image-labs"
    folder.mkdir()
    (folder / "01_intro.ipynb").write_text('{"v": 1}')
    (folder / "02_modules.ipynb").write_text('{"v": 1}')
    return folder


@pytest.fixture
def labs(tmp_path):
    """The attendee's labs folder, before their first start."""
    folder = tmp_path / "work" / "labs"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def outside(tmp_path):
    """A file outside the work folder that a symlink in it points at."""
    target = tmp_path / "outside" / "precious.txt"
    target.parent.mkdir()
    target.write_bytes(b"not yours to overwrite\n")
    return target


def warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= WARNING]


def seed_quickly(shipped, work):
    started = time.monotonic()
    actions = workfolder.sync_labs(shipped, work)
    assert time.monotonic() - started < FAST_SECONDS
    return actions


def test_first_start_copies_every_lab(shipped, tmp_path):
    work = tmp_path / "work"
    actions = workfolder.sync_labs(shipped, work)
    assert sorted(p.name for p in (work / "labs").glob("*.ipynb")) == [
        "01_intro.ipynb",
        "02_modules.ipynb",
    ]
    assert len(actions) == 2
    assert stat.S_IMODE((work / "labs" / "01_intro.ipynb").stat().st_mode) & 0o444 == 0o444


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


START_PAGE = "START_HERE.md"


def test_the_start_page_is_delivered_with_the_labs(shipped, tmp_path):
    (shipped / START_PAGE).write_text("# Welcome\n")
    work = tmp_path / "work"
    actions = workfolder.sync_labs(shipped, work)
    assert f"added {START_PAGE}" in actions
    assert (work / "labs" / START_PAGE).read_text() == "# Welcome\n"
    assert START_PAGE in json.loads((work / "labs" / workfolder.MANIFEST_NAME).read_text())


def test_an_edited_start_page_is_kept_and_a_newer_one_appears_beside_it(shipped, tmp_path):
    (shipped / START_PAGE).write_text("# Welcome\n")
    work = tmp_path / "work"
    workfolder.sync_labs(shipped, work)
    mine = work / "labs" / START_PAGE
    mine.write_text("# Welcome\nmy notes\n")
    (shipped / START_PAGE).write_text("# Welcome, day two\n")
    actions = workfolder.sync_labs(shipped, work)
    assert mine.read_text() == "# Welcome\nmy notes\n"
    # Still a Markdown file, so it opens rendered like the page itself.
    (beside,) = (work / "labs").glob("START_HERE.updated-*.md")
    assert beside.read_text() == "# Welcome, day two\n"
    assert actions == [f"kept your {START_PAGE}; the new version is {beside.name}"]


def test_seeding_imports_only_the_standard_library():
    # Every server start runs this step; torch alone takes seconds to import.
    probe = "import sys, workshop_labs.workfolder; print(sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "'torch'" not in loaded and "'numpy'" not in loaded
    assert "'workshop_labs.workfolder'" in loaded


# --- a hostile or broken work folder -----------------------------------------------------

DEEP_JSON = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@HOSTILE
@pytest.mark.parametrize(
    "content",
    [b"[]", b"null", b'"x"', b"42", b"1" * 10_000, DEEP_JSON, b"\xff\xfe{\x80}", b'{"a": 1}', b""],
    ids=["list", "null", "string", "number", "huge-int", "deep", "not-utf8", "no-hashes", "empty"],
)
def test_malformed_manifest_is_set_aside_and_rebuilt(shipped, labs, content, caplog):
    (labs / workfolder.MANIFEST_NAME).write_bytes(content)
    (labs / "01_intro.ipynb").write_text('{"my": "answers"}')
    seed_quickly(shipped, labs.parent)
    (aside,) = labs.glob(f"{workfolder.MANIFEST_NAME}.broken-*")
    assert aside.read_bytes() == content
    assert json.loads((labs / workfolder.MANIFEST_NAME).read_text()).keys() == {
        "01_intro.ipynb",
        "02_modules.ipynb",
    }
    assert (labs / "01_intro.ipynb").read_text() == '{"my": "answers"}'
    assert (labs / "02_modules.ipynb").exists()
    (warning,) = warnings(caplog)
    assert f"set aside the lab manifest .workshop-labs.json as {aside.name}" in warning


@HOSTILE
def test_a_manifest_set_aside_twice_keeps_both(shipped, labs):
    for _ in range(2):
        (labs / workfolder.MANIFEST_NAME).write_text("[]")
        seed_quickly(shipped, labs.parent)
    assert len(list(labs.glob(f"{workfolder.MANIFEST_NAME}.broken-*"))) == 2


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_socket(path: Path) -> None:
    # A relative name: the absolute path of a pytest folder may be longer than a socket allows.
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(path.name)
    finally:
        os.chdir(cwd)


def make_folder(path: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("kept")


def make_endless_device(path: Path) -> None:
    # Like /dev/zero: hashing it would never end.
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 5))


def make_link_to_outside(path: Path) -> None:
    path.symlink_to(path.parents[2] / "outside" / "precious.txt")


def make_dangling_link(path: Path) -> None:
    path.symlink_to(path.parents[2] / "outside" / "not-there-yet.txt")


NOT_REGULAR_FILES = [
    pytest.param(make_fifo, "a FIFO", id="fifo"),
    pytest.param(make_socket, "a socket", id="socket"),
    pytest.param(make_folder, "a folder", id="folder"),
    # mknod needs root, as the end-to-end tests do (README, "Test it").
    pytest.param(make_endless_device, "a device", id="device"),
    pytest.param(make_link_to_outside, "a symlink", id="symlink"),
    pytest.param(make_dangling_link, "a symlink", id="dangling-symlink"),
]


@HOSTILE
@pytest.mark.parametrize("make, kind", NOT_REGULAR_FILES)
def test_a_lab_name_that_is_not_a_regular_file_is_left_alone(
    shipped, labs, outside, make, kind, caplog
):
    lab = labs / "01_intro.ipynb"
    make(lab)
    before = os.lstat(lab)
    actions = seed_quickly(shipped, labs.parent)
    assert actions == ["added 02_modules.ipynb"]
    assert (os.lstat(lab).st_ino, os.lstat(lab).st_mode) == (before.st_ino, before.st_mode)
    assert outside.read_bytes() == b"not yours to overwrite\n"
    assert not (outside.parent / "not-there-yet.txt").exists()
    assert not list(labs.glob("01_intro.updated-*"))
    (warning,) = warnings(caplog)
    assert f"left 01_intro.ipynb alone: it is {kind}, not a regular file" in warning


@HOSTILE
@pytest.mark.parametrize("make, kind", NOT_REGULAR_FILES)
def test_a_manifest_that_is_not_a_regular_file_is_set_aside(
    shipped, labs, outside, make, kind, caplog
):
    manifest = labs / workfolder.MANIFEST_NAME
    make(manifest)
    before = os.lstat(manifest)
    seed_quickly(shipped, labs.parent)
    (aside,) = labs.glob(f"{workfolder.MANIFEST_NAME}.broken-*")
    assert (os.lstat(aside).st_ino, os.lstat(aside).st_mode) == (before.st_ino, before.st_mode)
    assert stat.S_ISREG(os.lstat(manifest).st_mode)
    assert outside.read_bytes() == b"not yours to overwrite\n"
    assert not (outside.parent / "not-there-yet.txt").exists()
    (warning,) = warnings(caplog)
    assert f"and rebuilt it: it is {kind}, not a regular file" in warning


NEW_VERSION = b'{"v": 2}'
BESIDE = f"01_intro.updated-{hashlib.sha256(NEW_VERSION).hexdigest()[:8]}.ipynb"


@HOSTILE
@pytest.mark.parametrize("name", [".workshop-labs.json.tmp", BESIDE], ids=["old-temp", "beside"])
@pytest.mark.parametrize("make", [make_link_to_outside, make_dangling_link])
def test_links_at_names_the_step_writes_are_never_followed(shipped, labs, outside, name, make):
    make(labs / name)
    work = labs.parent
    seed_quickly(shipped, work)
    (labs / "01_intro.ipynb").write_text('{"my": "answers"}')
    (shipped / "01_intro.ipynb").write_bytes(NEW_VERSION)
    seed_quickly(shipped, work)
    assert (labs / name).is_symlink()
    assert outside.read_bytes() == b"not yours to overwrite\n"
    assert not (outside.parent / "not-there-yet.txt").exists()
    assert json.loads((labs / workfolder.MANIFEST_NAME).read_text())


@HOSTILE
def test_a_link_at_the_next_temporary_name_is_skipped(shipped, labs, outside, monkeypatch):
    # The first two names tried are taken by a link; the writes must move on to fresh ones.
    names = itertools.chain(["planted", "planted"], (f"fresh{n}" for n in itertools.count()))
    monkeypatch.setattr(workfolder.secrets, "token_hex", lambda _: next(names))
    (labs / f"{workfolder.TEMPORARY_PREFIX}planted").symlink_to(outside)
    workfolder.sync_labs(shipped, labs.parent)
    assert outside.read_bytes() == b"not yours to overwrite\n"
    assert (labs / f"{workfolder.TEMPORARY_PREFIX}planted").is_symlink()
    assert (labs / "01_intro.ipynb").read_text() == '{"v": 1}'


@HOSTILE
def test_a_labs_folder_that_is_a_link_is_not_followed(shipped, tmp_path, caplog):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "labs").symlink_to(elsewhere)
    assert seed_quickly(shipped, tmp_path / "work") == []
    assert list(elsewhere.iterdir()) == []
    (warning,) = warnings(caplog)
    assert "labs is a symlink, not a folder" in warning


def test_leftovers_of_a_killed_step_are_removed(shipped, labs):
    (labs / f"{workfolder.TEMPORARY_PREFIX}0123").write_text('{"half": ')
    workfolder.sync_labs(shipped, labs.parent)
    assert not list(labs.glob(f"{workfolder.TEMPORARY_PREFIX}*"))


# --- permissions and space, as the attendee in the container meets them -----------------


@pytest.fixture
def attendee_tmp():
    """A folder the attendee's uid owns, outside pytest's private (0700) temporary root."""
    folder = Path(tempfile.mkdtemp(prefix="workfolder-test-"))
    if os.geteuid() == 0:
        os.chown(folder, ATTENDEE_UID, ATTENDEE_GID)
    yield folder
    subprocess.run(["chmod", "-R", "u+rwX", folder], check=True)
    subprocess.run(["rm", "-rf", folder], check=True)


def as_attendee(*command: str) -> list[str]:
    if os.geteuid() != 0:
        return list(command)
    drop_root = ["setpriv", f"--reuid={ATTENDEE_UID}", f"--regid={ATTENDEE_GID}"]
    return [*drop_root, "--clear-groups", *command]


def seeding_command(shipped: Path, work: Path) -> list[str]:
    """The container's step, run the way start-workshop runs it."""
    step = [sys.executable, "-m", "workshop_labs.workfolder"]
    return [*step, "--labs", str(shipped), "--work", str(work)]


def run_step(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    return result


def attendee_files(attendee_tmp: Path) -> tuple[Path, Path]:
    shipped = attendee_tmp / "image-labs"
    labs = attendee_tmp / "work" / "labs"
    run_step(as_attendee("mkdir", "-p", str(shipped), str(labs)))
    for name in ("01_intro.ipynb", "02_modules.ipynb"):
        run_step(as_attendee("sh", "-c", 'echo \'{"v": 1}\' > "$0"', str(shipped / name)))
    return shipped, labs


@pytest.fixture
def seed_as_attendee(attendee_tmp):
    """Run the container's step as the attendee, the way the image does: the package where they
    can read it (the image installs it for every user), run by the interpreter itself. Neither
    this checkout nor its virtual environment need be readable by them: a clone in a private
    (0700) home folder is not."""
    step = attendee_tmp / "step"
    shutil.copytree(
        Path(workfolder.__file__).parent,
        step / "workshop_labs",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    run_step(["chmod", "-R", "a+rX", str(step)])
    # The interpreter a virtual environment was made from: the environment itself may live in
    # the checkout. -E -s: only the standard library and the copy (the working folder) count.
    python = getattr(sys, "_base_executable", sys.executable)
    can_run = subprocess.run(as_attendee(python, "-E", "-s", "-c", "import json, logging"))
    # A failure, not a skip: these tests are the proof that the step works as the attendee.
    assert can_run.returncode == 0, (
        f"the attendee's uid cannot run {python}: install Python where all users can run it"
    )

    def seed(shipped: Path, work: Path) -> subprocess.CompletedProcess:
        step_command = [python, "-E", "-s", "-m", "workshop_labs.workfolder"]
        command = [*step_command, "--labs", str(shipped), "--work", str(work)]
        return run_step(as_attendee(*command), cwd=step)

    return seed


def test_the_attendees_step_runs_the_package_it_was_given(seed_as_attendee, attendee_tmp):
    """The copy runs, not a checkout the attendee may be unable to read."""
    shipped, labs = attendee_files(attendee_tmp)
    step_package = attendee_tmp / "step" / "workshop_labs"
    (step_package / "workfolder.py").write_text("print('the copy ran')\n")
    assert seed_as_attendee(shipped, labs.parent).stdout == "the copy ran\n"


def test_unreadable_lab_and_manifest_are_left_alone(attendee_tmp, seed_as_attendee):
    shipped, labs = attendee_files(attendee_tmp)
    seed_as_attendee(shipped, labs.parent)
    (labs / "01_intro.ipynb").chmod(0)
    (labs / workfolder.MANIFEST_NAME).chmod(0)
    (labs / "02_modules.ipynb").unlink()
    result = seed_as_attendee(shipped, labs.parent)
    assert "left 01_intro.ipynb alone: it cannot be read (Permission denied)" in result.stderr
    assert "labs: set aside the lab manifest .workshop-labs.json as" in result.stderr
    assert "rebuilt it: it cannot be read (Permission denied)" in result.stderr
    assert "labs: added 02_modules.ipynb" in result.stderr
    assert stat.S_IMODE((labs / "01_intro.ipynb").stat().st_mode) == 0
    (aside,) = labs.glob(f"{workfolder.MANIFEST_NAME}.broken-*")
    assert stat.S_IMODE(aside.stat().st_mode) == 0


def test_read_only_labs_folder_is_reported(attendee_tmp, seed_as_attendee):
    shipped, labs = attendee_files(attendee_tmp)
    run_step(as_attendee("chmod", "a-w", str(labs)))
    result = seed_as_attendee(shipped, labs.parent)
    (line,) = result.stderr.splitlines()
    assert "could not write 01_intro.ipynb, 02_modules.ipynb in" in line
    assert "Permission denied" in line
    assert list(labs.iterdir()) == []


def seed_in_own_mount_namespace(mount_script: str, shipped: Path, work: Path):
    """Seed `work` after `mount_script` (given the folder as $0) changed what is mounted there,
    in a mount namespace of its own, so the machine's mounts stay as they are."""
    return run_step(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", mount_script, str(work)]
        + seeding_command(shipped, work)
    )


def test_read_only_work_volume_is_reported(shipped, tmp_path):
    # A read-only bind mount in a mount namespace of its own: what a read-only volume gives.
    work = tmp_path / "work"
    (work / "labs").mkdir(parents=True)
    mount_read_only = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    result = seed_in_own_mount_namespace(mount_read_only, shipped, work)
    (line,) = result.stderr.splitlines()
    assert "Read-only file system" in line and "restart your server" in line
    assert list((work / "labs").iterdir()) == []


def test_full_work_volume_is_reported(tmp_path):
    shipped = tmp_path / "image-labs"
    shipped.mkdir()
    (shipped / "01_intro.ipynb").write_bytes(b"{}" + b" " * 100_000)
    work = tmp_path / "work"
    work.mkdir()
    # A 16 KiB disk in a mount namespace of its own; what is left in it is listed on stdout.
    mount_small_disk = 'mount -t tmpfs -o size=16k tmpfs "$0" && "$@" && ls -A "$0/labs"'
    result = seed_in_own_mount_namespace(mount_small_disk, shipped, work)
    (line,) = result.stderr.splitlines()
    assert "could not write 01_intro.ipynb" in line and "No space left on device" in line
    assert "free some space" in line
    assert result.stdout == ""


# --- the start script --------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "seeding, note",
    [
        ("echo Traceback >&2; exit 1", "failed (exit 1, see above); starting the server anyway"),
        ("kill -SEGV $$", "failed (exit 139, see above); starting the server anyway"),
        # The script's own bound: this test takes a minute.
        ("exec sleep 600", "took over 60 s and was stopped; starting the server anyway"),
    ],
    ids=["crash", "killed", "hung"],
)
def test_start_script_starts_the_server_when_seeding_fails(tmp_path, seeding, note):
    # Stand-ins for the image's python and server, so only the script's own logic runs.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f"#!/bin/sh\n{seeding}\n")
    (bin_dir / "jupyterhub-singleuser").write_text('#!/bin/sh\necho "server started: $*"\n')
    for stand_in in bin_dir.iterdir():
        stand_in.chmod(0o755)
    result = subprocess.run(
        ["sh", str(START_SCRIPT), "--port=8888"],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0
    assert result.stdout == "server started: --port=8888\n"
    assert f"labs: copying the labs into ~/work/labs {note}" in result.stderr


# ---- the instructor resets one lab ----------------------------------------------------------


def test_resetting_a_lab_keeps_the_attendees_copy_as_a_backup_and_delivers_a_fresh_one(
    shipped, labs
):
    workfolder.sync_labs(shipped, labs.parent)
    (labs / "02_modules.ipynb").write_text('{"v": "my edits"}')
    actions = workfolder.reset_lab(shipped, labs.parent, 2)
    (backup,) = labs.glob("02_modules.backup-*.ipynb")
    assert backup.read_text() == '{"v": "my edits"}'
    assert (labs / "02_modules.ipynb").read_text() == '{"v": 1}'
    assert actions == [f"kept your 02_modules.ipynb as {backup.name}", "added 02_modules.ipynb"]
    # Twice in the same second: a second backup, the first one untouched.
    (labs / "02_modules.ipynb").write_text('{"v": "again"}')
    workfolder.reset_lab(shipped, labs.parent, 2)
    assert sorted(p.read_text() for p in labs.glob("02_modules.backup-*.ipynb")) == [
        '{"v": "again"}',
        '{"v": "my edits"}',
    ]
    assert (labs / "01_intro.ipynb").read_text() == '{"v": 1}'  # other labs left alone


def test_resetting_a_lab_never_follows_a_link_at_its_name(shipped, labs, outside):
    (labs / "01_intro.ipynb").symlink_to(outside)
    workfolder.reset_lab(shipped, labs.parent, 1)
    (aside,) = labs.glob("01_intro.backup-*.ipynb")
    assert aside.is_symlink() and outside.read_bytes() == b"not yours to overwrite\n"
    assert (labs / "01_intro.ipynb").read_text() == '{"v": 1}'


def test_resetting_a_lab_the_image_lacks_says_so_and_changes_nothing(shipped, labs, capsys):
    workfolder.sync_labs(shipped, labs.parent)
    before = sorted(p.name for p in labs.iterdir())
    code = workfolder.main(["--labs", str(shipped), "--work", str(labs.parent), "--reset-lab", "9"])
    assert code == 1
    assert "lab 9 was not reset: the image has no lab 9" in capsys.readouterr().err
    assert sorted(p.name for p in labs.iterdir()) == before
