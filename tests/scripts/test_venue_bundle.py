"""scripts/venue-bundle.sh against the real Docker daemon, with small images of the test's own
standing in for the project's (named through the WORKSHOP_*_IMAGE settings, as an organizer
would): save, remove the images, load with the digest save printed; a bundle cut short or
altered changes nothing, and a hostile bundle (names that would run commands, checksums
replaced, images that bring other names, a project archive that sets owners or writes outside
its folder) is refused before anything in it is run, loaded or unpacked."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pty
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "venue-bundle.sh"


@pytest.fixture(scope="module")
def docker_client():
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def images(docker_client):
    """A hub and a CPU lab image of this test's own (one small file each); no CUDA or proxy
    image, which the bundle carries only when they were built. The "base" image stands for an
    image of the machine that a bundle must never replace (the base image, another project's)."""
    prefix = f"wsbundle{os.getpid()}"
    names = {
        "WORKSHOP_HUB_IMAGE": f"{prefix}/hub:latest",
        "WORKSHOP_CPU_IMAGE": f"{prefix}/lab:cpu",
        "WORKSHOP_CUDA_IMAGE": f"{prefix}/lab:cuda",
        "WORKSHOP_PROXY_IMAGE": f"{prefix}/proxy:latest",
    }
    for setting in ("WORKSHOP_HUB_IMAGE", "WORKSHOP_CPU_IMAGE"):
        make_image(docker_client, names[setting], f"{setting} of the bundle test\n")
    yield names
    for name in [*names.values(), victim_of(names)]:
        try:
            docker_client.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass


def make_image(docker_client, name: str, text: str) -> str:
    repository, tag = name.split(":")
    docker_client.api.import_image_from_data(one_file_tar(text), repository=repository, tag=tag)
    return docker_client.images.get(name).id


def victim_of(images: dict) -> str:
    return images["WORKSHOP_HUB_IMAGE"].split("/")[0] + "/base:latest"


def one_file_tar(text: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        add_file(archive, "marker.txt", text.encode())
    return buffer.getvalue()


def add_file(archive: tarfile.TarFile, name: str, data: bytes, **attributes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for attribute, value in attributes.items():
        setattr(info, attribute, value)
    archive.addfile(info, io.BytesIO(data))


def bundle(
    images: dict, *args: str, cwd: Path, script: Path = SCRIPT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), *args],
        env={**os.environ, **images},
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def present(docker_client, images: dict) -> set[str]:
    found = set()
    for name in images.values():
        try:
            docker_client.images.get(name)
            found.add(name)
        except docker.errors.ImageNotFound:
            pass
    return found


def remove_images(docker_client, images: dict) -> None:
    for name in present(docker_client, images):
        docker_client.images.remove(name, force=True)


@dataclass
class Saved:
    path: Path
    digest: str


@pytest.fixture
def saved(images, tmp_path) -> Saved:
    target = tmp_path / "bundle.tar"
    done = bundle(images, "save", str(target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[1/2] saving" in done.stderr and "[2/2] saving" in done.stderr, done.stderr
    assert f"not carried (not built here): {images['WORKSHOP_CUDA_IMAGE']}" in done.stderr
    digest = done.stdout.strip()
    assert digest == digest_of(target)
    assert f"\n    {digest}\n" in done.stderr and "carry it APART" in done.stderr
    return Saved(target, digest)


def members_of(path: Path) -> dict[str, bytes]:
    """A (small) bundle's files by name, without the leading ./ that save writes."""
    with tarfile.open(path) as archive:
        return {
            info.name.removeprefix("./"): archive.extractfile(info).read()
            for info in archive.getmembers()
        }


def digest_of(path: Path) -> str:
    return hashlib.sha256(members_of(path)["SHA256SUMS"]).hexdigest()


def write_bundle(path: Path, files: dict[str, bytes]) -> str:
    """A bundle as save writes one, from these files, its checksums made to match them (as
    anyone can); returns its own digest."""
    sums = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n"
        for name, data in files.items()
        if name != "SHA256SUMS"
    ).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in {**files, "SHA256SUMS": sums}.items():
            add_file(archive, f"./{name}", data)
    return hashlib.sha256(sums).hexdigest()


def load(images: dict, path: Path, digest: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return bundle(
        images, "load", str(path), str(tmp_path / "venue"), "--digest", digest, cwd=tmp_path
    )


def assert_refused(done: subprocess.CompletedProcess, reason: str, tmp_path: Path) -> None:
    assert done.returncode == 1, done.stderr
    assert reason in done.stderr and "nothing was loaded" in done.stderr.lower(), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "venue").exists()


def test_a_saved_bundle_loads_the_images_and_the_project_on_a_machine_without_them(
    docker_client, images, saved, tmp_path
):
    with tarfile.open(saved.path) as archive:
        members = archive.getnames()
    assert "./SHA256SUMS" in members and "./project.tar.gz" in members
    remove_images(docker_client, images)
    done = load(images, saved.path, saved.digest, tmp_path)
    assert done.returncode == 0, done.stderr
    assert present(docker_client, images) == {
        images["WORKSHOP_HUB_IMAGE"],
        images["WORKSHOP_CPU_IMAGE"],
    }
    project = tmp_path / "venue"
    assert (project / "docker-compose.yml").read_text() == (REPO / "docker-compose.yml").read_text()
    assert (project / ".env.example").exists() and not (project / ".env").exists()
    assert (project / "scripts" / "venue-bundle.sh").exists()
    assert "docker compose up -d" in done.stderr


def test_a_bundle_cut_short_is_refused_and_nothing_is_loaded(
    docker_client, images, saved, tmp_path
):
    cut = tmp_path / "cut.tar"
    cut.write_bytes(saved.path.read_bytes()[: saved.path.stat().st_size // 2])
    remove_images(docker_client, images)
    done = load(images, cut, saved.digest, tmp_path)
    assert_refused(done, "damaged or cut short", tmp_path)
    assert present(docker_client, images) == set()


def test_a_bundle_altered_in_one_image_fails_its_checksum_and_nothing_is_loaded(
    docker_client, images, saved, tmp_path
):
    files = members_of(saved.path)
    image_file = next(name for name in files if name.startswith("images/"))
    data = bytearray(files[image_file])
    data[len(data) // 2] ^= 0xFF
    altered = tmp_path / "altered.tar"
    with tarfile.open(altered, "w") as archive:
        for name, content in {**files, image_file: bytes(data)}.items():
            add_file(archive, f"./{name}", content)
    remove_images(docker_client, images)
    done = load(images, altered, saved.digest, tmp_path)
    assert_refused(done, f"does not match its checksums ({image_file} differs)", tmp_path)
    assert present(docker_client, images) == set()


def test_an_archive_that_is_not_a_bundle_is_refused_and_nothing_is_loaded(images, tmp_path):
    other = tmp_path / "photos.tar"
    with tarfile.open(other, "w") as archive:
        archive.addfile(tarfile.TarInfo("IMAGES"), io.BytesIO(b""))
    done = load(images, other, "0" * 64, tmp_path)
    assert_refused(done, "is not a workshop bundle (no SHA256SUMS or IMAGES in it)", tmp_path)


def test_saving_without_the_hub_image_says_to_build_first(docker_client, images, tmp_path):
    docker_client.images.remove(images["WORKSHOP_HUB_IMAGE"], force=True)
    done = bundle(images, "save", str(tmp_path / "bundle.tar"), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{images['WORKSHOP_HUB_IMAGE']} is not built here" in done.stderr
    assert "docker compose build" in done.stderr
    assert not (tmp_path / "bundle.tar").exists()


def test_loading_into_a_folder_in_use_is_refused(images, saved, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    done = bundle(
        images, "load", str(saved.path), str(used), "--digest", saved.digest, cwd=tmp_path
    )
    assert done.returncode == 1 and "is not empty" in done.stderr
    assert [p.name for p in used.iterdir()] == ["notes.txt"]


@pytest.fixture
def small_mount(tmp_path):
    """mount(size, name): a tmpfs of that size under tmp_path (the test runs as root, as CI
    does), unmounted after the test; remount it read-only with `remount_read_only`."""
    mounted = []

    def mount(size: str, name: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", name, point], check=True)
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", point], check=True)


def remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", point], check=True)


def test_a_bundle_on_a_read_only_stick_loads_with_no_copy_of_it_written(
    docker_client, images, saved, tmp_path, small_mount
):
    """Read where it lies: nothing beside the bundle (the stick is read-only) and a scratch
    folder smaller than the bundle, so the venue's disk never holds the bundle twice."""
    stick = small_mount("64m", "stick")
    shutil.copy(saved.path, stick / "bundle.tar")
    remount_read_only(stick)
    scratch = small_mount(f"{saved.path.stat().st_size // 4}", "scratch")
    remove_images(docker_client, images)

    done = bundle(
        {**images, "TMPDIR": str(scratch)},
        "load", str(stick / "bundle.tar"), str(tmp_path / "venue"), "--digest", saved.digest,
        cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert present(docker_client, images) == {
        images["WORKSHOP_HUB_IMAGE"],
        images["WORKSHOP_CPU_IMAGE"],
    }
    assert (tmp_path / "venue" / "docker-compose.yml").exists()
    assert sorted(p.name for p in stick.iterdir()) == ["bundle.tar"]
    assert list(scratch.iterdir()) == [], "the scratch folder was not cleaned up"


def test_load_without_a_digest_says_where_the_digest_comes_from(images, saved, tmp_path):
    done = bundle(images, "load", str(saved.path), str(tmp_path / "venue"), cwd=tmp_path)
    assert_refused(done, "no digest given", tmp_path)
    assert "the digest that `save` printed where the bundle was made" in done.stderr
    assert "--digest HEX" in done.stderr


def test_load_on_a_terminal_asks_for_the_digest(docker_client, images, saved, tmp_path):
    remove_images(docker_client, images)
    terminal, attendant = pty.openpty()
    os.write(terminal, f"{saved.digest}\n".encode())
    done = subprocess.run(
        ["bash", str(SCRIPT), "load", str(saved.path), str(tmp_path / "venue")],
        env={**os.environ, **images},
        cwd=tmp_path,
        stdin=attendant,
        capture_output=True,
        text=True,
        timeout=300,
    )
    os.close(terminal)
    os.close(attendant)
    assert done.returncode == 0, done.stderr
    assert "The bundle's digest, as `save` printed it:" in done.stderr
    assert images["WORKSHOP_HUB_IMAGE"] in present(docker_client, images)


# ---- A member name that would run a command -------------------------------------------------


def sed_breakout(marker: Path) -> str:
    """A name that closes the checksum step's sed substitution and adds one with sed's `e`
    flag, which runs the pattern space as a shell command."""
    return f"images/x|;s|.*|touch {marker}|e;#.tar.gz"


@pytest.mark.parametrize(
    "crafted",
    [
        sed_breakout,
        lambda marker: f"images/$(touch {marker}).tar.gz",
        lambda marker: f"images/x`touch {marker}`.tar.gz",
        lambda marker: f"images/x\n;touch {marker};\n.tar.gz",
    ],
    ids=["sed-e-flag", "command-substitution", "backquotes", "newline"],
)
def test_a_member_named_to_run_a_command_is_refused_before_anything_runs(
    docker_client, images, saved, tmp_path, crafted
):
    marker = tmp_path / "MARKER"
    name = crafted(marker)
    hostile = tmp_path / "hostile.tar"
    digest = write_bundle(hostile, {**members_of(saved.path), name: b"anything\n"})
    remove_images(docker_client, images)

    done = load(images, hostile, digest, tmp_path)

    assert_refused(done, "a name a workshop bundle never holds", tmp_path)
    assert ascii(f"./{name}") in done.stderr  # shown, control characters escaped
    assert not marker.exists()
    assert present(docker_client, images) == set()


def test_control_the_sed_expression_of_the_former_check_runs_the_command_in_that_name(tmp_path):
    """The former checksum step summed each member with `sha256sum | sed "s|-$|$name|"`:
    given the crafted name, that runs the command hidden in it."""
    marker = tmp_path / "MARKER"
    subprocess.run(
        ["sh", "-c", 'name=$1; printf data | sha256sum | sed "s|-\\$|$name|"', "sh"]
        + [sed_breakout(marker)],
        capture_output=True,
        check=False,
    )
    assert marker.exists()


# ---- Checksums replaced together with a file -------------------------------------------------


def test_a_bundle_with_its_checksums_replaced_is_refused_for_the_digest_save_printed(
    docker_client, images, saved, tmp_path
):
    files = members_of(saved.path)
    project = io.BytesIO()
    with tarfile.open(fileobj=project, mode="w:gz") as archive:
        with tarfile.open(fileobj=io.BytesIO(files["project.tar.gz"]), mode="r:gz") as genuine:
            for info in genuine.getmembers():
                archive.addfile(info, genuine.extractfile(info))
        add_file(archive, "scripts/planted.sh", b"echo planted\n", mode=0o755)
    replaced = tmp_path / "replaced.tar"
    own_digest = write_bundle(replaced, {**files, "project.tar.gz": project.getvalue()})
    remove_images(docker_client, images)

    done = load(images, replaced, saved.digest, tmp_path)

    assert_refused(done, "is not the bundle that was saved", tmp_path)
    assert f"its checksums' digest is {own_digest}, not the {saved.digest} given" in done.stderr
    assert present(docker_client, images) == set()

    # Control: with its own digest (the attacker's), the same bundle passes every checksum.
    done = load(images, replaced, own_digest, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "venue" / "scripts" / "planted.sh").exists()


# ---- An image that would bring another name --------------------------------------------------


def renamed_image(packed: bytes, alter) -> bytes:
    """An image file of the bundle with its naming files changed by ALTER(files), which maps
    each naming file's path to its parsed JSON (and may add index.json)."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(packed))) as original:
        infos = original.getmembers()
        contents = {info.name: original.extractfile(info).read() for info in infos if info.isreg()}
        naming = {
            name: json.loads(contents[name])
            for name in ("manifest.json", "repositories")
            if name in contents
        }
        alter(naming)
        output = io.BytesIO()
        with tarfile.open(fileobj=output, mode="w") as changed:
            for info in infos:
                if info.name in naming:
                    add_file(changed, info.name, json.dumps(naming.pop(info.name)).encode())
                else:
                    changed.addfile(info, io.BytesIO(contents[info.name]) if info.isreg() else None)
            for name, content in naming.items():
                add_file(changed, name, json.dumps(content).encode())
    return gzip.compress(output.getvalue(), compresslevel=1)


def second_tag(victim):
    def alter(naming):
        naming["manifest.json"][0]["RepoTags"].append(victim)

    return alter


def only_the_victims_tag(victim):
    def alter(naming):
        naming["manifest.json"][0]["RepoTags"] = [victim]

    return alter


def victim_in_repositories(victim):
    def alter(naming):
        repository, tag = victim.split(":")
        naming["repositories"][repository] = {tag: "0" * 64}

    return alter


def victim_in_an_oci_index(victim):
    def alter(naming):
        naming["index.json"] = {
            "schemaVersion": 2,
            "manifests": [{"annotations": {"io.containerd.image.name": f"docker.io/{victim}"}}],
        }

    return alter


def hub_image_file(files: dict[str, bytes], images: dict) -> str:
    return "images/" + images["WORKSHOP_HUB_IMAGE"].replace("/", "_").replace(":", "_") + ".tar.gz"


@pytest.mark.parametrize(
    "attack", [second_tag, only_the_victims_tag, victim_in_repositories, victim_in_an_oci_index]
)
def test_an_image_that_would_bring_another_name_is_refused_and_nothing_is_loaded(
    docker_client, images, saved, tmp_path, attack
):
    victim = victim_of(images)
    victim_id = make_image(docker_client, victim, "the machine's own base image\n")
    files = members_of(saved.path)
    hub_file = hub_image_file(files, images)
    hostile = tmp_path / "hostile.tar"
    digest = write_bundle(
        hostile, {**files, hub_file: renamed_image(files[hub_file], attack(victim))}
    )
    remove_images(docker_client, images)

    done = load(images, hostile, digest, tmp_path)

    assert_refused(done, f"{hub_file} would also name an image", tmp_path)
    assert docker_client.images.get(victim).id == victim_id
    assert present(docker_client, images) == set()


def test_control_docker_load_would_replace_the_image_and_a_genuine_repack_loads(
    docker_client, images, saved, tmp_path
):
    victim = victim_of(images)
    victim_id = make_image(docker_client, victim, "the machine's own base image\n")
    files = members_of(saved.path)
    hub_file = hub_image_file(files, images)

    # The crafted image file, loaded by Docker unchecked, takes the victim's name.
    subprocess.run(
        ["docker", "load", "-q"],
        input=renamed_image(files[hub_file], second_tag(victim)),
        capture_output=True,
        check=True,
    )
    assert docker_client.images.get(victim).id != victim_id

    # The same rewriting, leaving the names as they were, gives a bundle that loads.
    remove_images(docker_client, images)
    repacked = tmp_path / "repacked.tar"
    digest = write_bundle(repacked, {**files, hub_file: renamed_image(files[hub_file], len)})
    done = load(images, repacked, digest, tmp_path)
    assert done.returncode == 0, done.stderr
    assert images["WORKSHOP_HUB_IMAGE"] in present(docker_client, images)


# ---- A project archive that sets owners and modes or writes outside its folder ---------------


def with_project(files: dict[str, bytes], add) -> dict[str, bytes]:
    """The bundle's files with ADD(archive) run on a copy of its project archive."""
    project = io.BytesIO()
    with tarfile.open(fileobj=project, mode="w:gz") as archive:
        with tarfile.open(fileobj=io.BytesIO(files["project.tar.gz"]), mode="r:gz") as genuine:
            for info in genuine.getmembers():
                archive.addfile(info, genuine.extractfile(info))
        add(archive)
    return {**files, "project.tar.gz": project.getvalue()}


def setuid_owned_by_another(archive: tarfile.TarFile) -> None:
    add_file(archive, "scripts/setuid-tool", b"#!/bin/sh\n", mode=0o4777, uid=4242, gid=4242)


def test_unpacking_gives_no_owner_setuid_bit_or_open_mode_from_the_archive(images, saved, tmp_path):
    hostile = tmp_path / "hostile.tar"
    digest = write_bundle(hostile, with_project(members_of(saved.path), setuid_owned_by_another))

    done = load(images, hostile, digest, tmp_path)

    assert done.returncode == 0, done.stderr
    unpacked = (tmp_path / "venue" / "scripts" / "setuid-tool").stat()
    assert oct(unpacked.st_mode & 0o7777) == oct(0o755)
    assert (unpacked.st_uid, unpacked.st_gid) == (os.getuid(), os.getgid())

    # Control: unpacked as a plain archive would be (as root here), both would be kept.
    control = tmp_path / "control"
    project = io.BytesIO(members_of(hostile)["project.tar.gz"])
    with tarfile.open(fileobj=project, mode="r:gz") as archive:
        archive.extractall(control, filter="fully_trusted")
    kept = (control / "scripts" / "setuid-tool").stat()
    assert kept.st_mode & 0o4000 and kept.st_uid == 4242


def escaping_members(outside: Path):
    """Ways out of the project's folder (tmp_path/venue) to OUTSIDE (tmp_path/outside.txt)."""

    def parent_path(archive):
        add_file(archive, "../outside.txt", b"planted\n")

    def link_then_file(archive):
        add_file(archive, "out", b"", type=tarfile.SYMTYPE, linkname=str(outside.parent))
        add_file(archive, "out/outside.txt", b"planted\n")

    def relative_link_up(archive):
        add_file(archive, "docs/up", b"", type=tarfile.SYMTYPE, linkname="../..")
        add_file(archive, "docs/up/outside.txt", b"planted\n")

    def absolute_path(archive):
        add_file(archive, str(outside), b"planted\n")

    def hard_link(archive):
        add_file(archive, "passwd", b"", type=tarfile.LNKTYPE, linkname="/etc/passwd")

    def device(archive):
        add_file(archive, "dev-null", b"", type=tarfile.CHRTYPE, devmajor=1, devminor=3)

    return [parent_path, link_then_file, relative_link_up, absolute_path, hard_link, device]


@pytest.mark.parametrize(
    "way_out", range(6), ids=["dotdot", "link-out", "link-up", "absolute", "hardlink", "device"]
)
def test_a_project_archive_that_reaches_outside_its_folder_is_refused(
    docker_client, images, saved, tmp_path, way_out
):
    outside = tmp_path / "outside.txt"
    add = escaping_members(outside)[way_out]
    hostile = tmp_path / "hostile.tar"
    digest = write_bundle(hostile, with_project(members_of(saved.path), add))
    remove_images(docker_client, images)

    done = load(images, hostile, digest, tmp_path)

    assert_refused(done, "project.tar.gz holds", tmp_path)
    assert not outside.exists()
    assert present(docker_client, images) == set()


@pytest.mark.parametrize("way_out", range(3), ids=["dotdot", "link-out", "link-up"])
def test_control_a_plain_unpacking_of_that_archive_writes_outside(saved, tmp_path, way_out):
    inner = tmp_path / "control" / "venue"
    outside = inner.parent / "outside.txt"
    project = with_project(members_of(saved.path), escaping_members(outside)[way_out])
    with tarfile.open(fileobj=io.BytesIO(project["project.tar.gz"]), mode="r:gz") as archive:
        archive.extractall(inner, filter="fully_trusted")
    assert outside.read_text() == "planted\n"


# ---- What save packs -------------------------------------------------------------------------

PRIVATE = [
    "workshop-export/attendee-work.tar.gz",
    ".env",
    ".env.bak",
    "hub/.env.local",
    "key.pem",
]


def project_copy(tmp_path: Path, with_git: bool) -> Path:
    """The repository's tracked files in a scratch checkout of their own, with an organizer's
    private files beside them (an export of attendees' work, settings backups, a TLS key)."""
    copy = tmp_path / "project"
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True, text=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    git = ["git", "-C", str(copy), "-c", "user.name=t", "-c", "user.email=t@t"]
    if with_git:
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "copy"], check=True)
    for name in PRIVATE:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text("private\n")
    if with_git:
        # Tracked by mistake: still never carried.
        subprocess.run([*git, "add", "-f", "hub/.env.local"], check=True)
    else:
        for name in (".venv/bin/python", "reports/venue-bundle.json"):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            (copy / name).write_text("local\n")
    return copy


@pytest.mark.parametrize("with_git", [True, False], ids=["checkout", "unpacked-bundle"])
def test_save_packs_the_project_and_none_of_the_organizers_private_files(
    images, tmp_path, with_git
):
    copy = project_copy(tmp_path, with_git)
    target = tmp_path / "bundle.tar"

    done = bundle(images, "save", str(target), cwd=copy, script=copy / "scripts/venue-bundle.sh")

    assert done.returncode == 0, done.stderr
    project = members_of(target)["project.tar.gz"]
    with tarfile.open(fileobj=io.BytesIO(project), mode="r:gz") as archive:
        packed = set(archive.getnames())
    assert {"docker-compose.yml", ".env.example", "scripts/venue_bundle.py"} <= packed
    assert packed.isdisjoint(PRIVATE + [".venv/bin/python", "reports/venue-bundle.json"])
    assert not any(name.startswith("workshop-export") for name in packed)
    if with_git:
        # Control: the former listing (every file git does not ignore) held the key and the
        # settings backup; the export folder is one git ignores.
        former = subprocess.run(
            ["git", "-C", str(copy), "ls-files", "--cached", "--others", "--exclude-standard"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert {"key.pem", ".env.bak"} <= set(former)
        assert "workshop-export/attendee-work.tar.gz" not in former
