"""torch.compile: on a CPU it writes C++ and builds it, so the image needs g++ and Python's
headers (lab 3 times a compiled model)."""

from __future__ import annotations

import time

from workshop_labs.smoke.core import Failed, Options, progress

FIX = (
    "the lab image installs g++ and Python's headers for it (docker/lab/Dockerfile): rebuild "
    "the image; natively, install a C++ compiler and your Python's development headers"
)


def check_compile(options: Options, figures: dict) -> str:
    """Compile a small function for the CPU and compare it with eager mode: a missing compiler
    or missing headers only show when an attendee first calls torch.compile."""
    import torch

    def gelu_sum(x):
        return torch.nn.functional.gelu(x @ x.T).sum(dim=1)

    progress("compile: torch.compile of a small function for the CPU (C++ build, up to a minute)")
    x = torch.randn(64, 64)
    start = time.perf_counter()
    try:
        compiled = torch.compile(gelu_sum)(x)
    except Exception as error:  # inductor wraps the compiler's failure in its own errors
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        cause = next(
            (line for line in lines if "error" in line.lower() or "not found" in line.lower()),
            lines[0] if lines else type(error).__name__,
        )
        if "failed to map segment" in str(error) or "operation not permitted" in str(error).lower():
            raise Failed(
                f"torch.compile built its code but could not load it: {cause[:300]}. Fix: "
                "/tmp (where inductor keeps it) is mounted noexec; mount it with exec, as the "
                "hub does for attendees (workshop_hub/room/profiles.py)"
            ) from None
        raise Failed(
            f"torch.compile could not build for the CPU: {cause[:300]}. Fix: {FIX}"
        ) from None
    figures["compile_seconds"] = round(time.perf_counter() - start, 2)
    difference = (compiled - gelu_sum(x)).abs().max().item()
    figures["max_abs_difference"] = difference
    if difference > 1e-3:
        raise Failed(f"the compiled function differs from eager mode by {difference:.3g}")
    return f"compiled for the CPU in {figures['compile_seconds']} s, same result as eager mode"
