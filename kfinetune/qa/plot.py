"""`plot_scores`: exact match and F1 of question answering as bars."""

from kfinetune import plotting


def plot_scores(scores, path, dpi=120):
    """Draws exact match and F1 of each group of questions as grouped
    bars, in a PNG.

    Args:
        scores: a dict from a group's name to its `squad_scores` dict, as
            `kfinetune.qa.squad_scores_by_kind` returns.
        path: the PNG file to write.
        dpi: the resolution. Defaults to `120`.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: `scores` is empty.

    Example:

    ```python
    scores = kfinetune.qa.squad_scores_by_kind(answers, examples)
    kfinetune.qa.plot_scores(scores, "qa_scores.png")
    ```
    """
    if not scores:
        raise ValueError(
            f"`scores` must not be empty. Received: scores={scores!r}"
        )
    groups = [f"{name}\n({group['count']})" for name, group in scores.items()]
    return plotting.save_bars(
        path,
        groups,
        {
            "exact match": [g["exact_match"] for g in scores.values()],
            "F1": [g["f1"] for g in scores.values()],
        },
        ylabel="percent of the questions",
        title="Exact match and F1 (questions per group)",
        top=100.0,
        dpi=dpi,
    )
