import subprocess

from workshop_hub.room.disks import (
    DISKS_ROOT,
    PREPARE_SCRIPT,
    REMOVE_SCRIPT,
    bind_volume_options,
    disk_paths,
    is_capped,
)


def test_each_volume_has_its_own_image_and_mount_point_under_its_instance():
    paths = disk_paths("room1", "room1-user-ada")
    assert str(paths.image) == f"{DISKS_ROOT}/room1/disks/room1-user-ada.img"
    assert str(paths.mountpoint) == f"{DISKS_ROOT}/room1/mnt/room1-user-ada"
    assert disk_paths("room2", "room2-user-ada").image != paths.image


def test_the_volume_is_a_bind_of_the_mounted_disk():
    paths = disk_paths("room1", "room1-user-ada")
    assert bind_volume_options(paths) == {
        "type": "none",
        "o": "bind",
        "device": f"{DISKS_ROOT}/room1/mnt/room1-user-ada",
    }


def test_only_a_bind_of_this_disk_counts_as_capped():
    paths = disk_paths("room1", "room1-user-ada")
    assert is_capped({"Options": bind_volume_options(paths)}, paths)
    # A volume of an older deployment: Docker reports no options at all.
    assert not is_capped({"Options": None}, paths)
    assert not is_capped({"Options": {}}, paths)
    other = disk_paths("room2", "room1-user-ada")
    assert not is_capped({"Options": bind_volume_options(other)}, paths)


def test_helper_scripts_are_valid_shell():
    for script in (PREPARE_SCRIPT, REMOVE_SCRIPT):
        assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0
    # The attendee (uid 1000 in the lab image) owns the new file system's root.
    assert "root_owner=1000:100" in PREPARE_SCRIPT
