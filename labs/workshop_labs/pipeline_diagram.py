"""The road from a ``Dataset`` to the batches a training loop receives, drawn from a live
``DataLoader``: the dataset's samples, the sampler's order for the next epoch, that order cut
into batches, the collated tensors, the last (partial) batch and which worker loads which batch.

Nothing is iterated on the loader itself: ``next_epoch`` replays the random draws that the next
``for xb, yb in loader`` will make and puts every random generator back as it was, so the
picture shows exactly the batches that loop gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from torch.utils.data import DataLoader, IterableDataset, RandomSampler

from workshop_labs.plots import PALETTE, figure, show

# One drawing unit is 0.1 inch in both directions, so pictures stay square.
WIDTH, HEIGHT = 150, 100
INK = "#333333"
MAIN_PROCESS = "#BBBBBB"
SHOWN_COLUMNS = 16  # index cells and pictures drawn per batch; the rest are counted
FIRST_ROWS, LAST_ROWS = 4, 2  # batches drawn in the order grid: the first ones and the last ones


@dataclass(frozen=True)
class Epoch:
    """What the next pass over a DataLoader does with the dataset's indices."""

    order: list[int]  # the sampler's order
    batches: list[list[int]]  # that order cut into the batches the loop receives
    dropped: list[int]  # the order's tail that drop_last=True leaves out (empty otherwise)


def next_epoch(loader: DataLoader) -> Epoch:
    """The indices the next ``for batch in loader`` will load, in batches, without consuming
    anything: the random generators are restored afterwards.

    Starting a pass draws one number from ``loader.generator`` (the seed the workers get) before
    the sampler draws its order, so both draws are replayed here, in that order."""
    if isinstance(loader.dataset, IterableDataset):
        raise ValueError("an IterableDataset has no indices to order: draw a map-style Dataset")
    if loader.batch_size is None:
        raise ValueError(
            "this DataLoader has batch_size=None (it yields single samples, or batches from a "
            "custom batch_sampler): build it with batch_size=... to draw its batches"
        )
    generators = {
        id(g): g
        for g in (loader.generator, getattr(loader.sampler, "generator", None))
        if g is not None
    }.values()
    saved = [(g, g.get_state()) for g in generators]
    saved_global = torch.get_rng_state()
    try:
        torch.empty((), dtype=torch.int64).random_(generator=loader.generator)
        order = [int(i) for i in loader.sampler]
    finally:
        for generator, state in saved:
            generator.set_state(state)
        torch.set_rng_state(saved_global)
    size = loader.batch_size
    batches = [order[start : start + size] for start in range(0, len(order), size)]
    dropped = batches.pop() if loader.drop_last and batches and len(batches[-1]) < size else []
    return Epoch(order=order, batches=batches, dropped=dropped)


def _split(sample: object) -> tuple[object, object]:
    """(input, label) of a dataset item; an item that is not a pair has no label."""
    if isinstance(sample, tuple | list) and len(sample) == 2:
        return sample[0], sample[1]
    return sample, None


def _label_text(label: object) -> str:
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        return str(label.item())
    return "" if label is None else str(label)


def _image(value: object) -> np.ndarray | None:
    """``value`` as a 2-D (grey) or 3-D (RGB) array scaled to 0..1, or None if it is no picture:
    (H, W), (1, H, W), (3, H, W), and flat vectors of a square number of values (64 → 8×8)."""
    if not isinstance(value, torch.Tensor) or value.numel() < 4:
        return None
    pixels = value.detach().float().cpu()
    side = math.isqrt(pixels.numel())
    if pixels.dim() == 1 and side * side == pixels.numel():
        pixels = pixels.view(side, side)
    elif pixels.dim() == 3 and pixels.shape[0] == 1:
        pixels = pixels[0]
    elif pixels.dim() == 3 and pixels.shape[0] == 3:
        pixels = pixels.permute(1, 2, 0)
    elif pixels.dim() != 2:
        return None
    low, high = pixels.min(), pixels.max()
    return ((pixels - low) / (high - low if high > low else 1.0)).numpy()


