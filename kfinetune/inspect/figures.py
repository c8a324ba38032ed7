"""Drawing helpers shared by `kfinetune.inspect`, the `TrainingCurves`
callback and the confusion-matrix plot.

Figures are drawn on a `matplotlib.figure.Figure` with the Agg canvas, not
through `pyplot` (see `kfinetune.plotting`).
"""

import math

import numpy as np

from kfinetune.plotting import new_figure
from kfinetune.plotting import save


def heatmaps(
    path,
    panels,
    labels,
    column_labels=None,
    title=None,
    dpi=120,
    annotate=False,
    xlabel=None,
    ylabel=None,
):
    """One heatmap per `(title, matrix)` panel, rows and columns labelled,
    at most four panels a row."""
    column_labels = labels if column_labels is None else column_labels
    columns = min(len(panels), 4)
    rows = math.ceil(len(panels) / columns)
    size = max(3.0, 0.32 * max(len(labels), len(column_labels)) + 1.5)
    figure = new_figure(size * columns + 0.8, size * rows)
    for index, (name, matrix) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        image = axes.imshow(matrix, cmap="viridis", vmin=0.0)
        axes.set_xticks(range(len(column_labels)), column_labels, rotation=90)
        axes.set_yticks(range(len(labels)), labels)
        axes.set_title(name)
        if xlabel:
            axes.set_xlabel(xlabel)
        if ylabel:
            axes.set_ylabel(ylabel)
        if annotate:
            peak = float(np.max(matrix)) or 1.0
            for (i, j), value in np.ndenumerate(np.asarray(matrix)):
                axes.text(
                    j,
                    i,
                    f"{value:.2g}",
                    ha="center",
                    va="center",
                    color="black" if value > 0.6 * peak else "white",
                )
        figure.colorbar(image, ax=axes, shrink=0.8)
    if title:
        figure.suptitle(title)
    return save(figure, path, dpi)
