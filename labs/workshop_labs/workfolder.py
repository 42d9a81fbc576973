"""Give each attendee their own copy of the labs, and never overwrite it.

Runs at every container start, before the Jupyter server. A lab the attendee does not have is
copied into `~/work/labs/`. A lab they have is left alone, even when the image ships a newer
version: that version is put beside it as `NAME.updated-HASH.ipynb`. Deleting a lab and
restarting the server brings back a fresh copy. A manifest remembers which version of each
lab was delivered, so an image upgrade can be told apart from the attendee's own edits.

Usage: python -m workshop_labs.workfolder --labs /opt/workshop/labs --work ~/work
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

MANIFEST_NAME = ".workshop-labs.json"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy so that a full disk or a killed container never leaves half a notebook."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_json_atomically(data: dict, target: Path) -> None:
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(temporary, target)


def sync_labs(shipped_dir: Path, work_dir: Path) -> list[str]:
    """Bring `work_dir/labs` up to date with `shipped_dir`; return what was done, per lab."""
    labs_dir = work_dir / "labs"
    labs_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = labs_dir / MANIFEST_NAME
    try:
        delivered = json.loads(manifest_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        delivered = {}

    actions = []
    for shipped in sorted(shipped_dir.glob("*.ipynb")):
        digest = _digest(shipped)
        target = labs_dir / shipped.name
        if not target.exists():
            _copy_atomically(shipped, target)
            actions.append(f"added {target.name}")
        elif delivered.get(shipped.name, _digest(target)) != digest:
            beside = target.with_name(f"{target.stem}.updated-{digest[:8]}.ipynb")
            if not beside.exists():
                _copy_atomically(shipped, beside)
                actions.append(f"kept your {target.name}; the new version is {beside.name}")
        delivered[shipped.name] = digest
    _write_json_atomically(delivered, manifest_path)
    return actions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labs", type=Path, required=True, help="the image's built notebooks")
    parser.add_argument("--work", type=Path, required=True, help="the attendee's work folder")
    args = parser.parse_args(argv)
    try:
        for action in sync_labs(args.labs, args.work):
            print(f"labs: {action}")
    except OSError as error:
        # The server must still start: the attendee's files are untouched, and they can
        # free space and restart to get the missing labs.
        print(
            f"labs: could not update {args.work / 'labs'}: {error.strerror or error}. "
            "Your existing files are untouched; free some space (or ask the instructor) "
            "and restart your server to get the missing labs.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
