"""`mix`: one multi-task dataset sampled from several single-task ones."""

import math

import numpy as np
import tensorflow as tf

from kfinetune import checks

_SAMPLING = ("proportional", "uniform")


def _check_sampling(sampling):
    if isinstance(sampling, str):
        if sampling not in _SAMPLING:
            raise ValueError(
                '`sampling` must be "proportional", "uniform" or a positive '
                f"temperature. Received: sampling={sampling!r}"
            )
        return
    checks.positive_number("sampling", sampling)
    if not math.isfinite(sampling):
        raise ValueError(
            '`sampling` must be a finite temperature (use "uniform" for '
            f"the limit). Received: sampling={sampling!r}"
        )


def _element_specs(task, dataset):
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ValueError(
            f"The dataset of task {task!r} must yield (x, y) or "
            "(x, y, sample_weight). "
            f"Received: element_spec={spec}"
        )
    for part, name in zip(spec[1:], ("y", "sample_weight"), strict=False):
        if (
            not isinstance(part, tf.TensorSpec)
            or not part.shape.is_fully_defined()
        ):
            raise ValueError(
                f"The dataset of task {task!r} must yield `{name}` as one "
                "tensor of a fixed shape (pad token labels to the sequence "
                "length; batch after mixing, not before): the other tasks' "
                f"elements carry zeros of that shape. Received: {name}={part}"
            )
    return spec


def _size(task, dataset):
    size = int(dataset.cardinality())
    if size == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"The dataset of task {task!r} is infinite, but its size is "
            "needed (for the sampling weights, or for `size`): give `size` "
            'and `sampling="uniform"`, or mix the finite dataset. '
            f"Received: {task}.cardinality()=INFINITE"
        )
    if size == tf.data.UNKNOWN_CARDINALITY:
        raise ValueError(
            f"The size of the dataset of task {task!r} is unknown (after "
            "`filter`, for example), but it is needed: state it with "
            "`dataset.apply(tf.data.experimental.assert_cardinality(n))`. "
            f"Received: {task}.cardinality()=UNKNOWN"
        )
    if size == 0:
        raise ValueError(
            f"The dataset of task {task!r} is empty. "
            f"Received: {task}.cardinality()=0"
        )
    return size


