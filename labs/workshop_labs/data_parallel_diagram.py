"""Data-parallel training in one picture, drawn from a real run: the batch split between the
processes, each process's own gradient, the all-reduce that averages them, and the same update
on every process.

``data_parallel_picture`` takes the reports that lab 7's training script writes, one per
process (rank): the samples of its share of the first batch, the first numbers of its own
gradient for one parameter, the averaged gradient DDP gave it, and whether every process ended
with the same weights. Every number drawn is one of those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from workshop_labs import data
from workshop_labs.plots import PALETTE, figure, show

# One drawing unit is 0.1 inch in both directions.
WIDTH, HEIGHT = 140, 56
INK = "#333333"
MEAN = PALETTE[2]
RANK_COLOURS = (PALETTE[0], PALETTE[1], PALETTE[3], PALETTE[4])
SHOWN_SAMPLES = 5  # digit pictures drawn per process; the rest of its share is counted
REPORT_KEYS = (
    "rank",
    "world_size",
    "parameter",
    "samples",
    "own",
    "yours",
    "averaged",
    "steps",
    "identical",
)


def _numbers(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{value:+.4f}" for value in values) + ", …]"


def _box(ax: Axes, x: float, y: float, w: float, h: float, colour: str, text: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.4,rounding_size=1.5",
            facecolor=to_rgba(colour, 0.13),
            edgecolor=colour,
            lw=1.8,
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=10, color=INK)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], text: str = "") -> None:
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16, lw=1.6, color=INK)
    )
    if text:
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 1.2)
        ax.text(*middle, text, ha="center", va="bottom", fontsize=8.5, color=INK)


def _share(ax: Axes, report: Mapping, x: float, y: float, colour: str) -> None:
    """The process's share of the first batch: its first digits as pictures, with labels."""
    pixels, labels = data.digits()
    samples, world_size = report["samples"], report["world_size"]
    _box(ax, x, y, 34, 17, colour, "")
    ax.text(
        x + 17,
        y + 14.6,
        f"rank {report['rank']}: {len(samples)} of the batch's {world_size * len(samples)} samples",
        ha="center",
        fontsize=10.5,
        fontweight="bold",
        color=colour,
    )
    for slot, index in enumerate(samples[:SHOWN_SAMPLES]):
        inset = ax.inset_axes((x + 1 + slot * 6.2, y + 3.2, 5.4, 8.5), transform=ax.transData)
        inset.imshow(pixels[index].view(8, 8).numpy(), cmap="gray_r", vmin=0, vmax=1)
        inset.set_xticks([])
        inset.set_yticks([])
        inset.set_title(f"#{index}: {int(labels[index])}", fontsize=7.5, pad=2)
    ax.text(
        x + 17,
        y + 0.6,
        f"… and {len(samples) - SHOWN_SAMPLES} more (DistributedSampler)",
        ha="center",
        fontsize=8.5,
        color=INK,
    )


def data_parallel_picture(reports: Sequence[Mapping]) -> Figure:
    """One row per process: its share of the batch → its own gradient → (all-reduce, shared)
    → the same update. ``reports`` are the per-rank dictionaries of lab 7's script."""
    missing = sorted({key for report in reports for key in REPORT_KEYS if key not in report})
    if missing or not reports:
        raise ValueError(
            f"data_parallel_picture needs one report per rank with {', '.join(REPORT_KEYS)}; "
            f"missing: {', '.join(missing) or 'every report'}"
        )
    reports = sorted(reports, key=lambda report: report["rank"])
    world_size = reports[0]["world_size"]
    fig, ax = figure(figsize=(WIDTH / 10, HEIGHT / 10))
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(0, HEIGHT)
    ax.axis("off")
    row_height = (HEIGHT - 8) / len(reports)
    centre_y = (HEIGHT - 8) / 2
    averaged = reports[0]["averaged"]
    _box(
        ax,
        80,
        centre_y - 8,
        26,
        16,
        MEAN,
        f"all-reduce: add up the {world_size}\ngradients, divide by {world_size}\n\n"
        f"every rank gets\n{_numbers(averaged)}",
    )
    first = " + ".join(f"({report['own'][0]:+.4f})" for report in reports)
    first_mean = sum(report["own"][0] for report in reports) / world_size
    ax.text(
        93,
        centre_y - 11,
        f"first number: ({first}) / {world_size}\n= {first_mean:+.4f}",
        ha="center",
        va="top",
        fontsize=8.5,
        color=INK,
    )
    for position, report in enumerate(reports):
        colour = RANK_COLOURS[position % len(RANK_COLOURS)]
        y = HEIGHT - 8 - (position + 1) * row_height + (row_height - 17) / 2
        _share(ax, report, 1, y, colour)
        _box(
            ax,
            42,
            y + 2,
            30,
            13,
            colour,
            f"forward + backward on its share\n\nits own gradient of {report['parameter']}\n"
            f"{_numbers(report['own'])}",
        )
        _arrow(ax, (36, y + 8.5), (41, y + 8.5))
        _arrow(ax, (73, y + 8.5), (79, centre_y + (1 if y > centre_y else -1) * 3))
        yours = (
            "yours: the same ✓"
            if all(abs(a - b) < 1e-5 for a, b in zip(report["yours"], averaged, strict=True))
            else "yours: NOT the same ✗"
        )
        _box(
            ax,
            113,
            y + 2,
            25,
            13,
            colour,
            f"optimizer.step() with\nthe averaged gradient\n({yours})\n\n"
            f"after {report['steps']} steps: weights\n"
            f"{'identical on every rank ✓' if report['identical'] else 'DIFFER between ranks ✗'}",
        )
        _arrow(ax, (107, centre_y + (1 if y > centre_y else -1) * 3), (112, y + 8.5))
    ax.text(
        WIDTH / 2,
        HEIGHT - 1.5,
        f"Data-parallel training: {world_size} processes, each on its own share of every batch",
        ha="center",
        va="top",
        fontsize=13,
        fontweight="bold",
        color=INK,
    )
    return show(fig)
