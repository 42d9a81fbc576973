"""Carry the workshop to a venue without internet: one archive holding the built images and
this project's files, verified before anything in it is believed.

    scripts/venue-bundle.sh save [FILE]                    # where the images were built
    scripts/venue-bundle.sh load FILE [DIR] --digest HEX   # at the venue: check, load the
                                                           # images, unpack the project into
                                                           # DIR (default ./pytorch-workshop)

`save` ends by printing the bundle's digest (the SHA-256 of its checksum list). Carry the
digest apart from the bundle (a note, a message to yourself): the checksums travel inside the
bundle, so only a digest that did not travel with it shows that the bundle is the one saved.
`load` asks for the digest (or takes --digest) and refuses, loading nothing, when it differs,
when a checksum differs, when the bundle holds anything `save` never writes, or when an image
would bring a name other than its own.

The images are the ones docker-compose.yml names, with the settings of the environment and
.env (WORKSHOP_*_IMAGE): the hub and the CPU lab image must exist; the CUDA lab image and the
HTTPS proxy are carried when they were built. The project's files are the ones git tracks,
never .env (the event's secrets): the bundle carries .env.example, the template.

Needs Python 3.8 or newer (its standard library only) and Docker; `save` also needs Docker
Compose, which the README's set-up already has.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SUMS = "SHA256SUMS"
IMAGES = "IMAGES"
PROJECT_ARCHIVE = "project.tar.gz"
# The only names a bundle holds besides the three above: one file per image.
IMAGE_MEMBER = re.compile(r"images/[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.tar\.gz")
# An image name as docker-compose.yml gives one: [registry[:port]/]path[:tag].
IMAGE_REFERENCE = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
)
SUMS_LINE = re.compile(r"([0-9a-f]{64})  (.+)")
DIGEST = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20
PROGRESS_EVERY_S = 10
# Lists and image manifests are small; a bigger one is not what `save` or Docker writes.
SMALL_FILE_LIMIT = 1 << 20
PROJECT_LIMIT = 512 << 20
# The files of an image archive that name what `docker load` tags: Docker's manifest, its
# older `repositories` list, and an OCI layout's index.
DOCKER_MANIFEST = "manifest.json"
DOCKER_REPOSITORIES = "repositories"
OCI_INDEX = "index.json"
OCI_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
# Left behind when the project is not a git checkout (a project unpacked from a bundle):
# settings and secrets, virtualenvs, reports, attendees' exported work, caches, and TLS keys
# and certificates (the project has none of its own).
LEFT_BEHIND_AT_TOP = {".git", ".venv", "reports", "workshop-export"}
LEFT_BEHIND_ANYWHERE = {"__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}
LEFT_BEHIND_SUFFIXES = (".egg-info", ".pem", ".key")


class Refused(Exception):
    """A step that cannot go on; its message says why and what to do."""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def shown(name: str) -> str:
    """A name read from a bundle, printed without the control characters it may hold."""
    return ascii(name)


def human(size: float) -> str:
    unit = "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"


class Progress:
    """Says every 10 s how far a long step got: saving or loading one image takes minutes."""

    def __init__(self, total: int | None = None) -> None:
        self.total = total
        self.done = 0
        self.next_report = time.monotonic() + PROGRESS_EVERY_S

    def advance(self, count: int) -> None:
        self.reach(self.done + count)

    def reach(self, done: int) -> None:
        self.done = done
        if time.monotonic() >= self.next_report:
            self.next_report = time.monotonic() + PROGRESS_EVERY_S
            if self.total:
                say(f"      … {self.done * 100 // self.total}% read")
            else:
                say(f"      … {human(self.done)} written")


class HashingReader:
    """A file read once: its SHA-256 and the progress advance as the reader goes."""

    def __init__(self, stream, progress: Progress) -> None:
        self.stream = stream
        self.progress = progress
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha256.update(data)
        self.progress.advance(len(data))
        return data

    def read_to_end(self) -> str:
        while self.read(CHUNK):
            pass
        return self.sha256.hexdigest()


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


def require_docker() -> None:
    try:
        running = run(["docker", "info"]).returncode == 0
    except FileNotFoundError:
        raise Refused("Docker is not installed: install it (see the README's set-up)") from None
    if not running:
        raise Refused("Docker is not running: start it, then run this again")


def with_tag(image: str) -> str:
    """The name with its tag spelt out: `docker save hub` would carry every tag of `hub`."""
    return image if ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"


def normalized(image: str) -> str:
    """Docker's full spelling of an image name: `hub` is `docker.io/library/hub:latest`."""
    image = with_tag(image)
    first, _, rest = image.partition("/")
    if not rest or (first == "docker.io" and "/" not in rest):
        return f"docker.io/library/{rest or first}"
    if "." in first or ":" in first or first == "localhost":
        return image
    return f"docker.io/{image}"


