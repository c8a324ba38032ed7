"""`save_curves` and `save_bars`: learning curves and scores as PNG files,
with matplotlib; and the figure helpers every kfinetune picture uses
(`new_figure`, `save`).

Figures are drawn on a `matplotlib.figure.Figure` with the Agg canvas, not
through `pyplot`: no global figure state and no display needed, so it works
on servers, in tests and in worker processes alike.
"""

import pathlib

import numpy as np


def save_curves(
    path, x, curves, *, xlabel, ylabel, title=None, logx=False, dpi=120
):
    """Draws one line per curve, with a band of ± one standard deviation.

    Args:
        path: the PNG file to write; its folder is created when missing.
        x: the x values shared by every curve, e.g. examples per class.
        curves: a dict mapping each curve's label to `(means, stds)`, two
            sequences as long as `x` (`stds` may be `None` for no band).
        xlabel: the x axis label.
        ylabel: the y axis label.
        title: the figure title. Defaults to `None` (no title).
        logx: a base-2 logarithmic x axis, for doubling sizes such as
            8, 16, 32, 64. Defaults to `False`.
        dpi: the resolution. Defaults to `120`.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: if `curves` is empty or a curve's length differs from
            `x`'s.

    Example:

    ```python
    kfinetune.plotting.save_curves(
        "curve.png",
        [8, 16, 32],
        {"LoRA": ([0.61, 0.70, 0.78], [0.05, 0.03, 0.02])},
        xlabel="examples per class",
        ylabel="test accuracy",
    )
    ```
    """
    if not curves:
        raise ValueError(
            "`curves` must hold at least one curve. "
            f"Received: curves={curves!r}"
        )
    x = np.asarray(x, dtype=float)
    for label, (means, stds) in curves.items():
        if len(means) != len(x) or (stds is not None and len(stds) != len(x)):
            raise ValueError(
                f"Every curve needs one mean (and std) per x value ({len(x)})."
                f" Received: curves[{label!r}] with {len(means)} means"
            )
    figure = new_figure(6, 4)
    axes = figure.add_subplot()
    for label, (means, stds) in curves.items():
        means = np.asarray(means, dtype=float)
        (line,) = axes.plot(x, means, marker="o", label=label)
        if stds is not None:
            stds = np.asarray(stds, dtype=float)
            axes.fill_between(
                x, means - stds, means + stds, color=line.get_color(), alpha=0.2
            )
    if logx:
        axes.set_xscale("log", base=2)
        axes.set_xticks(x, [f"{value:g}" for value in x])
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return save(figure, path, dpi)


def save_bars(path, groups, bars, *, ylabel, title=None, top=None, dpi=120):
    """Draws grouped bars: for each group on the x axis, one bar per
    series, each labelled with its value.

    Args:
        path: the PNG file to write; its folder is created when missing.
        groups: the x axis labels, e.g. entity types.
        bars: a dict mapping each series' label (the legend) to its values,
            one per group, e.g. `{"F1": [0.61, 0.70]}`.
        ylabel: the y axis label.
        title: the figure title. Defaults to `None` (no title).
        top: the top of the y axis, e.g. `1.0` or `100`. Defaults to
            `None` (matplotlib's choice).
        dpi: the resolution. Defaults to `120`.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: if `groups` or `bars` is empty, or a series' length
            differs from `groups`'.

    Example:

    ```python
    kfinetune.plotting.save_bars(
        "scores.png",
        ["NAME", "ACRONYM"],
        {"precision": [0.62, 0.71], "recall": [0.55, 0.60]},
        ylabel="score",
        top=1.0,
    )
    ```
    """
    groups = list(groups)
    if not groups or not bars:
        raise ValueError(
            "`groups` and `bars` must not be empty. "
            f"Received: groups={groups!r}, bars={bars!r}"
        )
    for label, values in bars.items():
        if len(values) != len(groups):
            raise ValueError(
                f"Every series needs one value per group ({len(groups)}). "
                f"Received: bars[{label!r}] with {len(values)} values"
            )
    figure = new_figure(max(5.0, 1.2 + 0.45 * len(groups) * len(bars)), 3.6)
    axes = figure.add_subplot()
    x = np.arange(len(groups))
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars.items()):
        drawn = axes.bar(
            x + (i - (len(bars) - 1) / 2) * width,
            np.asarray(values, dtype=float),
            width,
            label=label,
        )
        axes.bar_label(drawn, fmt="%.2f" if top == 1.0 else "%.1f", fontsize=7)
    axes.set_xticks(x, groups)
    axes.set_ylabel(ylabel)
    if top is not None:
        axes.set_ylim(0, top * 1.08)
    if title:
        axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    return save(figure, path, dpi)


def new_figure(width, height):
    """A constrained-layout `Figure` on an Agg canvas, `width` × `height`
    inches."""
    # Imported here so that importing kfinetune does not import matplotlib.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure, path, dpi):
    """Writes `figure` to the PNG `path`, creating its folder; returns the
    path as a `pathlib.Path`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path
