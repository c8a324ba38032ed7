"""`plot_confusion_matrix`: a classifier's confusion matrix as a PNG."""

import numpy as np


def plot_confusion_matrix(
    confusion, class_names, path, normalize=True, title=None, dpi=120
):
    """Draws a confusion matrix as an annotated PNG heatmap.

    Rows are the true classes, columns the predicted ones.

    Args:
        confusion: a `(k, k)` matrix of counts, `confusion[i, j]` the
            examples of class `i` predicted as `j` (a
            `ClassificationReport`'s `confusion`).
        class_names: the `k` class names.
        path: the PNG file to write; its folder is created when missing.
        normalize: divide each row by its total, so the diagonal is each
            class's recall. Defaults to `True`.
        title: the figure title. Defaults to `None` (no title).
        dpi: the resolution. Defaults to `120`.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: `confusion` is not square, or `class_names` does not
            name each row.

    Example:

    ```python
    report = kfinetune.evaluation.evaluate_classifier(
        model, data.test, data.class_names)
    report.plot_confusion_matrix("confusion.png")
    ```
    """
    from kfinetune.inspect import figures

    matrix = np.asarray(confusion, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            "`confusion` must be a square matrix. Received: confusion of "
            f"shape {matrix.shape}"
        )
    class_names = [str(name) for name in class_names]
    if len(class_names) != len(matrix):
        raise ValueError(
            f"`class_names` needs one name per class ({len(matrix)}). "
            f"Received: class_names={class_names!r}"
        )
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(
            matrix, totals, out=np.zeros_like(matrix), where=totals > 0
        )
    name = "share of each true class" if normalize else "examples"
    return figures.heatmaps(
        path,
        [(name, matrix)],
        class_names,
        title=title,
        dpi=dpi,
        annotate=True,
        xlabel="predicted",
        ylabel="true",
    )
