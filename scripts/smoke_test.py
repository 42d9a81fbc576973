#!/usr/bin/env python3
"""Smoke test of a lab environment: can an attendee do the whole course here?

Run it inside a lab container (the image ships it as /opt/workshop/scripts/smoke_test.py) or
natively in a virtualenv, on the venue's machines, before the course starts:

    python scripts/smoke_test.py                     # every check, table on the terminal
    python scripts/smoke_test.py --json report.json  # and a machine-readable report
    python scripts/smoke_test.py --require-gpu       # the cuda image on a GPU host
    python scripts/smoke_test.py --skip labs         # or --only versions,amp,lab:02

Each check ends with a verdict: pass, warn (works, but differs from what the image pins),
skip (cannot apply here, with the reason) or fail (with the cause and the fix). The exit
status is 0 only when no check failed. Progress of the long steps goes to stderr.

Only the standard library is imported up front, so a broken torch or Jupyter install is
reported as a failed check instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

SCRIPT_ROOT = Path(__file__).resolve().parent.parent
# In the image this script lives in /opt/workshop/scripts, natively in the repository's
# scripts/, so the files it needs sit next to its parent either way; /opt/workshop is the
# fallback for a copy of the script run from elsewhere inside the image.
IMAGE_ROOT = Path("/opt/workshop")
CONSTRAINTS_CANDIDATES = [SCRIPT_ROOT / "constraints.txt", IMAGE_ROOT / "constraints.txt"]
# The lab sources, with their solutions: the repository's labs/. The image has none (its
# notebooks are the attendee edition); run_smoke_tests.py mounts the repository's there.
LABS_DIR_CANDIDATES = [SCRIPT_ROOT / "labs", IMAGE_ROOT / "lab-sources"]
CGROUP_ROOT = Path("/sys/fs/cgroup")
SHM_DIR = Path("/dev/shm")
DEFAULT_LAB_BUDGET_S = 120
# cgroup v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX * page size).
UNLIMITED_THRESHOLD = 2**60

PASS, WARN, SKIP, FAIL = "pass", "warn", "skip", "fail"
MiB = 1024**2
GiB = 1024**3

_started = time.monotonic()


def progress(message: str) -> None:
    """One line on stderr, so that the table on stdout stays clean for a reader or a pipe."""
    print(f"[smoke {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


class Verdict(Exception):
    """Ends a check with a verdict other than pass; the message says why."""

    verdict = FAIL


class Failed(Verdict):
    verdict = FAIL


class Skipped(Verdict):
    verdict = SKIP


class Warned(Verdict):
    verdict = WARN


@dataclass
class Options:
    require_gpu: bool
    constraints: Path | None
    labs_dir: Path | None
    lab_budget_s: float


@dataclass
class Check:
    """A named step. `run(options, figures)` fills `figures` as it measures (so a failing check
    still reports what it saw), returns a one-line note, or raises a Verdict."""

    name: str
    group: str
    run: Callable[[Options, dict], str]


@dataclass
class Result:
    name: str
    group: str
    verdict: str
    note: str
    seconds: float
    figures: dict = field(default_factory=dict)
    error: str | None = None


# --- small readers, kept pure so the unit tests can feed them files and strings ---------------


def read_constraints(path: Path) -> dict[str, str]:
    """`name==version` lines of a pip constraints file, by normalized project name."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*==\s*([^\s;#]+).*", line)
        if match:
            pins[normalize_name(match.group(1))] = match.group(2)
    return pins


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def public_version(version: str) -> str:
    """'2.13.0+cpu' -> '2.13.0': the CPU and CUDA wheels of one release are the same pin."""
    return version.split("+", 1)[0]


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


def _read_first_line(path: Path) -> str | None:
    try:
        return path.read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        return None


def _limit(text: str | None) -> int | None:
    """A cgroup limit as an int, None for 'max', unlimited or unreadable."""
    if text is None or not text.lstrip("-").isdigit():
        return None
    value = int(text)
    return None if value < 0 or value >= UNLIMITED_THRESHOLD else value


