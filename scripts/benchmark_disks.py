"""What allocating each work disk in full costs a start, measured side by side in one run.

    python scripts/benchmark_disks.py [--image pytorch-workshop-hub:latest] [--size 2G] \\
        [--disks 8]

Makes DISKS new disks of SIZE with the hub's disk helper as it is (allocated, tables zeroed
by mkfs), and DISKS with the same helper made sparse again (the image truncated, tables left
to the kernel's lazy init), alternating so both see the same machine; then prepares each
existing disk once more (an attendee's every later start). Prints the medians and ratios.
Needs Docker, root (loop devices) and the hub's image; writes under the disks' usual root on
the host in a folder of its own, removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import docker

from workshop_hub.room.disks import (
    PREPARE_SCRIPT,
    disk_paths,
    remove_instance_disks,
    run_helper,
)
from workshop_hub.settings import parse_size

# The helper as it was before disks were allocated: the only lines that differ.
SPARSE_SCRIPT = (
    PREPARE_SCRIPT.replace(",lazy_itable_init=0,lazy_journal_init=0", "")
    .replace('fallocate -l "$size" "$image.new"', "true")
    .replace('allocate "$size" "$image.new"', 'truncate -s "$size" "$image.new"')
    .replace('elif [ "$(allocated "$image")" -lt "$size" ]; then', "elif false; then")
)


def prepare(client, image: str, script: str, instance: str, volume: str, size: int) -> float:
    """Seconds the helper takes to make (or find) and mount one disk."""
    paths = disk_paths(instance, volume)
    command = ["sh", "-c", script, "prepare-disk", str(paths.image), str(paths.mountpoint)]
    started = time.monotonic()
    run_helper(client, image, [*command, str(size)], paths.image.parent)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="pytorch-workshop-hub:latest")
    parser.add_argument("--size", default="2G", help="each disk's size (WORKSHOP_DISK_LIMIT)")
    parser.add_argument("--disks", type=int, default=8, help="new disks of each kind")
    options = parser.parse_args()
    assert SPARSE_SCRIPT != PREPARE_SCRIPT, "the helper changed: update SPARSE_SCRIPT"
    size = parse_size(options.size)
    client = docker.from_env()
    instance = f"bench-disks-{uuid.uuid4().hex[:6]}"
    kinds = {"allocated": PREPARE_SCRIPT, "sparse": SPARSE_SCRIPT}
    created = {kind: [] for kind in kinds}
    ready = {kind: [] for kind in kinds}
    try:
        for number in range(options.disks):
            for kind, script in kinds.items():
                volume = f"{kind}-{number}"
                created[kind].append(prepare(client, options.image, script, instance, volume, size))
                print(
                    f"[{number + 1}/{options.disks}] {kind}: new disk in "
                    f"{created[kind][-1] * 1000:.0f} ms",
                    flush=True,
                )
        for number in range(options.disks):
            for kind, script in kinds.items():
                volume = f"{kind}-{number}"
                ready[kind].append(prepare(client, options.image, script, instance, volume, size))
    finally:
        print(f"removing {instance}…", flush=True)
        remove_instance_disks(client, options.image, instance)
    print(f"\n{options.disks} disks of {options.size} each, medians:")
    for label, timings in (("new disk (first start)", created), ("existing disk", ready)):
        allocated = statistics.median(timings["allocated"])
        sparse = statistics.median(timings["sparse"])
        print(
            f"  {label:24} allocated {allocated * 1000:6.0f} ms   sparse {sparse * 1000:6.0f} ms"
            f"   ratio {allocated / sparse:.2f}×"
        )


if __name__ == "__main__":
    main()
