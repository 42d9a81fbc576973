"""Mixed precision: autocast (and GradScaler for fp16) trains, on the CPU and on a GPU."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

from workshop_labs.smoke.core import Failed, Options, progress
from workshop_labs.smoke.gpu import no_cuda, why_no_cuda


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