def cgroup_limits(root: Path = CGROUP_ROOT) -> dict[str, Any]:
    """Memory, pids and CPU limits of this container from cgroup v2, else cgroup v1."""
    if (root / "cgroup.controllers").exists():
        cpu_max = (_read_first_line(root / "cpu.max") or "max").split()
        quota = _limit(cpu_max[0])
        period = _limit(cpu_max[1]) if len(cpu_max) > 1 else None
        return {
            "cgroup_version": 2,
            "memory_limit_bytes": _limit(_read_first_line(root / "memory.max")),
            "pids_max": _limit(_read_first_line(root / "pids.max")),
            "cpu_quota_cores": round(quota / period, 2) if quota and period else None,
        }
    quota = _limit(_read_first_line(root / "cpu" / "cpu.cfs_quota_us"))
    period = _limit(_read_first_line(root / "cpu" / "cpu.cfs_period_us"))
    return {
        "cgroup_version": 1,
        "memory_limit_bytes": _limit(_read_first_line(root / "memory" / "memory.limit_in_bytes")),
        "pids_max": _limit(_read_first_line(root / "pids" / "pids.max")),
        "cpu_quota_cores": round(quota / period, 2) if quota and period else None,
    }


def shm_size_bytes(path: Path = SHM_DIR) -> int | None:
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_blocks * stats.f_frsize


def human_bytes(size: int | None) -> str:
    if size is None:
        return "unlimited"
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def find_existing(explicit: Path | None, candidates: list[Path]) -> Path | None:
    if explicit is not None:
        return explicit
    return next((path for path in candidates if path.exists()), None)


# --- checks -------------------------------------------------------------------------------------


def check_system(options: Options, figures: dict) -> str:
    """The limits the attendee's code runs under: a wrong one explains many later failures."""
    limits = cgroup_limits()
    figures.update(limits)
    figures["uid"] = os.getuid()
    figures["gid"] = os.getgid()
    figures["cpu_count"] = os.cpu_count()
    figures["cpus_usable"] = len(os.sched_getaffinity(0))
    figures["shm_bytes"] = shm_size_bytes()
    figures["image_flavor"] = os.environ.get("WORKSHOP_IMAGE_FLAVOR")  # set by the lab image
    figures["hostname"] = platform.node()
    figures["platform"] = platform.platform()
    cpus = limits["cpu_quota_cores"] or figures["cpus_usable"]
    return (
        f"uid {figures['uid']} · {cpus:g} CPUs"
        f" · memory {human_bytes(limits['memory_limit_bytes'])}"
        f" · pids {limits['pids_max'] or 'unlimited'}"
        f" · /dev/shm {human_bytes(figures['shm_bytes'])}"
    )


NMS_BOXES = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]]
NMS_SCORES = [0.9, 0.8, 0.7]
# The second box overlaps the first (IoU 0.68) and is suppressed.
NMS_EXPECTED = [0, 2]


def run_nms(device: str) -> list[int]:
    """A torchvision C++/CUDA op: it only runs when torch and torchvision were built together."""
    import torch
    import torchvision

    boxes = torch.tensor(NMS_BOXES, device=device)
    scores = torch.tensor(NMS_SCORES, device=device)
    return torchvision.ops.nms(boxes, scores, iou_threshold=0.5).cpu().tolist()


def check_versions(options: Options, figures: dict) -> str:
    figures["python"] = platform.python_version()
    figures["python_executable"] = sys.executable
    progress("versions: importing torch and torchvision")
    try:
        import torch
    except Exception as error:
        raise Failed(
            f"import torch failed: {error}. Reinstall torch from constraints.txt"
        ) from None
    figures["torch"] = torch.__version__
    figures["cuda_runtime"] = torch.version.cuda
    figures["cudnn"] = (
        torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    )
    figures["cuda_runtime_wheels"] = {
        dist.metadata["Name"]: dist.version
        for dist in metadata.distributions()
        if (dist.metadata["Name"] or "").lower().startswith("nvidia-cuda-runtime")
    }
    try:
        import torchvision

        figures["torchvision"] = torchvision.__version__
        kept = run_nms("cpu")
    except Exception as error:
        raise Failed(
            f"torchvision does not work with torch {torch.__version__}: "
            f"{type(error).__name__}: {error}. Install the torchvision built for this torch "
            "(the pair pinned in constraints.txt) and rebuild the image"
        ) from None
    if kept != NMS_EXPECTED:
        raise Failed(f"torchvision.ops.nms kept boxes {kept}, expected {NMS_EXPECTED}")
    cuda = f"CUDA runtime {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    return (
        f"Python {figures['python']} · torch {torch.__version__} · "
        f"torchvision {torchvision.__version__} · {cuda} · nms ok"
    )