def _task_probabilities(sizes, sampling):
    # `sampling` is checked: a temperature `T` draws each task with
    # probability proportional to `size ** (1 / T)`.
    sizes = np.asarray(sizes, dtype="float64")
    if sampling == "uniform":
        weights = np.ones_like(sizes)
    else:
        temperature = 1.0 if sampling == "proportional" else float(sampling)
        # In log space: large sizes with small temperatures overflow.
        logits = np.log(sizes) / temperature
        weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def mix(datasets, sampling="proportional", seed=None, size=None):
    """Mixes single-task datasets into one multi-task dataset.

    Each element of the result is `(x, {task: y}, {task: sample_weight})`
    with an entry for every task: its own task's target and weight (1, or
    the dataset's own sample weight), and zeros for the others. A model
    built by `kfinetune.multitask.build` and compiled with dict losses and
    `weighted_metrics` then masks the other tasks' losses and metrics, and,
    since every element has the same structure and shapes, one traced (XLA)
    step serves every batch.

    Every task's dataset is repeated and the tasks are drawn at random,
    element by element, so a batch of the result mixes tasks. Batch after
    mixing (`drop_remainder=True` on TPU).

    Args:
        datasets: a dict of task name → unbatched `tf.data.Dataset` of
            `(x, y)` or `(x, y, sample_weight)`. Every `x` has the same
            structure and dtypes (e.g. all token-id dicts of one sequence
            length, or all strings to preprocess after mixing); `y` and
            `sample_weight` have fixed shapes (e.g. token labels padded to
            the sequence length with per-token weights).
        sampling: how often each task is drawn. `"proportional"` to its
            size, `"uniform"`, or a temperature `T > 0`: probability
            proportional to `size ** (1 / T)` (`T=1` is proportional, large
            `T` approaches uniform). Defaults to `"proportional"`.
        seed: seed of the task draws; the same seed gives the same sequence
            of tasks. Defaults to `None` (not reproducible).
        size: the number of elements of the result. Defaults to the total
            size of `datasets` (about one pass over each with
            `"proportional"`).

    Returns:
        A `tf.data.Dataset` of `(x, {task: y}, {task: sample_weight})`.

    Raises:
        ValueError: `datasets` is empty or not a dict of datasets; a dataset
            has a different `x`, targets of unknown shape, or an unknown,
            infinite or zero size where its size is needed; `sampling` or
            `size` is invalid.

    Example:

    ```python
    pre = kfinetune.presets.text_classifier_preprocessor(sequence_length=64)
    sentiment = tf.data.Dataset.from_tensor_slices((texts, labels))
    mention = tf.data.Dataset.from_tensor_slices((texts2, has_mention))
    train = (
        kfinetune.data.mix(
            {"sentiment": sentiment, "mention": mention}, sampling=2.0, seed=0
        )
        .batch(32)
        .map(lambda x, y, w: (pre(x), y, w))
    )
    ```
    """
    if not isinstance(datasets, dict) or not datasets:
        raise ValueError(
            "`datasets` must be a non-empty dict of task name → "
            f"tf.data.Dataset. Received: datasets={datasets!r}"
        )
    for task, dataset in datasets.items():
        if not isinstance(task, str) or not isinstance(
            dataset, tf.data.Dataset
        ):
            raise ValueError(
                "`datasets` must map task names (strings) to "
                f"`tf.data.Dataset`s. Received: datasets[{task!r}]={dataset!r}"
            )
    _check_sampling(sampling)
    if size is not None:
        checks.positive_integer("size", size)
    tasks = list(datasets)
    specs = {task: _element_specs(task, datasets[task]) for task in tasks}
    first = tasks[0]
    for task in tasks[1:]:
        try:
            tf.nest.assert_same_structure(specs[first][0], specs[task][0])
            same = all(
                a.dtype == b.dtype and a.shape.is_compatible_with(b.shape)
                for a, b in zip(
                    tf.nest.flatten(specs[first][0]),
                    tf.nest.flatten(specs[task][0]),
                    strict=True,
                )
            )
        except (TypeError, ValueError):
            same = False
        if not same:
            raise ValueError(
                f"Every task's inputs must have the same structure, dtypes "
                f"and shapes; task {task!r} differs from task {first!r}. "
                f"Received: x={specs[task][0]} (task {first!r}: "
                f"x={specs[first][0]})"
            )
    needs_sizes = sampling != "uniform" or size is None
    sizes = [_size(t, datasets[t]) for t in tasks] if needs_sizes else None
    probabilities = _task_probabilities(sizes or [1] * len(tasks), sampling)
    if size is None:
        size = sum(sizes)
    target_specs = {t: specs[t][1] for t in tasks}
    weight_specs = {
        t: specs[t][2] if len(specs[t]) == 3 else tf.TensorSpec((), "float32")
        for t in tasks
    }

    def labelled(task):
        def to_all_tasks(x, y, sample_weight=None):
            targets, weights = {}, {}
            for other in tasks:
                if other == task:
                    targets[other] = y
                    weights[other] = (
                        tf.ones((), "float32")
                        if sample_weight is None
                        else tf.cast(sample_weight, "float32")
                    )
                else:
                    targets[other] = tf.zeros(
                        target_specs[other].shape, target_specs[other].dtype
                    )
                    weights[other] = tf.zeros(
                        weight_specs[other].shape, "float32"
                    )
            return x, targets, weights

        return datasets[task].map(to_all_tasks).repeat()

    return tf.data.Dataset.sample_from_datasets(
        [labelled(task) for task in tasks],
        weights=probabilities.tolist(),
        seed=seed,
    ).take(size)
