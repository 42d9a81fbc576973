"""Give each attendee their own copy of the labs, and never overwrite it.

Runs at every container start, before the Jupyter server. Every file of the image's labs
folder (the seven notebooks and the start page, START_HERE.md, that JupyterLab opens first)
that the attendee does not have is copied into `~/work/labs/`. A file they have is left
alone, even when the image ships a newer version: that version is put beside it as
`NAME.updated-HASH.ipynb` (or `.md`). Deleting a lab and restarting the server brings back a
fresh copy. A manifest remembers which version of each file was delivered, so an image
upgrade can be told apart from the attendee's own edits.

The work folder belongs to the attendee, who may have put anything in it, so nothing in it
may stop their server from starting: a manifest that is not ours is set aside and rebuilt,
anything at a lab's name that is not a regular file is left alone, nothing is read or written
through a symlink, and a full or read-only folder is reported and skipped. Only the standard
library is imported, so this step adds well under a second to a server start.

Usage: python -m workshop_labs.workfolder --labs /opt/workshop/labs --work ~/work
       ... --reset-lab 3   (the instructor's console: lab 3 afresh, the old copy kept)
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import itertools
import json
import logging
import os
import secrets
import stat
import sys
import time
from pathlib import Path

MANIFEST_NAME = ".workshop-labs.json"
TEMPORARY_PREFIX = ".incoming-"
# A real manifest is a few hundred bytes; a file far larger was not written by us.
MANIFEST_MAX_BYTES = 1 << 20

# Never follow a link, never block: a FIFO that appears after the type check must not hang
# the open itself.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# O_EXCL: whatever already sits at the name (a link, a FIFO, a leftover) fails the create
# instead of receiving the write.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

log = logging.getLogger(__name__)


class LeftAlone(Exception):
    """An entry of the work folder that seeding must neither read nor replace."""


def _kind(mode: int) -> str:
    kinds = {
        stat.S_IFLNK: "a symlink",
        stat.S_IFDIR: "a folder",
        stat.S_IFIFO: "a FIFO",
        stat.S_IFSOCK: "a socket",
        stat.S_IFCHR: "a device",
        stat.S_IFBLK: "a device",
    }
    return kinds.get(stat.S_IFMT(mode), "not a regular file")


class _Folder:
    """A folder opened once without following links; every name is resolved inside it, so a
    symlink can never redirect a read or a write to somewhere else."""

    def __init__(self, fd: int):
        self.fd = fd

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open_regular(self, name: str) -> int:
        """A read-only descriptor of `name`; LeftAlone unless it is a regular file."""
        info = self.lstat(name)
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise LeftAlone(f"it is {_kind(info.st_mode)}, not a regular file")
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=self.fd)
        except PermissionError as error:
            raise LeftAlone(f"it cannot be read ({error.strerror})") from error
        except OSError as error:
            if error.errno == errno.ELOOP:  # a link swapped in after the check
                raise LeftAlone("it is a symlink, not a regular file") from error
            raise
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # swapped between the check and the open
            os.close(fd)
            raise LeftAlone(f"it is {_kind(mode)}, not a regular file")
        return fd

    def digest(self, name: str) -> str:
        with os.fdopen(self.open_regular(name), "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()

    def write(self, name: str, data: bytes) -> None:
        """All or nothing: a full disk or a killed container never leaves half a notebook, and
        a link at `name` is replaced, never followed."""
        temporary, fd = self._create_temporary()
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.fd)
            raise

    def _create_temporary(self) -> tuple[str, int]:
        for _ in range(100):
            name = f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}"
            with contextlib.suppress(FileExistsError):
                return name, os.open(name, _CREATE_FLAGS, 0o644, dir_fd=self.fd)
        raise FileExistsError("no free name for a temporary file in the labs folder")

    def set_aside(self, name: str, tag: str = "broken") -> str:
        """Rename `name` (whatever it is) to an unused timestamped name; nothing is deleted.

        A notebook keeps its `.ipynb` ending (`03_x.backup-….ipynb`), so it still opens in
        JupyterLab; anything else gets the tag at the end (`.workshop-labs.json.broken-…`).
        """
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        stem, ending = (
            (name.removesuffix(".ipynb"), ".ipynb") if name.endswith(".ipynb") else (name, "")
        )
        for attempt in itertools.count():
            aside = f"{stem}.{tag}-{stamp}" + (f"-{attempt}" if attempt else "") + ending
            if self.lstat(aside) is None:
                os.rename(name, aside, src_dir_fd=self.fd, dst_dir_fd=self.fd)
                return aside

    def remove_leftover_temporaries(self) -> None:
        """Temporary files of a seeding step that was killed (the start script's timeout)."""
        for entry in os.scandir(self.fd):
            if entry.name.startswith(TEMPORARY_PREFIX) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.name, dir_fd=self.fd)