def check_pins(options: Options, figures: dict) -> str:
    """Installed versions against constraints.txt: a difference is reported, not refused,
    because a GPU machine borrowed for the day may bring its own torch."""
    path = find_existing(options.constraints, CONSTRAINTS_CANDIDATES)
    if path is None or not path.exists():
        looked = options.constraints or " or ".join(map(str, CONSTRAINTS_CANDIDATES))
        raise Skipped(f"no constraints file at {looked}: pass --constraints PATH")
    figures["constraints"] = str(path)
    pins = read_constraints(path)
    differ, matching, not_installed = {}, [], []
    for name, pinned in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            # The lab image does not install the hub's or the tests' packages.
            not_installed.append(name)
            continue
        if public_version(installed) == public_version(pinned):
            matching.append(name)
        else:
            differ[name] = {"pinned": pinned, "installed": installed}
    figures.update(matching=matching, differ=differ, not_installed=not_installed)
    if differ:
        listed = ", ".join(
            f"{n} {v['installed']} (pinned {v['pinned']})" for n, v in differ.items()
        )
        raise Warned(f"differs from {path.name}: {listed}")
    return f"{len(matching)} installed packages match {path}"


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
    figures["driver"] = _read_first_line(Path("/proc/driver/nvidia/version"))
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


@dataclass
class TrainingRun:
    losses: list[float]
    ms_per_step: float  # the fastest step: on a shared machine the others measure the neighbours
    median_ms_per_step: float
    output_dtype: str
    final_scale: float | None


def train_steps(
    torch: Any, device: str, dtype: Any, *, width: int, batch: int, steps: int, scaled: bool
) -> TrainingRun:
    """A few Adam steps on one fixed batch (so the loss must fall), under autocast to `dtype`
    (None: plain fp32). `scaled` adds a GradScaler, which fp16 needs and bf16 does not."""
    nn = torch.nn
    device_type = device.split(":")[0]
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device_type) if scaled else None
    inputs = torch.randn(batch, width, device=device)
    targets = torch.randint(0, 10, (batch,), device=device)
    warmup = 3
    losses, times = [], []
    for step in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            logits = model(inputs)
            loss = nn.functional.cross_entropy(logits, targets)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        losses.append(loss.item())  # .item() waits for the GPU, so the time below is real
        if step >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return TrainingRun(
        losses=[round(value, 5) for value in losses],
        ms_per_step=round(min(times), 3),
        median_ms_per_step=round(statistics.median(times), 3),
        output_dtype=str(logits.dtype).replace("torch.", ""),
        final_scale=scaler.get_scale() if scaler is not None else None,
    )


def assert_learns(run: TrainingRun, label: str, expected_dtype: str) -> None:
    if not all(math.isfinite(value) for value in run.losses):
        raise Failed(f"{label}: the loss became inf/nan: {run.losses}")
    if not sum(run.losses[-3:]) < sum(run.losses[:3]):
        raise Failed(f"{label}: the loss did not fall in {len(run.losses)} steps: {run.losses}")
    if run.output_dtype != expected_dtype:
        raise Failed(f"{label}: autocast produced {run.output_dtype}, expected {expected_dtype}")
    if run.final_scale is not None and not (math.isfinite(run.final_scale) and run.final_scale > 0):
        raise Failed(f"{label}: GradScaler's scale is {run.final_scale}")


