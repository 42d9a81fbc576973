"""Rebuild the help add-on's page (lab-extension/labextension/) from its TypeScript source.

    python3 scripts/build_lab_extension.py           # rebuild and replace the kept files
    python3 scripts/build_lab_extension.py --check   # only say whether they match the source

The lab image copies the built files that the repository keeps, so that a first
`docker compose up` needs neither Node nor two minutes of npm. After a change under
lab-extension/ (src, style, package.json, yarn.lock), run this script and commit what it
writes; the tests run it with --check and fail while the kept files are stale. The build
runs in Docker (docker/lab-extension/Dockerfile) from BASE_IMAGE, as the images do.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "hub"))

from workshop_hub.settings import COMPOSE_SETTINGS  # noqa: E402

SOURCE = REPO_ROOT / "lab-extension"
# Where the build writes the page, below the source folder: package.json says.
OUTPUT_DIR = json.loads((SOURCE / "package.json").read_text())["jupyterlab"]["outputDir"]
KEPT = SOURCE / OUTPUT_DIR
DOCKERFILE = REPO_ROOT / "docker" / "lab-extension" / "Dockerfile"
IMAGE = "workshop-lab-extension-build:latest"
# The Dockerfile's copy of the source folder.
BUILT_IN_IMAGE = f"/opt/workshop/lab-extension/{OUTPUT_DIR}"


class BuildFailed(RuntimeError):
    pass


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build(into: Path) -> Path:
    """Build the extension in Docker and copy it to ``into``; returns the copied folder."""
    base_image = os.environ.get("BASE_IMAGE") or COMPOSE_SETTINGS["BASE_IMAGE"][0]
    command = [
        "docker", "build", "-f", str(DOCKERFILE), "--build-arg", f"BASE_IMAGE={base_image}",
        "-t", IMAGE, str(REPO_ROOT),
    ]  # fmt: skip
    say(f"building the help add-on from lab-extension/ on {base_image} (first time: minutes)")
    # The classic builder, as docker-compose 1.29 uses: its output is one line per step.
    environment = {**os.environ, "DOCKER_BUILDKIT": "0"}
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith("Step "):
            say(f"  {line.rstrip()[:110]}")
    if process.wait() != 0:
        raise BuildFailed(
            "the build of the help add-on failed; its last lines:\n" + "".join(output[-30:])
        )
    # A container that never starts, only to copy from (a base image may name no command).
    container = subprocess.run(
        ["docker", "create", IMAGE, "true"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        subprocess.run(
            ["docker", "cp", f"{container}:{BUILT_IN_IMAGE}", str(into)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True)
    return into


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def differences(built: Path, kept: Path) -> list[str]:
    """What differs between a fresh build and the kept files, one line per file."""
    built_files = _files(built)
    kept_files = _files(kept) if kept.is_dir() else set()
    lines = [f"missing: {name}" for name in sorted(built_files - kept_files)]
    lines += [f"no longer built: {name}" for name in sorted(kept_files - built_files)]
    lines += [
        f"changed: {name}"
        for name in sorted(built_files & kept_files)
        if not filecmp.cmp(built / name, kept / name, shallow=False)
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only compare a fresh build with the kept files"
    )
    options = parser.parse_args(argv)
    kept_name = KEPT.relative_to(REPO_ROOT)
    with tempfile.TemporaryDirectory() as folder:
        try:
            built = build(Path(folder) / "labextension")
        except BuildFailed as error:
            say(f"error: {error}")
            return 2
        except (subprocess.CalledProcessError, FileNotFoundError) as error:
            detail = getattr(error, "stderr", None) or ""
            say(f"error: {error} {detail}\nIs Docker running? (`docker info`)")
            return 2
        changes = differences(built, KEPT)
        if not changes:
            say(f"{kept_name} matches its source")
            return 0
        if options.check:
            say(
                f"{kept_name} does not match its source (lab-extension/):\n  "
                + "\n  ".join(changes)
                + "\nRun `python3 scripts/build_lab_extension.py` and commit what it writes."
            )
            return 1
        shutil.rmtree(KEPT, ignore_errors=True)
        shutil.copytree(built, KEPT)
        say(f"{kept_name} rebuilt: " + "; ".join(changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