def _shape(value: object) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def _dtype(value: object) -> str:
    return str(value.dtype).removeprefix("torch.") if isinstance(value, torch.Tensor) else ""


def _fetch(loader: DataLoader, indices: list[int]) -> list[object]:
    """The samples of one batch, read as the DataLoader reads them."""
    dataset = loader.dataset
    if getattr(dataset, "__getitems__", None):
        return list(dataset.__getitems__(indices))
    return [dataset[i] for i in indices]


def _tensor_names(collated: object) -> list[tuple[str, object]]:
    if isinstance(collated, tuple | list):
        names = (
            ["xb", "yb"] if len(collated) == 2 else [f"batch[{k}]" for k in range(len(collated))]
        )
        return list(zip(names, collated, strict=True))
    return [("batch", collated)]


def _worker_colour(batch: int, workers: int, alpha: float = 1.0):
    colour = MAIN_PROCESS if workers == 0 else PALETTE[batch % workers % len(PALETTE)]
    return mpl.colors.to_rgba(colour, alpha)


class _Canvas:
    """Boxes, cells, pictures and text on one axes whose unit is 0.1 inch."""

    def __init__(self, ax):
        self.ax = ax

    def text(self, x, y, text, *, size=10.0, **kw):
        kw.setdefault("va", "center")
        kw.setdefault("color", INK)
        return self.ax.text(x, y, text, fontsize=size, **kw)

    def heading(self, x, y, title, note=""):
        self.text(x, y, title, size=12, weight="bold")
        if note:
            self.text(x, y - 2.6, note, size=9.5, color="#555555")

    def panel(self, x, y, w, h):
        self.ax.add_patch(
            FancyBboxPatch(
                (x, y),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=1.2",
                facecolor="#FAFAFA",
                edgecolor="#CCCCCC",
                linewidth=1.0,
            )
        )

    def cell(self, x, y, w, h, text="", *, face="white", size=8.0, **kw):
        self.ax.add_patch(
            Rectangle(
                (x, y),
                w,
                h,
                facecolor=face,
                edgecolor=kw.pop("edge", "#777777"),
                linewidth=0.8,
                linestyle=kw.pop("linestyle", "-"),
            )
        )
        if text:
            self.text(x + w / 2, y + h / 2, text, size=size, ha="center", **kw)

    def picture(self, x, y, side, value, index):
        """Sample ``index``'s input ``value`` drawn as a picture of ``side`` units with its lower
        left corner at (x, y)."""
        image = _image(value)
        if image is None:
            self.cell(x, y, side, side, _shape(value), size=7)
            return
        self.ax.imshow(
            image,
            cmap="gray_r",
            vmin=0.0,
            vmax=1.0,
            extent=(x, x + side, y, y + side),
            interpolation="nearest",
            aspect="auto",
            zorder=2,
            gid=f"sample {index}",
        )
        self.ax.add_patch(
            Rectangle((x, y), side, side, fill=False, edgecolor="#999999", lw=0.6, zorder=3)
        )

    def arrow(self, start, end):
        self.ax.add_patch(
            FancyArrowPatch(
                start, end, arrowstyle="-|>", mutation_scale=13, color="#555555", lw=1.3
            )
        )


def _shown_rows(count: int) -> list[int | None]:
    """The batches the order grid draws: the first and the last ones, None for the gap."""
    if count <= FIRST_ROWS + LAST_ROWS:
        return list(range(count))
    return [*range(FIRST_ROWS), None, *range(count - LAST_ROWS, count)]