def _read_manifest(folder: _Folder) -> tuple[dict[str, str], str | None]:
    """The delivered hashes, or why the manifest cannot be trusted."""
    try:
        with os.fdopen(folder.open_regular(MANIFEST_NAME), "rb") as file:
            raw = file.read(MANIFEST_MAX_BYTES + 1)
    except FileNotFoundError:
        return {}, None
    except LeftAlone as reason:
        return {}, str(reason)
    except OSError as error:
        return {}, f"it cannot be read ({error.strerror or error})"
    if len(raw) > MANIFEST_MAX_BYTES:
        return {}, f"it is larger than {MANIFEST_MAX_BYTES >> 20} MiB"
    try:
        delivered = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return {}, "it is not UTF-8 text"
    except RecursionError:
        return {}, "it is JSON nested too deeply"
    except ValueError as error:
        return {}, f"it is not valid JSON ({error})"
    if not isinstance(delivered, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in delivered.items()
    ):
        return {}, "it is JSON but not a table of lab hashes"
    return delivered, None


def _load_manifest(folder: _Folder) -> dict[str, str] | None:
    """The delivered hashes; None when a broken manifest could not be set aside (and so must
    not be replaced either)."""
    delivered, problem = _read_manifest(folder)
    if problem is None:
        return delivered
    try:
        aside = folder.set_aside(MANIFEST_NAME)
    except OSError as error:
        log.warning(
            "could not set aside the lab manifest %s (%s): %s. Labs you have are kept, and "
            "newer versions may not appear beside them",
            MANIFEST_NAME,
            error.strerror or error,
            problem,
        )
        return None
    log.warning(
        "set aside the lab manifest %s as %s and rebuilt it: %s", MANIFEST_NAME, aside, problem
    )
    return {}


def _seed_lab(
    folder: _Folder, name: str, shipped: bytes, digest: str, delivered: dict[str, str]
) -> str | None:
    """Deliver one lab (or the start page); what was done, if anything."""
    if folder.lstat(name) is None:
        folder.write(name, shipped)
        return f"added {name}"
    # Without a manifest entry (first start after an upgrade of this step, or a manifest set
    # aside), an edited copy gets the shipped version beside it.
    mine = folder.digest(name)
    if delivered.get(name, mine) == digest:
        return None
    stem, ending = os.path.splitext(name)
    beside = f"{stem}.updated-{digest[:8]}{ending}"
    if folder.lstat(beside) is not None:
        return None
    folder.write(beside, shipped)
    return f"kept your {name}; the new version is {beside}"


