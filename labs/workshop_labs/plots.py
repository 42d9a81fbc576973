"""Generic figures: curves, bars, grouped bars and tables.

Each helper returns the matplotlib ``Figure`` and, in a notebook, shows it exactly once (also
when the call is the last line of a cell). Lab-specific figures use ``figure()`` and ``show()``
so they get the same style and behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from workshop_labs.runtime import in_notebook

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
}


def apply_style() -> None:
    """Readable defaults for every figure of the course (also plain ``plt`` figures)."""
    mpl.rcParams.update(STYLE)
    _enable_inline()


def _enable_inline() -> None:
    """In a notebook, let IPython render figures as PNG (what ``%matplotlib inline`` does)."""
    if in_notebook():
        from IPython import get_ipython

        get_ipython().run_line_magic("matplotlib", "inline")


def figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (7.5, 4.5), **kw):
    """A new figure in the course style, with constrained layout so no label is cut off.

    Returns ``(fig, axes)`` like ``plt.subplots``; the figure is not registered with pyplot, so
    it is only shown by ``show()``.
    """
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=figsize, layout="constrained")
        axes = fig.subplots(nrows, ncols, **kw)
    return fig, axes


def _already_shown() -> None:
    """Displaying a figure that ``show()`` already displayed adds nothing."""


def show(fig: Figure) -> Figure:
    """Display ``fig`` in the notebook once; outside a notebook do nothing. Returns ``fig``."""
    if in_notebook():
        from IPython.display import display

        _enable_inline()
        display(fig)
        fig._ipython_display_ = _already_shown
    return fig


def format_value(value: object) -> str:
    """Numbers with three significant digits (1.23, 45.6, 7,890), everything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) < 0.001:
        return f"{value:.2e}"
    return f"{value:.3g}"


def curves(
    series: Mapping[str, Sequence[float] | tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
) -> Figure:
    """One line per series. A plain list is plotted against 1, 2, 3, ...; give ``(xs, ys)``
    to place a curve elsewhere (e.g. a resumed run continuing at epoch 6)."""
    fig, ax = figure()
    for label, values in series.items():
        if isinstance(values, tuple) and len(values) == 2:
            xs, ys = values
        else:
            xs, ys = range(1, len(values) + 1), values
        ys = [float(v) for v in ys]
        ax.plot(list(xs), ys, label=label, linewidth=2, marker="o" if len(ys) <= 30 else None)
    if all(not isinstance(values, tuple) for values in series.values()):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if len(series) > 1:
        ax.legend()
    return show(fig)


Spread = Mapping[str, tuple[float, float]]


def _error_bars(ax, xs, heights: list[float], names: list[str], spread: Spread | None) -> None:
    """Draw each bar's (low, high) range, e.g. the quartiles of repeated timings, as a whisker."""
    if not spread:
        return
    lows = [
        h - float(spread[n][0]) if n in spread else 0.0 for n, h in zip(names, heights, strict=True)
    ]
    highs = [
        float(spread[n][1]) - h if n in spread else 0.0 for n, h in zip(names, heights, strict=True)
    ]
    ax.errorbar(xs, heights, yerr=[lows, highs], fmt="none", ecolor="#333333", capsize=5, lw=1.2)


def bars(
    values: Mapping[str, float],
    *,
    title: str,
    ylabel: str,
    annotate: bool = True,
    spread: Spread | None = None,
) -> Figure:
    """One bar per entry, values written on the bars (e.g. before / after an improvement).

    ``spread`` maps a bar's name to its (low, high) range, drawn as a whisker: a timing's
    median with the quartiles of its runs shows whether two bars differ beyond the noise.
    """
    fig, ax = figure(figsize=(max(6.0, 1.3 * len(values) + 2), 4.5))
    names = list(values)
    heights = [float(values[name]) for name in names]
    rects = ax.bar(names, heights, color=PALETTE[: len(names)] or None, width=0.6)
    _error_bars(ax, range(len(names)), heights, names, spread)
    if annotate and spread:  # the whisker sits on the bar's top: values go at its foot
        for rect, height in zip(rects, heights, strict=True):
            ax.text(
                rect.get_x() + rect.get_width() / 2,
                0,
                format_value(height),
                ha="center",
                va="bottom",
                color="white",
                fontweight="bold",
            )
    elif annotate:
        ax.bar_label(rects, labels=[format_value(h) for h in heights], padding=3)
    if annotate:
        ax.margins(y=0.15)
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="x", visible=False)
    if sum(len(name) for name in names) > 10 * len(names) + 20:
        ax.tick_params(axis="x", labelrotation=20)
    return show(fig)


def grouped_bars(
    groups: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    ylabel: str,
    spread: Mapping[str, Spread] | None = None,
) -> Figure:
    """Bars grouped along x (outer keys), one colour per series (inner keys), e.g.
    ``{"batch 64": {"fp32": 12.0, "AMP": 7.5}, "batch 256": {...}}``; ``spread`` has the same
    keys and gives each bar's (low, high) range, as in ``bars``."""
    group_names = list(groups)
    series_names = list(dict.fromkeys(name for group in groups.values() for name in group))
    width = 0.8 / max(1, len(series_names))
    fig, ax = figure(figsize=(max(6.0, 1.6 * len(group_names) * len(series_names) ** 0.5 + 2), 4.5))
    for i, series in enumerate(series_names):
        xs = [g + (i - (len(series_names) - 1) / 2) * width for g in range(len(group_names))]
        heights = [float(groups[group].get(series, float("nan"))) for group in group_names]
        rects = ax.bar(xs, heights, width=width * 0.95, label=series, color=PALETTE[i % 8])
        if spread:
            ranges = {g: spread[g][series] for g in group_names if series in spread.get(g, {})}
            _error_bars(ax, xs, heights, group_names, ranges)
        ax.bar_label(rects, labels=[format_value(h) for h in heights], padding=3, fontsize=9)
    ax.set_xticks(range(len(group_names)), group_names)
    ax.margins(y=0.15)
    ax.grid(axis="x", visible=False)
    ax.set(title=title, ylabel=ylabel)
    ax.legend()
    return show(fig)


def table(rows: Sequence[Mapping[str, object]], *, title: str) -> Figure:
    """A table drawn as a figure: one row per dict, one column per key (in first-seen order)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[format_value(row.get(col, "")) for col in columns] for row in rows]
    widths = [
        max(len(col), *(len(cell[j]) for cell in cells)) if cells else len(col)
        for j, col in enumerate(columns)
    ]
    fig_width = min(16.0, max(5.0, 0.11 * sum(widths) + 0.5 * len(columns)))
    fig, ax = figure(figsize=(fig_width, 0.6 + 0.34 * (len(rows) + 1)))
    ax.axis("off")
    drawn = ax.table(
        cellText=cells or [[""] * len(columns)],
        colLabels=columns,
        colWidths=[w / sum(widths) for w in widths],
        bbox=[0.0, 0.0, 1.0, 1.0],
        cellLoc="center",
    )
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(10.5)
    for (row, _), cell in drawn.get_celld().items():
        cell.set_edgecolor("#BBBBBB")
        if row == 0:
            cell.set_facecolor("#E8EEF7")
            cell.set_text_props(weight="bold")
    ax.set_title(title)
    return show(fig)