def _dataset_panel(canvas: _Canvas, loader: DataLoader, top: float) -> None:
    dataset = loader.dataset
    size = len(dataset)
    canvas.panel(0, top - 50, 36, 50)
    canvas.heading(1.5, top - 2.5, f"1 · Dataset ({type(dataset).__name__})")
    canvas.text(1.5, top - 6.5, f"len(dataset) = {size:,}", size=10.5, family="monospace")
    canvas.text(1.5, top - 9.3, "__len__: how many samples", size=9, color="#555555")
    canvas.text(1.5, top - 12.8, "dataset[i] → (x, y)", size=10.5, family="monospace")
    canvas.text(1.5, top - 15.6, "__getitem__(i): sample i", size=9, color="#555555")
    rows = [0, 1, 2, None, size - 1] if size > 4 else list(range(size))
    y = top - 22.5
    for index in rows:
        if index is None:
            canvas.text(12, y + 2.0, "⋮", size=14, ha="center")
            y -= 5.0
            continue
        x, label = _split(dataset[index])
        canvas.text(1.5, y + 2.3, f"dataset[{index:,}]", size=9.5, family="monospace")
        canvas.picture(17.5, y, 4.6, x, index)
        canvas.text(23.5, y + 2.3, f"label {_label_text(label)}", size=9.5)
        y -= 6.2
    x, label = _split(dataset[0])
    canvas.text(1.5, top - 47.0, f"x: shape {_shape(x)}, {_dtype(x)}", size=9, family="monospace")
    if label is not None:
        canvas.text(
            1.5,
            top - 49.0,
            f"y: shape {_shape(label)}, {_dtype(label)}",
            size=9,
            family="monospace",
        )


def _order_panel(canvas: _Canvas, loader: DataLoader, epoch: Epoch, top: float) -> None:
    size, batch_size = len(loader.dataset), loader.batch_size
    workers = loader.num_workers
    rows = epoch.batches + ([epoch.dropped] if epoch.dropped else [])
    left = 39
    canvas.panel(left - 1, top - 50, WIDTH - left + 1, 50)
    shuffled = isinstance(loader.sampler, RandomSampler)
    order = "a new order each epoch" if shuffled else "the same order each epoch"
    canvas.heading(
        left + 0.5,
        top - 2.5,
        f"2 · {type(loader.sampler).__name__}: {order}  →  "
        f"3 · {type(loader.batch_sampler).__name__}: chunks of batch_size={batch_size}",
        note=f"the next epoch's order of the {size:,} indices, read from the live sampler: "
        f"{str(epoch.order[:6])[:-1]}, …]",
    )
    cell_w, cell_h, x0 = 5.2, 3.6, left + 14
    y = top - 12.5
    for row in _shown_rows(len(rows)):
        if row is None:
            canvas.text(x0 + 8 * cell_w, y + 2.2, "⋮", size=14, ha="center")
            y -= 4.5
            continue
        indices = rows[row]
        is_dropped = bool(epoch.dropped) and row == len(rows) - 1
        tag = "dropped" if is_dropped else f"batch {row}"
        face = (0.93, 0.93, 0.93, 1.0) if is_dropped else _worker_colour(row, workers, 0.25)
        canvas.cell(left + 0.5, y, 12, cell_h, tag, face=face, size=9, edge="none")
        for column in range(min(batch_size, SHOWN_COLUMNS)):
            x = x0 + column * cell_w
            if column < len(indices):
                canvas.cell(x, y, cell_w, cell_h, str(indices[column]), face=face)
            else:
                canvas.cell(x, y, cell_w, cell_h, face="white", edge="#BBBBBB", linestyle=":")
        count = f"{len(indices)} samples"
        if len(indices) > SHOWN_COLUMNS:
            count = f"+{len(indices) - SHOWN_COLUMNS} more"
        elif is_dropped:
            count = f"{len(indices)} left out"
        elif len(indices) < batch_size:
            count = f"only {len(indices)}"
        canvas.text(
            x0 + min(batch_size, SHOWN_COLUMNS) * cell_w + 1.0, y + cell_h / 2, count, size=9
        )
        y -= 4.5
    legend = (
        "tag colour: the worker that loads the batch (6 · below)"
        if workers
        else "every batch is loaded by the main process (num_workers=0)"
    )
    canvas.text(x0, y + 1.0, legend, size=9, color="#555555")


