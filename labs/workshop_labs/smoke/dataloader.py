"""DataLoader workers: they hand batches over in /dev/shm, which Docker keeps small."""

from __future__ import annotations

import time
from typing import Any

from workshop_labs.smoke.core import Failed, Options, Verdict, progress
from workshop_labs.smoke.system import shm_size_bytes
from workshop_labs.units import MiB, human_size


class ShmHungryDataset:
    """Samples large enough that each batch a worker sends back must go through /dev/shm.

    Sample i is filled with the value i, so the main process can check what arrived.
    """

    def __init__(self, samples: int, floats_per_sample: int) -> None:
        self.samples = samples
        self.floats_per_sample = floats_per_sample

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> Any:
        import torch

        return torch.full((self.floats_per_sample,), float(index))


def root_cause(error: Exception) -> str:
    """The last line of an error: for a worker's error, torch puts the original one there."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__).rstrip(".")


def check_dataloader(options: Options, figures: dict) -> str:
    """DataLoader workers hand batches over in /dev/shm; Docker's default (64 MB) or a
    forgotten --shm-size kills them with a bus error in the middle of lab 2."""
    import torch

    shm = shm_size_bytes()
    figures["shm_bytes"] = shm
    workers, batch_size = 2, 4
    # 1 MiB per sample, 4 MiB per batch, up to 2 batches prefetched per worker: about 16 MiB
    # in /dev/shm at once, more than a tiny shm holds and well within Docker's default.
    dataset = ShmHungryDataset(samples=32, floats_per_sample=MiB // 4)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, timeout=120
    )
    figures.update(workers=workers, batch_bytes=batch_size * MiB, batches=len(loader))
    progress(f"dataloader: {workers} workers, {len(loader)} batches of {batch_size} MiB")
    start = time.perf_counter()
    try:
        for number, batch in enumerate(loader):
            expected = torch.arange(number * batch_size, (number + 1) * batch_size).float()
            if not torch.equal(batch[:, 0], expected) or not torch.equal(batch[:, -1], expected):
                raise Failed(f"batch {number} arrived corrupted from the worker processes")
    except Verdict:
        raise
    except Exception as error:
        raise Failed(
            f"DataLoader with {workers} workers failed: {root_cause(error)}. "
            f"/dev/shm is {human_size(shm)}: give the "
            "container more shared memory (WORKSHOP_SHM_SIZE, docker run --shm-size 512m)"
        ) from None
    seconds = time.perf_counter() - start
    figures["seconds"] = round(seconds, 3)
    figures["mib_per_second"] = round(len(dataset) / seconds, 1)
    return f"{workers} workers moved {len(dataset)} MiB · /dev/shm {human_size(shm)}"