def amp_comparison(
    torch: Any, device: str, dtype: Any, figures: dict, *, scaled: bool, **sizes: int
) -> str:
    """Train under AMP and in fp32 with the same model; record both runs and the speed-up."""
    label = f"{device} {str(dtype).replace('torch.', '')}"
    progress(f"amp: {label} autocast{' + GradScaler' if scaled else ''}, then fp32")
    amp = train_steps(torch, device, dtype, scaled=scaled, **sizes)
    fp32 = train_steps(torch, device, None, scaled=False, **sizes)
    speedup = round(fp32.ms_per_step / amp.ms_per_step, 2)
    key = label.replace(" ", "_").replace(":0", "")
    figures[key] = {
        **amp.__dict__,
        "fp32_ms_per_step": fp32.ms_per_step,
        "speedup_vs_fp32": speedup,
    }
    assert_learns(amp, label, expected_dtype=str(dtype).replace("torch.", ""))
    assert_learns(fp32, f"{device} fp32", expected_dtype="float32")
    return f"{label} {speedup:g}x vs fp32"


def check_amp_cpu(options: Options, figures: dict) -> str:
    """CPU autocast (bf16) is what labs use without a GPU; it need not be faster to pass."""
    import torch

    return amp_comparison(
        torch, "cpu", torch.bfloat16, figures, scaled=False, width=256, batch=128, steps=20
    )


def check_amp_cuda(options: Options, figures: dict) -> str:
    import torch

    if not torch.cuda.is_available():
        raise no_cuda(options, why_no_cuda(torch))
    sizes = {"width": 4096, "batch": 2048, "steps": 25}
    notes = [amp_comparison(torch, "cuda:0", torch.float16, figures, scaled=True, **sizes)]
    # Real bfloat16 units only: by default an emulating T4 or V100 also counts, and would be
    # measured in bf16 at a fraction of its speed.
    figures["bf16_supported"] = torch.cuda.is_bf16_supported(including_emulation=False)
    if figures["bf16_supported"]:
        notes.append(
            amp_comparison(torch, "cuda:0", torch.bfloat16, figures, scaled=False, **sizes)
        )
    else:
        notes.append("bf16 not supported by this GPU")
    return " · ".join(notes)


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
            f"/dev/shm is {human_bytes(shm)}: give the "
            "container more shared memory (WORKSHOP_SHM_SIZE, docker run --shm-size 512m)"
        ) from None
    seconds = time.perf_counter() - start
    figures["seconds"] = round(seconds, 3)
    figures["mib_per_second"] = round(len(dataset) / seconds, 1)
    return f"{workers} workers moved {len(dataset)} MiB · /dev/shm {human_bytes(shm)}"


def check_kernel(options: Options, figures: dict) -> str:
    """JupyterLab is useless if its kernel cannot start (missing ipykernel, a broken
    kernelspec, no writable runtime dir)."""
    from jupyter_client.manager import start_new_kernel

    progress("kernel: starting a python3 kernel")
    start = time.perf_counter()
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        figures["startup_seconds"] = round(time.perf_counter() - start, 2)
        figures["kernel_argv"] = manager.kernel_spec.argv if manager.kernel_spec else None
        results: list[str] = []

        def keep_result(message: dict) -> None:
            if message["msg_type"] == "execute_result":
                results.append(message["content"]["data"].get("text/plain", ""))

        reply = client.execute_interactive("1+1", timeout=30, output_hook=keep_result)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    figures["status"] = reply["content"]["status"]
    figures["result"] = results[0] if results else None
    if figures["status"] != "ok" or figures["result"] != "2":
        raise Failed(f"the kernel answered {figures['result']!r} ({figures['status']}) to 1+1")
    return f"python3 kernel started in {figures['startup_seconds']} s, 1+1 = 2"