def _pictures(
    canvas: _Canvas, loader: DataLoader, indices: list[int], x, y, side, columns
) -> list[object]:
    """A row of pictures of the samples at ``indices``, with their labels; returns the samples."""
    samples = _fetch(loader, indices)
    for column, (index, sample) in enumerate(zip(indices[:columns], samples, strict=False)):
        image, label = _split(sample)
        left = x + column * (side + 0.8)
        canvas.picture(left, y, side, image, index)
        canvas.text(left + side / 2, y - 1.6, _label_text(label), size=8.5, ha="center")
    if len(samples) > columns:
        canvas.text(x + columns * (side + 0.8), y + side / 2, f"+{len(samples) - columns}", size=9)
    return samples


def _tensor_boxes(canvas: _Canvas, collated: object, x: float, y: float, *, across=False):
    """One box per collated tensor with its shape and dtype (and a 1-D tensor's first values),
    stacked downwards from (x, y), or side by side with ``across``."""
    for name, value in _tensor_names(collated):
        text = f"{name}.shape = {_shape(value)}  {_dtype(value)}"
        if isinstance(value, torch.Tensor) and value.dim() == 1:
            shown = ", ".join(str(v) for v in value[:4].tolist())
            text += f"  [{shown}{', …' if value.numel() > 4 else ''}]"
        width = 0.8 * len(text) + 2.0
        canvas.cell(
            x,
            y - 2.0,
            width,
            4.0,
            text,
            face="#EEF3FA",
            size=9.5,
            family="monospace",
            edge=PALETTE[0],
        )
        if across:
            x += width + 2.0
        else:
            y -= 5.2


def _collation_panel(canvas: _Canvas, loader: DataLoader, epoch: Epoch, top: float) -> None:
    first = epoch.batches[0]
    canvas.panel(0, top - 20, WIDTH, 20)
    side = 5.0
    samples = _pictures(canvas, loader, first, 1.5, top - 14.5, side, SHOWN_COLUMNS)
    collated = loader.collate_fn(samples)
    names = " and ".join(name for name, _ in _tensor_names(collated))
    canvas.heading(
        1.5,
        top - 2.5,
        f"4 · collate_fn: batch 0's {len(first)} samples become {names}",
        note="the pictures and labels of batch 0, read from the dataset by the indices above",
    )
    arrow_x = 1.5 + SHOWN_COLUMNS * (side + 0.8) + 3.0
    canvas.arrow((arrow_x, top - 12.0), (arrow_x + 7.0, top - 12.0))
    canvas.text(arrow_x + 3.5, top - 9.8, "stack", size=9, ha="center")
    _tensor_boxes(canvas, collated, arrow_x + 8.5, top - 9.4)


def _last_batch_panel(canvas: _Canvas, loader: DataLoader, epoch: Epoch, top: float) -> None:
    size, batch_size = len(loader.dataset), loader.batch_size
    full, rest = divmod(size, batch_size)
    canvas.panel(0, 0, 84, top)
    equation = f"{size:,} = {full:,} × {batch_size} + {rest}"
    if rest == 0:
        canvas.heading(
            1.5,
            top - 2.5,
            f"5 · The last batch: {equation}",
            note=f"every batch is full: {len(loader)} batches of {batch_size}",
        )
        return
    last = epoch.dropped or epoch.batches[-1]
    if loader.drop_last:
        note = (
            f"drop_last=True (this loader): the last {rest} of each epoch's order are left out, "
            f"{len(loader)} batches"
        )
    else:
        note = (
            f"drop_last=False (this loader): {len(loader)} batches, the last one of {rest}; "
            f"drop_last=True would leave those {rest} out ({full} batches)"
        )
    canvas.heading(1.5, top - 2.5, f"5 · The last batch: {equation}", note=note)
    side = 3.8
    samples = _pictures(canvas, loader, last, 1.5, top - 13.5, side, 18)
    if loader.drop_last:
        canvas.text(
            1.5,
            top - 19.0,
            f"these {rest} are never loaded this epoch; the next epoch's order leaves out others",
            size=9.5,
        )
        return
    canvas.text(1.5, top - 19.0, f"batch {len(epoch.batches) - 1}, collated:", size=9.5)
    _tensor_boxes(canvas, loader.collate_fn(samples), 1.5, top - 23.5, across=True)


