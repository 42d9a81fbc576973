"""scripts/venue-bundle.sh against the real Docker daemon, with small images of the test's own
standing in for the project's (named through the WORKSHOP_*_IMAGE settings, as an organizer
would): save, remove the images, load; a bundle cut short or altered changes nothing."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
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
    image, which the bundle carries only when they were built."""
    prefix = f"wsbundle{os.getpid()}"
    names = {
        "WORKSHOP_HUB_IMAGE": f"{prefix}/hub:latest",
        "WORKSHOP_CPU_IMAGE": f"{prefix}/lab:cpu",
        "WORKSHOP_CUDA_IMAGE": f"{prefix}/lab:cuda",
        "WORKSHOP_PROXY_IMAGE": f"{prefix}/proxy:latest",
    }
    for setting in ("WORKSHOP_HUB_IMAGE", "WORKSHOP_CPU_IMAGE"):
        docker_client.api.import_image_from_data(
            one_file_tar(f"{setting} of the bundle test\n"),
            repository=names[setting].split(":")[0],
            tag=names[setting].split(":")[1],
        )
    yield names
    for name in names.values():
        try:
            docker_client.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass


def one_file_tar(text: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = text.encode()
        info = tarfile.TarInfo("marker.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bundle(images: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
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


@pytest.fixture
def saved(images, tmp_path) -> Path:
    target = tmp_path / "bundle.tar"
    done = bundle(images, "save", str(target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[1/2] saving" in done.stderr and "[2/2] saving" in done.stderr, done.stderr
    assert f"not carried (not built here): {images['WORKSHOP_CUDA_IMAGE']}" in done.stderr
    return target


def test_a_saved_bundle_loads_the_images_and_the_project_on_a_machine_without_them(
    docker_client, images, saved, tmp_path
):
    with tarfile.open(saved) as archive:
        members = archive.getnames()
    assert "./SHA256SUMS" in members and "./project.tar.gz" in members
    remove_images(docker_client, images)
    done = bundle(images, "load", str(saved), str(tmp_path / "venue"), cwd=tmp_path)
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
    cut.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    remove_images(docker_client, images)
    done = bundle(images, "load", str(cut), str(tmp_path / "venue"), cwd=tmp_path)
    assert done.returncode == 1
    assert "damaged or cut short" in done.stderr and "nothing was loaded" in done.stderr
    assert "Traceback" not in done.stderr
    assert present(docker_client, images) == set()
    assert not (tmp_path / "venue").exists()


def test_a_bundle_altered_in_one_image_fails_its_checksum_and_nothing_is_loaded(
    docker_client, images, saved, tmp_path
):
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xf", str(saved), "-C", str(unpacked)], check=True)
    image_file = next((unpacked / "images").iterdir())
    data = bytearray(image_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    image_file.write_bytes(bytes(data))
    altered = tmp_path / "altered.tar"
    subprocess.run(["tar", "-cf", str(altered), "-C", str(unpacked), "."], check=True)
    remove_images(docker_client, images)
    done = bundle(images, "load", str(altered), str(tmp_path / "venue"), cwd=tmp_path)
    assert done.returncode == 1
    assert "does not match its checksums" in done.stderr, done.stderr
    assert f"(images/{image_file.name} differs)" in done.stderr, done.stderr
    assert present(docker_client, images) == set()


def test_an_archive_that_is_not_a_bundle_is_refused_and_nothing_is_loaded(images, tmp_path):
    other = tmp_path / "photos.tar"
    with tarfile.open(other, "w") as archive:
        archive.addfile(tarfile.TarInfo("IMAGES"), io.BytesIO(b""))
    done = bundle(images, "load", str(other), str(tmp_path / "venue"), cwd=tmp_path)
    assert done.returncode == 1
    assert "is not a workshop bundle (no SHA256SUMS or IMAGES in it)" in done.stderr, done.stderr
    assert not (tmp_path / "venue").exists()


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
    done = bundle(images, "load", str(saved), str(used), cwd=tmp_path)
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
    shutil.copy(saved, stick / "bundle.tar")
    remount_read_only(stick)
    scratch = small_mount(f"{saved.stat().st_size // 4}", "scratch")
    remove_images(docker_client, images)

    done = bundle(
        {**images, "TMPDIR": str(scratch)},
        "load", str(stick / "bundle.tar"), str(tmp_path / "venue"),
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
