"""`postprocess`: start and end logits back to answer texts."""

import math
import numbers

import numpy as np

from kfinetune import checks


def _best_span(start, end, offsets, max_answer_length):
    """The best `(score, first, last)` span of one window, or `None`."""
    context = np.flatnonzero(offsets[:, 0] >= 0)
    if context.size == 0:
        return None
    s = start[context][:, None] + end[context][None, :]
    gap = context[None, :] - context[:, None]
    # Only spans with start <= end, at most `max_answer_length` tokens.
    s = np.where((gap >= 0) & (gap < max_answer_length), s, -np.inf)
    i, j = np.unravel_index(np.argmax(s), s.shape)
    return float(s[i, j]), context[i], context[j]


def check_no_answer_options(allow_no_answer, null_score_threshold):
    """Checks `allow_no_answer` and `null_score_threshold`.

    Returns:
        The threshold as a float: `null_score_threshold`, or 0.0 when it
        is `None`.

    Raises:
        ValueError: `allow_no_answer` is not a bool, or
            `null_score_threshold` is not a finite number or is given
            without `allow_no_answer`.
    """
    checks.boolean("allow_no_answer", allow_no_answer)
    if null_score_threshold is None:
        return 0.0
    if not allow_no_answer:
        raise ValueError(
            "`null_score_threshold` decides when to answer nothing, "
            "which only `allow_no_answer=True` does. Received: "
            f"null_score_threshold={null_score_threshold!r} with "
            "allow_no_answer=False"
        )
    if (
        isinstance(null_score_threshold, bool)
        or not isinstance(null_score_threshold, numbers.Real)
        or not math.isfinite(null_score_threshold)
    ):
        raise ValueError(
            "`null_score_threshold` must be a finite number. Received: "
            f"null_score_threshold={null_score_threshold!r}"
        )
    return float(null_score_threshold)


def postprocess(
    features,
    start_logits,
    end_logits,
    max_answer_length=30,
    allow_no_answer=False,
    null_score_threshold=None,
):
    """Picks the best answer text of every example from start / end logits.

    A span's score is its start token's logit plus its end token's logit.
    Only spans inside the context, with start <= end and at most
    `max_answer_length` tokens count; the best over all windows of an
    example wins, and its text is the context's characters from the start
    token's first character to the end token's last.

    Args:
        features: the `kfinetune.qa.QAFeatures` the logits were predicted
            for.
        start_logits: array `(rows, sequence_length)`, the model's `start`
            output.
        end_logits: array `(rows, sequence_length)`, the model's `end`
            output.
        max_answer_length: the longest answer, in tokens. Defaults to `30`.
        allow_no_answer: when `True` (SQuAD v2.0), answer `""` for an
            example whose no-answer score (the `[CLS]` start and end logits,
            the lowest over its windows) beats its best span by more than
            `null_score_threshold`. Defaults to `False`.
        null_score_threshold: with `allow_no_answer`, how far the
            no-answer score must beat the best span's (SQuAD v2.0's
            reference `null_score_diff_threshold`; tune it on validation
            data: higher answers more often). Defaults to `None` (0.0);
            refused without `allow_no_answer`.

    Returns:
        A dict from question id to predicted answer text.

    Raises:
        ValueError: the logits' shape differs from the features',
            `max_answer_length` is not a positive integer, or
            `null_score_threshold` is not a finite number or is given
            without `allow_no_answer`.

    Example:

    ```python
    out = model.predict(features.inputs())
    answers = kfinetune.qa.postprocess(features, out["start"], out["end"])
    ```
    """
    checks.positive_integer("max_answer_length", max_answer_length)
    threshold = check_no_answer_options(allow_no_answer, null_score_threshold)
    start_logits = np.asarray(start_logits, "float64")
    end_logits = np.asarray(end_logits, "float64")
    for name, logits in (
        ("start_logits", start_logits),
        ("end_logits", end_logits),
    ):
        if logits.shape != features.token_ids.shape:
            raise ValueError(
                f"`{name}` must have the shape of the features' token ids, "
                f"{features.token_ids.shape}. "
                f"Received: {name}.shape={logits.shape}"
            )
    best = {}
    no_answer = {}
    for row, index in enumerate(features.example_index):
        null = start_logits[row, 0] + end_logits[row, 0]
        no_answer[index] = min(no_answer.get(index, np.inf), null)
        span = _best_span(
            start_logits[row],
            end_logits[row],
            features.offsets[row],
            max_answer_length,
        )
        if span is not None and span[0] > best.get(index, (-np.inf,))[0]:
            best[index] = (*span, row)
    answers = {}
    for index, example in enumerate(features.examples):
        if index not in best or (
            allow_no_answer and no_answer[index] - best[index][0] > threshold
        ):
            answers[example.id] = ""
            continue
        _, first, last, row = best[index]
        offsets = features.offsets[row]
        answers[example.id] = example.context[
            offsets[first, 0] : offsets[last, 1]
        ]
    return answers