def _workers_panel(canvas: _Canvas, loader: DataLoader, epoch: Epoch, top: float) -> None:
    workers, count = loader.num_workers, len(epoch.batches)
    left = 85.5
    canvas.panel(left - 0.5, 0, WIDTH - left + 0.5, top)
    if workers == 0:
        canvas.heading(
            left + 1,
            top - 2.5,
            "6 · num_workers=0: the main process loads every batch",
            note="each batch is read and collated when the loop asks for it",
        )
        lanes = [("main process", list(range(count)))]
    else:
        in_order = getattr(loader, "in_order", True)
        canvas.heading(
            left + 1,
            top - 2.5,
            f"6 · num_workers={workers}: batches are dealt round robin",
            note=f"each worker keeps prefetch_factor={loader.prefetch_factor} batches ready; "
            + (
                "the loop gets them in order 0, 1, 2, …"
                if in_order
                else "in_order=False: the loop gets whichever is ready first"
            ),
        )
        lanes = [(f"worker {w}", list(range(w, count, workers))) for w in range(workers)]
    for lane, (name, batches) in enumerate(lanes[:4]):
        y = top - 11.5 - lane * 4.6
        canvas.text(left + 1, y + 1.8, name, size=9.5)
        for k, batch in enumerate(batches[:8]):
            canvas.cell(
                left + 14 + k * 5.6,
                y,
                5.0,
                3.6,
                str(batch),
                face=_worker_colour(batch, workers, 0.35),
                size=8.5,
            )
        if len(batches) > 8:
            canvas.text(left + 14 + 8 * 5.6, y + 1.8, f"… {batches[-1]}", size=9)
    if len(lanes) > 4:
        canvas.text(left + 1, top - 11.5 - 4 * 4.6 + 1.8, f"+{len(lanes) - 4} workers", size=9)


def data_pipeline(loader: DataLoader) -> Figure:
    """How ``loader`` turns its dataset into batches in the next epoch, all read from the live
    objects: the dataset's length and samples, the sampler's order, the batches, the collated
    tensors' shapes, the last (partial) batch with ``drop_last``, and the workers' share."""
    epoch = next_epoch(loader)
    if not epoch.batches:
        raise ValueError(
            f"this DataLoader yields no batch: its dataset has {len(loader.dataset)} samples, "
            f"fewer than batch_size={loader.batch_size}"
            + (" with drop_last=True" if loader.drop_last else "")
        )
    fig, ax = figure(figsize=(WIDTH / 10, HEIGHT / 10))
    ax.set_axis_off()
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(0, HEIGHT)
    canvas = _Canvas(ax)
    _dataset_panel(canvas, loader, top=HEIGHT)
    _order_panel(canvas, loader, epoch, top=HEIGHT)
    _collation_panel(canvas, loader, epoch, top=HEIGHT - 51.5)
    _last_batch_panel(canvas, loader, epoch, top=HEIGHT - 73)
    _workers_panel(canvas, loader, epoch, top=HEIGHT - 73)
    ax.set_title(
        f"DataLoader(batch_size={loader.batch_size}, "
        f"shuffle={isinstance(loader.sampler, RandomSampler)}, "
        f"drop_last={loader.drop_last}, num_workers={loader.num_workers}): "
        f"{len(loader.dataset):,} samples → {len(loader)} batches per epoch",
        loc="left",
        fontsize=13,
        weight="bold",
    )
    return show(fig)


__all__ = ["Epoch", "data_pipeline", "next_epoch"]
