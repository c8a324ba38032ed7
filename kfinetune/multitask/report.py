"""`evaluate`: per-task metrics of a multi-task model."""

import numpy as np
import tensorflow as tf

from kfinetune import evaluation
from kfinetune import preprocessing
from kfinetune.multitask import checking


def _split(x, y, sample_weight=None):
    # The inputs are predicted, the targets and weights compared on the host.
    if sample_weight is None:
        sample_weight = tf.ones_like(y, dtype="float32")
    return x, (y, sample_weight)


def _inputs(x, targets):
    return x


def _task_report(scores, y, weight, class_names):
    if scores.ndim == 3:
        # Token classification: positions of weight 0 (padding, word pieces
        # without a label) are left out.
        mask = (
            np.broadcast_to(
                weight.reshape(weight.shape + (1,) * (y.ndim - weight.ndim)),
                y.shape,
            )
            > 0
        )
        correct = np.argmax(scores, -1) == y
        return {
            "token_accuracy": float(correct[mask].mean()),
            "tokens": int(mask.sum()),
        }
    if scores.shape[-1] == 1:
        predicted = scores.reshape(-1)
        y = y.reshape(-1).astype("float64")
        error = predicted - y
        return {
            "mse": float(np.mean(error**2)),
            "mae": float(np.mean(np.abs(error))),
            "pearson": float(np.corrcoef(predicted, y)[0, 1]),
            "examples": int(y.size),
        }
    names = class_names or [str(i) for i in range(scores.shape[-1])]
    report = evaluation.classification_report(
        y.reshape(-1), np.argmax(scores, -1), names
    )
    return report.as_dict()


def evaluate(model, datasets, class_names=None, batch_size=64):
    """Evaluates a multi-task model on one test set per task.

    Classification heads get `kfinetune.evaluation.classification_report`'s
    accuracy, macro F1 and per-class precision / recall / F1; token
    classification heads the token accuracy over positions of non-zero
    sample weight; regression heads the mean squared and absolute errors and
    Pearson's correlation.

    Args:
        model: a model built by `kfinetune.multitask.build` (or the model
            `kfinetune.peft.apply` returned for it).
        datasets: a dict of task name → unbatched `tf.data.Dataset` of
            `(x, y)` or `(x, y, sample_weight)` for that task alone, as given
            to `kfinetune.data.mix`, with `x` in the model's input format.
        class_names: a dict of task name → class names, for classification
            tasks. Defaults to the class ids as strings.
        batch_size: prediction batch size. Defaults to `64`.

    Returns:
        A dict of task name → a JSON-ready dict of that task's metrics.

    Raises:
        ValueError: `datasets` is empty, or names a task the model has no
            head for.

    Example:

    ```python
    results = kfinetune.multitask.evaluate(
        model, {"sentiment": sentiment_test, "mention": mention_test})
    print(results["sentiment"]["accuracy"])
    ```
    """
    if not isinstance(datasets, dict) or not datasets:
        raise ValueError(
            "`datasets` must be a non-empty dict of task name → "
            f"tf.data.Dataset. Received: datasets={datasets!r}"
        )
    heads = checking.task_names(model)
    class_names = class_names or {}
    results = {}
    for task, dataset in datasets.items():
        if task not in heads:
            raise ValueError(
                f"The model has no head for task {task!r} (heads: {heads}). "
                f"Received: task={task!r}"
            )
        # Predictions and targets take two passes; the cache makes the
        # second replay the first even when the dataset reshuffles.
        dataset = dataset.map(_split).batch(batch_size).cache()
        targets = [t for _, t in dataset.as_numpy_iterator()]
        y = np.concatenate([t[0] for t in targets])
        weight = np.concatenate([t[1] for t in targets])
        scores = preprocessing.predict(model, dataset.map(_inputs), batch_size)[
            task
        ]
        results[task] = _task_report(
            np.asarray(scores, "float32"), y, weight, class_names.get(task)
        )
    return results
