"""Python, torch and torchvision: installed, built for each other, and as constraints.txt pins."""

from __future__ import annotations

import platform
import re
import sys
from importlib import metadata
from pathlib import Path

from workshop_labs.smoke.core import Failed, Options, Skipped, Warned, progress

# The pins sit at the root above labs/: the repository natively, /opt/workshop in the image.
CONSTRAINTS = Path(__file__).resolve().parents[3] / "constraints.txt"

NMS_BOXES = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]]
NMS_SCORES = [0.9, 0.8, 0.7]
# The second box overlaps the first (IoU 0.68) and is suppressed.
NMS_EXPECTED = [0, 2]


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
    path = options.constraints or CONSTRAINTS
    if not path.exists():
        raise Skipped(f"no constraints file at {path}: pass --constraints PATH")
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
