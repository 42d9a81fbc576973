"""Mixed precision: autocast trains, on the CPU (bf16) and on a GPU (fp16 with a loss scale,
and bf16 where the GPU has bf16 units).

The fp16 run scales its loss by a fixed factor and unscales the gradients by hand: that
proves what this check is for (fp16 autocast computes, and its gradients survive when the
loss is scaled). It is not lab 4's GradScaler recipe, on purpose: the attendee image ships no
exercise's solution, and the labs check (smoke/labs.py) runs lab 4 itself, GradScaler and all.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

from workshop_labs.smoke.core import Failed, Options, progress
from workshop_labs.smoke.gpu import no_cuda, why_no_cuda

LOSS_SCALE = 2.0**10  # lifts fp16's small gradients above its smallest number, far from its max


@dataclass
class TrainingRun:
    losses: list[float]
    ms_per_step: float  # the fastest step: on a shared machine the others measure the neighbours
    median_ms_per_step: float
    output_dtype: str
    loss_scale: float | None
    skipped_steps: int  # steps whose unscaled gradients held inf or NaN, and were not taken


def train_steps(
    torch: Any, device: str, dtype: Any, *, width: int, batch: int, steps: int, scaled: bool
) -> TrainingRun:
    """A few Adam steps on one fixed batch (so the loss must fall), under autocast to `dtype`
    (None: plain fp32). `scaled` multiplies the loss by LOSS_SCALE before backward and divides
    the gradients by it before the step, as fp16 needs (its small gradients would round to
    0) and bf16 does not; a step whose gradients are not finite is counted and not taken."""
    nn = torch.nn
    device_type = device.split(":")[0]
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_scale = LOSS_SCALE if scaled else 1.0
    skipped = 0
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
        (loss * loss_scale).backward()
        gradients = [p.grad for p in model.parameters()]
        for gradient in gradients:
            gradient.div_(loss_scale)
        if all(bool(torch.isfinite(gradient).all()) for gradient in gradients):
            optimizer.step()
        else:
            skipped += 1
        losses.append(loss.item())  # .item() waits for the GPU, so the time below is real
        if step >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return TrainingRun(
        losses=[round(value, 5) for value in losses],
        ms_per_step=round(min(times), 3),
        median_ms_per_step=round(statistics.median(times), 3),
        output_dtype=str(logits.dtype).replace("torch.", ""),
        loss_scale=loss_scale if scaled else None,
        skipped_steps=skipped,
    )


def assert_learns(run: TrainingRun, label: str, expected_dtype: str) -> None:
    if run.skipped_steps:
        raise Failed(
            f"{label}: {run.skipped_steps} of {len(run.losses)} steps had inf/nan gradients "
            f"with the loss scaled by {run.loss_scale}"
        )
    if not all(math.isfinite(value) for value in run.losses):
        raise Failed(f"{label}: the loss became inf/nan: {run.losses}")
    if not sum(run.losses[-3:]) < sum(run.losses[:3]):
        raise Failed(f"{label}: the loss did not fall in {len(run.losses)} steps: {run.losses}")
    if run.output_dtype != expected_dtype:
        raise Failed(f"{label}: autocast produced {run.output_dtype}, expected {expected_dtype}")


def amp_comparison(
    torch: Any, device: str, dtype: Any, figures: dict, *, scaled: bool, **sizes: int
) -> str:
    """Train under AMP and in fp32 with the same model; record both runs and the speed-up."""
    label = f"{device} {str(dtype).replace('torch.', '')}"
    progress(f"amp: {label} autocast{' + loss scale' if scaled else ''}, then fp32")
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