def check_lab(source: Path, options: Options, figures: dict) -> str:
    """Run the lab as the test suite does: solutions applied, quick mode, fresh kernel."""
    from workshop_labs import notebooks

    figures["source"] = str(source)
    figures["budget_seconds"] = options.lab_budget_s
    progress(f"labs: executing {source.name} (quick mode, budget {options.lab_budget_s:g} s)")
    start = time.perf_counter()
    notebook = notebooks.apply_solutions(notebooks.build_notebook(source))
    try:
        notebooks.execute(
            notebook,
            quick=True,
            timeout=math.ceil(options.lab_budget_s),
            cwd=os.environ.get("WORKSHOP_WORK_DIR"),
        )
    except notebooks.LabFailed as error:
        raise Failed(str(error)) from None
    seconds = time.perf_counter() - start
    figures["seconds"] = round(seconds, 2)
    if seconds > options.lab_budget_s:
        raise Failed(
            f"took {seconds:.0f} s, over its {options.lab_budget_s:g} s budget: the machine is "
            "too slow or too loaded for the course (or raise --lab-budget)"
        )
    return f"ran in {seconds:.1f} s (budget {options.lab_budget_s:g} s)"


STATIC_CHECKS = [
    Check("system", "system", check_system),
    Check("versions", "versions", check_versions),
    Check("pins", "versions", check_pins),
    Check("gpu", "gpu", check_gpu),
    Check("amp_cpu", "amp", check_amp_cpu),
    Check("amp_cuda", "amp", check_amp_cuda),
    Check("dataloader", "runtime", check_dataloader),
    Check("kernel", "runtime", check_kernel),
]
LAB_PREFIX = "lab:"


def selected(check: Check, only: list[str], skip: list[str]) -> bool:
    """A token selects a check by its name, its group, or a name prefix ('lab:02')."""

    def matches(token: str) -> bool:
        return token in (check.name, check.group) or check.name.startswith(token + "_")

    wanted = not only or any(matches(token) for token in only)
    return wanted and not any(matches(token) for token in skip)


def lab_checks(labs_dir: Path | None) -> list[Check]:
    """One check per lab source, or a single failing check saying why there are none."""

    def cannot_run(reason: str) -> list[Check]:
        def fail(options: Options, figures: dict) -> str:
            raise Failed(reason)

        return [Check("labs", "labs", fail)]

    folder = find_existing(labs_dir, LABS_DIR_CANDIDATES)
    if folder is None:
        looked = ", ".join(map(str, LABS_DIR_CANDIDATES))
        return cannot_run(f"no lab sources found in {looked}: pass --labs-dir DIR")
    try:
        from workshop_labs import notebooks
    except Exception as error:
        return cannot_run(
            f"the labs' helper package workshop_labs cannot be imported ({error}): "
            "install it with `pip install -e labs` (the image installs it)"
        )
    sources = notebooks.lab_sources(folder)
    if not sources:
        return cannot_run(
            f"no lab sources (0*_*.py) in {folder}: pass --labs-dir with the repository's "
            "labs/ (the image holds no solutions; run_smoke_tests.py mounts them)"
        )
    return [
        Check(f"{LAB_PREFIX}{source.stem}", "labs", partial(check_lab, source))
        for source in sources
    ]


def plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Check]:
    known = {name for check in STATIC_CHECKS for name in (check.name, check.group)} | {"labs"}
    for token in args.only + args.skip:
        if token not in known and not token.startswith(LAB_PREFIX):
            parser.error(f"unknown check {token!r}; choose from {', '.join(sorted(known))}, lab:NN")
    checks = [check for check in STATIC_CHECKS if selected(check, args.only, args.skip)]
    # Finding the labs imports workshop_labs: only do it when a lab may run.
    wants_labs = "labs" not in args.skip and (
        not args.only or any(t == "labs" or t.startswith(LAB_PREFIX) for t in args.only)
    )
    if wants_labs:
        labs = [
            check for check in lab_checks(args.labs_dir) if selected(check, args.only, args.skip)
        ]
        lab_tokens = [token for token in args.only if token.startswith(LAB_PREFIX)]
        if lab_tokens and not labs:
            parser.error(f"no lab matches {', '.join(lab_tokens)}")
        checks += labs
    return checks


