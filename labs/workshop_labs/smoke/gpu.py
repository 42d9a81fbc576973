"""The GPUs this container was given: CUDA sees each, computes right, and runs torchvision."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from workshop_labs.smoke.core import (
    Failed,
    Options,
    Skipped,
    Verdict,
    progress,
    read_first_line,
)
from workshop_labs.smoke.versions import NMS_EXPECTED, run_nms
from workshop_labs.units import GiB


def expected_gpu_count(nvidia_visible_devices: str | None) -> int | None:
    """How many GPUs NVIDIA_VISIBLE_DEVICES hands this container; None when it does not say.

    Unset (no NVIDIA runtime, or native) and 'all' say nothing checkable; '', 'void' and
    'none' give no GPU; otherwise it is a comma-separated list of indices or UUIDs.
    """
    if nvidia_visible_devices is None:
        return None
    value = nvidia_visible_devices.strip().lower()
    if value == "all":
        return None
    if value in {"", "void", "none"}:
        return 0
    return len([part for part in value.split(",") if part.strip()])


def no_cuda(options: Options, reason: str) -> Verdict:
    """Without CUDA a GPU check cannot run: fine on a CPU host, a failure with --require-gpu."""
    if options.require_gpu:
        return Failed(
            f"GPU required (--require-gpu) but {reason}. Fix: run the cuda image on a host with "
            "an NVIDIA driver and nvidia-container-toolkit, with a GPU assigned (docker run "
            "--gpus device=0, or WORKSHOP_GPUS)"
        )
    return Skipped(reason)


def why_no_cuda(torch: Any) -> str:
    if torch.version.cuda is None:
        cause = f"torch {torch.__version__} is a CPU-only build"
    else:
        cause = "torch sees no CUDA device"
    visible = os.environ.get("NVIDIA_VISIBLE_DEVICES")
    if visible is not None and expected_gpu_count(visible) != 0:
        cause += (
            f" although NVIDIA_VISIBLE_DEVICES={visible} assigns a GPU "
            "(no usable NVIDIA driver in this container)"
        )
    return f"no CUDA: {cause}"


def check_gpu(options: Options, figures: dict) -> str:
    import torch

    visible = os.environ.get("NVIDIA_VISIBLE_DEVICES")
    figures["NVIDIA_VISIBLE_DEVICES"] = visible
    figures["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    figures["driver"] = read_first_line(Path("/proc/driver/nvidia/version"))
    figures["cuda_available"] = torch.cuda.is_available()
    if not figures["cuda_available"]:
        raise no_cuda(options, why_no_cuda(torch))
    count = torch.cuda.device_count()
    figures["device_count"] = count
    figures["devices"] = [check_one_gpu(torch, index) for index in range(count)]
    expected = expected_gpu_count(visible)
    if expected is not None and figures["CUDA_VISIBLE_DEVICES"] is None and expected != count:
        raise Failed(
            f"NVIDIA_VISIBLE_DEVICES={visible} assigns {expected} GPU(s) but torch sees {count}: "
            "the container runtime and the driver disagree; check `nvidia-smi` on the host"
        )
    names = ", ".join(
        f"{d['name']} (sm {d['capability']}, {d['memory_gib']} GiB)" for d in figures["devices"]
    )
    return f"{count} GPU(s): {names} · matmul and nms match the CPU"


def check_one_gpu(torch: Any, index: int) -> dict:
    progress(f"gpu: checking cuda:{index}")
    props = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)
    device = f"cuda:{index}"
    generator = torch.Generator().manual_seed(index)
    a = torch.randn(1024, 1024, generator=generator)
    b = torch.randn(1024, 1024, generator=generator)
    expected = (a.double() @ b.double()).float()
    # TF32 would trade accuracy for speed; the point here is a correct result.
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        got = (a.to(device) @ b.to(device)).cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    relative_error = ((got - expected).abs().max() / expected.abs().max()).item()
    info = {
        "index": index,
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(total / GiB, 1),
        "free_gib": round(free / GiB, 1),
        "multiprocessors": props.multi_processor_count,
        "matmul_relative_error": relative_error,
        "fp16_matmul_tflops": round(fp16_tflops(torch, device), 1),
    }
    if not relative_error < 1e-4:
        raise Failed(
            f"{device} ({props.name}): matmul differs from the CPU by {relative_error:.2e}"
        )
    kept = run_nms(device)
    if kept != NMS_EXPECTED:
        raise Failed(f"torchvision nms on {device} kept {kept}, expected {NMS_EXPECTED}")
    return info


def fp16_tflops(torch: Any, device: str, size: int = 4096, repeats: int = 20) -> float:
    """Throughput of a large fp16 matmul: far below the GPU's rating means a throttled or
    shared-to-death GPU, worth knowing before 30 attendees use it."""
    a = torch.randn(size, size, device=device, dtype=torch.float16)
    b = torch.randn(size, size, device=device, dtype=torch.float16)
    a @ b
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12