def image_member(image: str) -> str:
    return "images/" + re.sub(r"[^A-Za-z0-9._-]", "_", image) + ".tar.gz"


# ---------------------------------------------------------------------------------- save


def compose_images() -> list[str]:
    """Every image docker-compose.yml names, once each, as the settings resolve them."""
    if run(["docker", "compose", "version"]).returncode == 0:
        compose = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        compose = ["docker-compose"]
    else:
        raise Refused(
            "neither 'docker compose' nor 'docker-compose' is installed (see the README's set-up)"
        )
    done = run([*compose, "--profile", "gpu", "--profile", "https", "config"], cwd=PROJECT)
    if done.returncode != 0:
        raise Refused(f"docker compose config failed ({done.stderr.strip()}): fix the settings")
    names = re.findall(r"^\s*image:\s*['\"]?([^'\"\s]+)", done.stdout, re.MULTILINE)
    for name in names:
        if not IMAGE_REFERENCE.fullmatch(name):
            raise Refused(f"{shown(name)} is not an image name (WORKSHOP_*_IMAGE): fix it in .env")
    return sorted(set(names))


def is_left_behind(relative: str, in_git: bool) -> bool:
    parts = relative.split("/")
    if any(part.startswith(".env") and part != ".env.example" for part in parts):
        return True  # this event's settings and secrets
    if in_git:
        return False
    return parts[0] in LEFT_BEHIND_AT_TOP or any(
        part in LEFT_BEHIND_ANYWHERE or part.endswith(LEFT_BEHIND_SUFFIXES) for part in parts
    )


def project_files(leave_out: set[Path]) -> list[str]:
    """The project's files as they are here: in a checkout the files git tracks (with local
    edits; deleted ones stay out), else the files as they were unpacked from a bundle."""
    listed = run(["git", "-C", str(PROJECT), "ls-files", "-z", "--cached"])
    if listed.returncode == 0 and listed.stdout:
        return sorted(
            name
            for name in set(listed.stdout.split("\0"))
            if name and os.path.lexists(PROJECT / name) and not is_left_behind(name, True)
        )
    found = []
    for folder, subfolders, files in os.walk(PROJECT):
        here = Path(folder)
        subfolders[:] = [
            sub
            for sub in subfolders
            if here / sub not in leave_out
            and not is_left_behind((here / sub).relative_to(PROJECT).as_posix(), False)
        ]
        for name in files:
            relative = (here / name).relative_to(PROJECT).as_posix()
            if here / name not in leave_out and not is_left_behind(relative, False):
                found.append(relative)
    return sorted(found)


def anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No owner of this machine travels; `load` gives the files to whoever unpacks them."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode &= 0o755
    return info


def pack_project(path: Path, leave_out: set[Path]) -> None:
    with tarfile.open(path, "w:gz", compresslevel=6) as archive:
        for name in project_files(leave_out):
            archive.add(PROJECT / name, arcname=name, recursive=False, filter=anonymous)
    # What `load` would refuse is refused here, where it can still be fixed.
    with open_project(path.read_bytes()) as archive:
        project_members(archive)