def _open_labs_folder(work_dir: Path) -> _Folder | None:
    work_dir.mkdir(parents=True, exist_ok=True)
    work_fd = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        info = os.stat("labs", dir_fd=work_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.mkdir("labs", dir_fd=work_fd)
        info = os.stat("labs", dir_fd=work_fd, follow_symlinks=False)
    try:
        if not stat.S_ISDIR(info.st_mode):
            log.warning(
                "%s is %s, not a folder: rename it and restart your server to get the labs",
                work_dir / "labs",
                _kind(info.st_mode),
            )
            return None
        return _Folder(os.open("labs", _FOLDER_FLAGS, dir_fd=work_fd))
    finally:
        os.close(work_fd)


def sync_labs(shipped_dir: Path, work_dir: Path) -> list[str]:
    """Bring `work_dir/labs` up to date with `shipped_dir`; return what was done, per file.

    Problems are logged, one line each, and never raised for a single file: the others are
    still delivered.
    """
    folder = _open_labs_folder(work_dir)
    if folder is None:
        return []
    try:
        folder.remove_leftover_temporaries()
        delivered = _load_manifest(folder)
        manifest = dict(delivered or {})
        actions, not_written, write_error = [], [], None
        for shipped in sorted(path for path in shipped_dir.iterdir() if path.is_file()):
            data = shipped.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            try:
                action = _seed_lab(folder, shipped.name, data, digest, manifest)
            except LeftAlone as reason:
                log.warning(
                    "left %s alone: %s. Rename or delete it and restart your server to get a "
                    "fresh copy",
                    shipped.name,
                    reason,
                )
                continue
            except OSError as error:
                not_written.append(shipped.name)
                write_error = error
                continue
            manifest[shipped.name] = digest
            if action:
                actions.append(action)
        if delivered is not None and manifest != delivered:
            try:
                folder.write(MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True).encode())
            except OSError as error:
                not_written.append(MANIFEST_NAME)
                write_error = error
        if write_error is not None:
            log.warning(
                "could not write %s in %s: %s. Your existing files are untouched; free some "
                "space (or ask the instructor) and restart your server to get the missing labs",
                ", ".join(not_written),
                work_dir / "labs",
                write_error.strerror or write_error,
            )
        return actions
    finally:
        os.close(folder.fd)


def reset_lab(shipped_dir: Path, work_dir: Path, lab: int) -> list[str]:
    """Start lab `lab` afresh for the attendee: their copy is set aside as a dated backup beside
    it (never deleted), and the image's version is delivered in its place."""
    shipped = sorted(shipped_dir.glob(f"{lab:02d}_*.ipynb"))
    if len(shipped) != 1:
        raise LabNotFound(f"the image has no lab {lab} in {shipped_dir}")
    name = shipped[0].name
    folder = _open_labs_folder(work_dir)
    if folder is None:
        raise LabNotFound(f"{work_dir / 'labs'} is not a folder")
    try:
        kept = [f"kept your {name} as {folder.set_aside(name, tag='backup')}"]
    except FileNotFoundError:
        kept = []  # nothing to keep: they had deleted it
    finally:
        os.close(folder.fd)
    return kept + sync_labs(shipped_dir, work_dir)


class LabNotFound(Exception):
    """The lab to reset is not in the image, or the work folder has no labs folder."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labs", type=Path, required=True, help="the image's built notebooks")
    parser.add_argument("--work", type=Path, required=True, help="the attendee's work folder")
    parser.add_argument(
        "--reset-lab", type=int, metavar="N", help="set lab N aside as a backup, get a fresh copy"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(format="labs: %(message)s", level=logging.INFO)
    if args.reset_lab is not None:
        try:
            for action in reset_lab(args.labs, args.work, args.reset_lab):
                print(action)
        except (LabNotFound, OSError) as error:
            print(f"lab {args.reset_lab} was not reset: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        for action in sync_labs(args.labs, args.work):
            log.info("%s", action)
    except OSError as error:
        # The server must still start: the attendee's files are untouched, and they can
        # free space and restart to get the missing labs.
        log.warning(
            "could not update %s: %s. Your existing files are untouched; free some space "
            "(or ask the instructor) and restart your server to get the missing labs",
            args.work / "labs",
            error.strerror or error,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