def run_check(check: Check, options: Options) -> Result:
    figures: dict = {}
    error = None
    start = time.perf_counter()
    try:
        verdict, note = PASS, check.run(options, figures)
    except Verdict as outcome:
        verdict, note = outcome.verdict, str(outcome)
    except Exception as unexpected:
        verdict, note = FAIL, f"{type(unexpected).__name__}: {unexpected}"
        error = traceback.format_exc()
    seconds = round(time.perf_counter() - start, 2)
    progress(f"{check.name}: {verdict} ({seconds:.1f} s)")
    return Result(check.name, check.group, verdict, note, seconds, figures, error)


def run_with_scratch_work_dir(checks: list[Check], options: Options) -> list[Result]:
    """Labs save artifacts for later labs in WORKSHOP_WORK_DIR; give them a scratch folder so
    a smoke test never writes into an attendee's work, and run them in course order."""
    with tempfile.TemporaryDirectory(prefix="smoke-work-") as scratch:
        previous = os.environ.get("WORKSHOP_WORK_DIR")
        os.environ["WORKSHOP_WORK_DIR"] = scratch
        try:
            return [run_check(check, options) for check in checks]
        finally:
            if previous is None:
                os.environ.pop("WORKSHOP_WORK_DIR")
            else:
                os.environ["WORKSHOP_WORK_DIR"] = previous


def render_table(results: list[Result]) -> str:
    width = max([len("check"), *(len(result.name) for result in results)])
    lines = [f"{'check':<{width}}  verdict  seconds  details", "-" * (width + 60)]
    for result in results:
        first_line = result.note.strip().splitlines()[0] if result.note.strip() else ""
        lines.append(
            f"{result.name:<{width}}  {result.verdict.upper():<7}  {result.seconds:7.1f}  "
            f"{first_line}"
        )
    failed = [result for result in results if result.verdict == FAIL]
    for result in failed:
        if "\n" in result.note.strip():
            lines += ["", f"--- {result.name} failed ---", result.note.strip()]
    counts = {
        verdict: sum(r.verdict == verdict for r in results) for verdict in (PASS, WARN, SKIP, FAIL)
    }
    summary = ", ".join(f"{count} {verdict}" for verdict, count in counts.items() if count)
    lines += ["", f"{'FAILED' if failed else 'OK'}: {summary or 'no checks selected'}"]
    return "\n".join(lines)


def build_report(results: list[Result], options: Options, argv: list[str]) -> dict:
    return {
        "ok": not any(result.verdict == FAIL for result in results),
        "argv": argv,
        "host": platform.node(),
        "require_gpu": options.require_gpu,
        "seconds": round(time.monotonic() - _started, 2),
        "checks": [result.__dict__ for result in results],
    }


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    def names(text: str) -> list[str]:
        return [token.strip() for token in text.split(",") if token.strip()]

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Checks: system, versions (versions, pins), gpu, amp (amp_cpu, amp_cuda), "
        "runtime (dataloader, kernel), labs (lab:NN_name). Exit status 0 only when none failed.",
    )
    parser.add_argument("--json", type=Path, help="also write the full report to this file")
    parser.add_argument(
        "--require-gpu", action="store_true", help="fail (not skip) when there is no usable GPU"
    )
    parser.add_argument("--only", type=names, default=[], help="comma-separated checks or groups")
    parser.add_argument("--skip", type=names, default=[], help="comma-separated checks or groups")
    parser.add_argument("--constraints", type=Path, help="pins to compare with (constraints.txt)")
    parser.add_argument("--labs-dir", type=Path, help="folder of the lab sources (0*_*.py)")
    parser.add_argument(
        "--lab-budget",
        type=float,
        default=DEFAULT_LAB_BUDGET_S,
        metavar="SECONDS",
        help=f"time each lab may take in quick mode (default {DEFAULT_LAB_BUDGET_S})",
    )
    return parser.parse_args(argv), parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, parser = parse_args(argv)
    options = Options(args.require_gpu, args.constraints, args.labs_dir, args.lab_budget)
    checks = plan(args, parser)
    results = run_with_scratch_work_dir(checks, options)
    print(render_table(results), flush=True)
    report = build_report(results, options, argv)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