def save_image(image: str, path: Path) -> None:
    progress = Progress()
    saving = subprocess.Popen(
        ["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as packed:
        while True:
            chunk = saving.stdout.read(CHUNK)
            if not chunk:
                break
            packed.write(chunk)
            progress.reach(raw.tell())
    if saving.wait() != 0:
        raise Refused(f"docker save {image} failed: {saving.stderr.read().decode().strip()}")


def add_to_bundle(bundle: tarfile.TarFile, sums: dict, name: str, stream, size: int) -> None:
    """NAME (its SIZE bytes read from STREAM) into the bundle, its SHA-256 into SUMS."""
    info = tarfile.TarInfo("./" + name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time())
    reader = HashingReader(stream, Progress())
    bundle.addfile(info, reader)
    sums[name] = reader.sha256.hexdigest()


def save(target: Path) -> None:
    if target.exists() or target.is_symlink():
        raise Refused(f"{target} exists: remove it or name another file")
    require_docker()
    images, missing = [], []
    for image in compose_images():
        present = run(["docker", "image", "inspect", image]).returncode == 0
        (images if present else missing).append(with_tag(image))
    for image in missing:
        if "cuda" in image or "proxy" in image:
            say(f"not carried (not built here): {image}")
        else:
            raise Refused(f"{image} is not built here: run 'docker compose build' first")
    members = [image_member(image) for image in images]
    if len(set(members)) != len(members):
        raise Refused(f"two of {images} would share a file in the bundle: give them other names")

    # Beside the target, one image at a time (about half its size) before it joins the
    # bundle: the disk holds the bundle and one image, never the bundle twice.
    work = Path(tempfile.mkdtemp(prefix=".bundle.", dir=target.resolve().parent))
    partial = target.with_name(target.name + ".partial")
    started = time.monotonic()
    sums: dict[str, str] = {}
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as bundle:
            for number, image in enumerate(images, 1):
                member = image_member(image)
                size = json.loads(run(["docker", "image", "inspect", image]).stdout)[0]["Size"]
                say(f"[{number}/{len(images)}] saving {image} ({human(size)})…")
                packed = work / "image.tar.gz"
                save_image(image, packed)
                say(
                    f"      {member}: {human(packed.stat().st_size)} after "
                    f"{time.monotonic() - started:.0f} s"
                )
                with open(packed, "rb") as stream:
                    add_to_bundle(bundle, sums, member, stream, packed.stat().st_size)
                packed.unlink()
            say("packing the project's files (without .env, which holds this event's secrets)…")
            project = work / PROJECT_ARCHIVE
            pack_project(project, {work, partial, target.resolve()})
            with open(project, "rb") as stream:
                add_to_bundle(bundle, sums, PROJECT_ARCHIVE, stream, project.stat().st_size)
            listed = "".join(f"{image}\n" for image in images).encode()
            add_to_bundle(bundle, sums, IMAGES, io.BytesIO(listed), len(listed))
            # Last, so that it lists every file before it.
            checksums = "".join(f"{sha256}  {name}\n" for name, sha256 in sums.items()).encode()
            add_to_bundle(bundle, {}, SUMS, io.BytesIO(checksums), len(checksums))
        partial.rename(target)
    except OSError as error:
        raise Refused(f"writing {partial} failed ({error.strerror}): is its disk full?") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if partial.exists():
            partial.unlink()
    digest = hashlib.sha256(checksums).hexdigest()
    say(
        f"wrote {target} ({human(target.stat().st_size)}, {len(images)} images) "
        f"in {time.monotonic() - started:.0f} s"
    )
    rule = "=" * 78
    say(
        f"\n{rule}\nThe bundle's digest: write it down and carry it APART from the bundle;\n"
        f"the venue's load asks for it, and refuses a bundle that does not match it:\n\n"
        f"    {digest}\n{rule}\n"
    )
    name = shlex.quote(target.name)
    say(f"at the venue: scripts/venue-bundle.sh load {name} ./workshop --digest {digest}")
    say("  (without this checkout there, take the scripts out of the bundle once it is checked:")
    say(
        f"   tar -xf {name} ./{SUMS} ./{PROJECT_ARCHIVE} && "
        f"echo '{digest}  {SUMS}' | sha256sum -c && sha256sum -c --ignore-missing {SUMS} && "
        f"tar -xzf {PROJECT_ARCHIVE} scripts/venue-bundle.sh scripts/venue_bundle.py)"
    )
    print(digest)


# ---------------------------------------------------------------------------------- load


def bundle_member(name: str) -> str | None:
    """The name as `save` writes it (without its leading ./), or None for any other name."""
    if name.startswith("./"):
        name = name[2:]
    if name in (SUMS, IMAGES, PROJECT_ARCHIVE) or IMAGE_MEMBER.fullmatch(name):
        return name
    return None


def bundle_index(bundle: Path, archive: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The bundle's files by name, read from its headers alone (no data is read), each name
    and kind checked against what `save` writes before anything else is done."""
    nothing_loaded = "it was not made by `save`; nothing was loaded"
    index: dict[str, tarfile.TarInfo] = {}
    size = bundle.stat().st_size
    try:
        members = archive.getmembers()
    except (tarfile.TarError, EOFError) as error:
        raise Refused(
            f"{bundle} is damaged or cut short ({error}): copy it again; nothing was loaded"
        ) from None
    for info in members:
        name = bundle_member(info.name)
        if name is None:
            raise Refused(
                f"{bundle} holds {shown(info.name)}, a name a workshop bundle never holds "
                f"(only {SUMS}, {IMAGES}, {PROJECT_ARCHIVE}, images/NAME.tar.gz): {nothing_loaded}"
            )
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise Refused(
                f"{bundle} holds {shown(info.name)} as a link or special file, not a "
                f"plain file: {nothing_loaded}"
            )
        if name in index:
            raise Refused(f"{bundle} holds {name} twice: {nothing_loaded}")
        if info.offset_data + info.size > size:
            raise Refused(
                f"{bundle} is damaged or cut short ({name} is incomplete): copy it "
                "again; nothing was loaded"
            )
        index[name] = info
    if SUMS not in index or IMAGES not in index:
        raise Refused(
            f"{bundle} is not a workshop bundle (no {SUMS} or {IMAGES} in it), or it "
            "was cut short: copy it again; nothing was loaded"
        )
    return index


def read_small(archive: tarfile.TarFile, info: tarfile.TarInfo, limit: int = SMALL_FILE_LIMIT):
    if info.size > limit:
        raise Refused(
            f"{info.name} is {human(info.size)}, more than `save` ever writes: "
            "the bundle was not made by `save`; nothing was loaded"
        )
    return archive.extractfile(info).read()


def parse_sums(text: bytes) -> dict[str, str]:
    listed: dict[str, str] = {}
    for line in text.decode("utf-8", "replace").splitlines():
        match = SUMS_LINE.fullmatch(line)
        name = bundle_member(match.group(2)) if match else None
        if name is None or name == SUMS or name in listed:
            raise Refused(
                f"the bundle's {SUMS} holds a line `save` never writes "
                f"({shown(line)}): nothing was loaded"
            )
        listed[name] = match.group(1)
    return listed


def parse_images(text: bytes) -> dict[str, str]:
    """The bundle's image files, each with the one name it must bring."""
    expected: dict[str, str] = {}
    for image in text.decode("utf-8", "replace").splitlines():
        if not IMAGE_REFERENCE.fullmatch(image) or image_member(image) in expected:
            raise Refused(
                f"the bundle's {IMAGES} names {shown(image)}, not an image `save` "
                "lists: nothing was loaded"
            )
        expected[image_member(image)] = image
    return expected


def names_in_image(reader: HashingReader, member: str) -> list[tuple[str, str]]:
    """The names `docker load` would give the images of one image archive, read as the
    archive streams by: (the file that gives it, the name) pairs."""
    found = []
    with tarfile.open(fileobj=reader, mode="r|gz", bufsize=CHUNK) as archive:
        for info in archive:
            path = posixpath.normpath(info.name).lstrip("/")
            if path not in (DOCKER_MANIFEST, DOCKER_REPOSITORIES, OCI_INDEX):
                continue
            if not info.isreg() or info.size > SMALL_FILE_LIMIT:
                raise Refused(
                    f"{member} holds an odd {path}: it is not an image `docker save` "
                    "wrote; nothing was loaded"
                )
            content = json.loads(archive.extractfile(info).read())
            if path == DOCKER_MANIFEST:
                found += [(path, tag) for entry in content for tag in entry.get("RepoTags") or ()]
            elif path == DOCKER_REPOSITORIES:
                found += [(path, f"{repo}:{tag}") for repo, tags in content.items() for tag in tags]
            else:
                found += [
                    (annotation, entry["annotations"][annotation])
                    for entry in content.get("manifests") or ()
                    for annotation in OCI_NAME_ANNOTATIONS
                    if annotation in (entry.get("annotations") or {})
                ]
    return found


def check_image_names(member: str, image: str, found: list[tuple[str, str]]) -> None:
    """Each image file brings exactly its own name: another would replace an image of this
    machine (the base image, another project's) when it is loaded."""
    wanted = normalized(image)
    wanted_tag = wanted.rsplit(":", 1)[1]
    for where, name in found:
        if not isinstance(name, str):
            raise Refused(f"{member}'s {where} is not one `docker save` writes: nothing was loaded")
        bare_tag = where == OCI_NAME_ANNOTATIONS[1] and not re.search("[/:]", name)
        if not (name == wanted_tag if bare_tag else normalized(name) == wanted):
            raise Refused(
                f"{member} would also name an image {shown(name)} (in its {where}), and only "
                f"{image} belongs there: loading it would replace that image on this machine. "
                "The bundle was altered after it was saved; nothing was loaded"
            )
    if not any(where in (DOCKER_MANIFEST, OCI_NAME_ANNOTATIONS[0]) for where, _ in found):
        raise Refused(
            f"{member} does not name {image}: it is not the image `save` wrote; nothing was loaded"
        )


def project_path(name: str) -> str | None:
    """The member's path inside the project folder, or None where it would leave it."""
    path = posixpath.normpath(name)
    if name.startswith("/") or path == ".." or path.startswith("../"):
        return None
    return path


def project_members(archive: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, str]]:
    """The project archive's files with their paths in the project's folder, each checked to
    stay inside it: plain files, folders, and links to a path below their own folder."""
    try:
        members = archive.getmembers()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise Refused(f"{PROJECT_ARCHIVE} is not a project archive ({error})") from None
    kept: list[tuple[tarfile.TarInfo, str]] = []
    seen: set[str] = set()
    links: set[str] = set()
    for info in members:
        path = project_path(info.name)
        if path == "." and info.isdir():
            continue
        why = None
        if path is None:
            why = "a path outside the project's folder"
        elif path in seen:
            why = "a path twice"
        elif any(path.startswith(link + "/") for link in links):
            why = "a path through a link"
        elif info.issym():
            # Links only point down: a `..` could climb out through another link.
            if info.linkname.startswith("/") or ".." in info.linkname.split("/"):
                why = f"a link to {shown(info.linkname)}, out of its folder"
            links.add(path)
        elif not (info.isreg() or info.isdir()):
            why = "a device, pipe or hard link"
        if why:
            raise Refused(
                f"{PROJECT_ARCHIVE} holds {shown(info.name)}, {why}, which `save` "
                "never writes: nothing was loaded"
            )
        seen.add(path)
        kept.append((info, path))
    return kept


def open_project(data: bytes) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    except (tarfile.TarError, OSError) as error:
        raise Refused(f"{PROJECT_ARCHIVE} is not a project archive ({error})") from None


def unpack_project(data: bytes, into: Path) -> None:
    """Files get the mode bits a checkout would (rw-r--r--, rwx for executables), and the
    owner of whoever unpacks them: no owner, setuid bit or device from the archive."""
    with open_project(data) as archive:
        for info, path in project_members(archive):
            target = into / path
            if info.isdir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if info.issym():
                os.symlink(info.linkname, target)
                continue
            mode = 0o755 if info.mode & 0o100 else 0o644
            # The folder was empty: nothing there is followed or overwritten.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            with os.fdopen(os.open(target, flags, mode), "wb") as out:
                shutil.copyfileobj(archive.extractfile(info), out)
            os.utime(target, (info.mtime, info.mtime))


def ask_digest(given: str | None) -> str:
    if given is None:
        if not sys.stdin.isatty():
            raise Refused(
                "no digest given: loading needs the digest that `save` printed where the bundle "
                "was made (whoever saved it has it, carried apart from the bundle): "
                "scripts/venue-bundle.sh load FILE [DIR] --digest HEX. Nothing was loaded"
            )
        sys.stderr.write("The bundle's digest, as `save` printed it: ")
        sys.stderr.flush()
        given = sys.stdin.readline()
    digest = given.strip().lower()
    if digest.startswith("sha256:"):
        digest = digest[len("sha256:") :]
    if not DIGEST.fullmatch(digest):
        raise Refused(
            f"{shown(given.strip())} is not a digest: give the 64 hexadecimal digits "
            "that `save` printed"
        )
    return digest


def open_bundle(bundle: Path, raw) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=raw, mode="r:")
    except (tarfile.TarError, EOFError) as error:
        raise Refused(
            f"{bundle} is not a workshop bundle, or is damaged or cut short ({error}): "
            "copy it again; nothing was loaded"
        ) from None


def check_listing(bundle: Path, index: dict, listed: dict[str, str], expected: dict[str, str]):
    """Every file of the bundle is listed in its checksums, every listed file is there, and
    the image files are the ones IMAGES names."""
    unlisted = sorted(set(index) - {SUMS} - set(listed))
    if unlisted:
        raise Refused(
            f"{bundle} holds {unlisted[0]}, which its checksums do not list: it was "
            "altered after it was saved; nothing was loaded"
        )
    absent = sorted(set(listed) - set(index))
    if absent:
        raise Refused(
            f"{bundle} lacks {absent[0]}, which its checksums list: it is cut short "
            "or altered; copy it again; nothing was loaded"
        )
    if PROJECT_ARCHIVE not in listed or set(expected) != {
        name for name in listed if name.startswith("images/")
    }:
        raise Refused(
            f"{bundle}'s image files are not the ones its {IMAGES} names: nothing was loaded"
        )


def verify(bundle, archive, index, listed, expected) -> bytes:
    """One pass over the bundle: every file's checksum, and as each image file streams by,
    the names it would bring. Returns the project archive (small, kept in memory, so that
    what is unpacked is what was checked)."""
    files = sorted((index[name] for name in listed if name != IMAGES), key=lambda i: i.offset)
    progress = Progress(sum(info.size for info in files))
    project = b""
    for info in files:
        name = bundle_member(info.name)
        reader = HashingReader(archive.extractfile(info), progress)
        unreadable = None
        try:
            if name == PROJECT_ARCHIVE:
                project = reader.read(PROJECT_LIMIT + 1)
                if len(project) > PROJECT_LIMIT:
                    raise Refused(f"{name} is larger than {human(PROJECT_LIMIT)}")
            else:
                found = names_in_image(reader, name)
        except Refused as refusal:
            unreadable = str(refusal)
        except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as error:
            unreadable = f"{name} is not an image archive `docker save` wrote ({error})"
        except (AttributeError, KeyError, TypeError):
            unreadable = f"{name} holds a manifest `docker save` never writes"
        # A file that differs is reported as such, whatever reading it went on to find.
        if reader.read_to_end() != listed[name]:
            raise Refused(
                f"{bundle} does not match its checksums ({name} differs): copy it "
                "again; nothing was loaded"
            )
        if unreadable:
            raise Refused(f"{unreadable}: nothing was loaded")
        if name != PROJECT_ARCHIVE:
            check_image_names(name, expected[name], found)
    with open_project(project) as archive_of_project:
        project_members(archive_of_project)
    return project


def load_image(bundle: Path, archive, info, sha256: str, progress: Progress) -> None:
    """One image into Docker straight from the bundle. Its last chunk waits until the
    checksum of what went in is known: a bundle changed since it was checked never
    completes a load."""
    name = bundle_member(info.name)
    with tempfile.TemporaryFile() as output:
        loading = subprocess.Popen(
            ["docker", "load", "-q"], stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT
        )
        reader = HashingReader(archive.extractfile(info), progress)
        held = b""
        try:
            for chunk in iter(lambda: reader.read(CHUNK), b""):
                if held:
                    loading.stdin.write(held)
                held = chunk
            if reader.sha256.hexdigest() != sha256:
                loading.kill()
                loading.wait()
                raise Refused(
                    f"{bundle} changed while it was being loaded ({name} is not what "
                    "was checked): copy it again, then load it again"
                )
            loading.stdin.write(held)
            loading.stdin.close()
        except BrokenPipeError:
            pass  # docker load stopped early; its status and message say why
        waited = 0
        while True:
            try:
                status = loading.wait(timeout=PROGRESS_EVERY_S)
                break
            except subprocess.TimeoutExpired:
                waited += PROGRESS_EVERY_S
                say(f"      … Docker is storing its layers ({waited} s)")
        output.seek(0)
        message = output.read().decode(errors="replace").strip()
    if status != 0:
        raise Refused(
            f"docker load of {name} failed ({message}): is the disk of Docker's data-root full?"
        )
    say(f"      {message}")


def load(bundle: Path, into: Path, given_digest: str | None) -> None:
    if not bundle.is_file():
        raise Refused(f"{bundle}: no such file")
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise Refused(
            f"{into} is not empty: name an empty or new folder for the project, "
            f"e.g. load {bundle} ./workshop"
        )
    require_docker()
    started = time.monotonic()
    # Opened once: every step below reads this same file, even if the path is replaced.
    with open(bundle, "rb") as raw, open_bundle(bundle, raw) as archive:
        index = bundle_index(bundle, archive)
        digest = ask_digest(given_digest)
        say(f"checking {bundle} ({human(bundle.stat().st_size)}) against its checksums…")
        checksums = read_small(archive, index[SUMS])
        if hashlib.sha256(checksums).hexdigest() != digest:
            raise Refused(
                f"{bundle} is not the bundle that was saved: its checksums' digest is "
                f"{hashlib.sha256(checksums).hexdigest()}, not the {digest} given (the one "
                "`save` printed where the bundle was made; check it was copied right). "
                "Nothing was loaded"
            )
        listed = parse_sums(checksums)
        image_list = read_small(archive, index[IMAGES])
        if IMAGES not in listed or hashlib.sha256(image_list).hexdigest() != listed[IMAGES]:
            raise Refused(
                f"{bundle} does not match its checksums ({IMAGES} differs): copy it "
                "again; nothing was loaded"
            )
        expected = parse_images(image_list)
        check_listing(bundle, index, listed, expected)
        project = verify(bundle, archive, index, listed, expected)

        say(f"loading {len(expected)} images and the project…")
        made = not into.exists()
        try:
            images = sorted((index[member] for member in expected), key=lambda i: i.offset)
            progress = Progress(sum(info.size for info in images))
            for info in images:
                image = expected[bundle_member(info.name)]
                say(f"loading {image} ({human(info.size)})…")
                load_image(bundle, archive, info, listed[bundle_member(info.name)], progress)
            into.mkdir(parents=True, exist_ok=True)
            unpack_project(project, into)
        except BaseException:
            if made:
                shutil.rmtree(into, ignore_errors=True)
            raise
    say(
        f"loaded {len(expected)} images and the project into {into} "
        f"in {time.monotonic() - started:.0f} s"
    )
    say(
        f"next: cd {into} && docker compose up -d   (no build, no download; settings: .env.example)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/venue-bundle.sh",
        description="Carry the workshop (built images and project) to a venue without internet.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    saving = commands.add_parser("save", help="write the bundle; prints its digest")
    saving.add_argument("file", nargs="?", default="pytorch-workshop-bundle.tar")
    loading = commands.add_parser("load", help="check the bundle, load its images, unpack it")
    loading.add_argument("file")
    loading.add_argument("into", nargs="?", default="pytorch-workshop", metavar="DIR")
    loading.add_argument("--digest", help="the digest `save` printed (asked for when omitted)")
    arguments = parser.parse_args()
    # Stopped from outside, the partial bundle or project folder is still removed.
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, lambda number, _: sys.exit(128 + number))
    try:
        if arguments.command == "save":
            save(Path(arguments.file))
        else:
            load(Path(arguments.file), Path(arguments.into), arguments.digest)
    except Refused as refusal:
        say(f"error: {refusal}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except OSError as error:
        say(f"error: {error.strerror or error}{f': {error.filename}' if error.filename else ''}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
