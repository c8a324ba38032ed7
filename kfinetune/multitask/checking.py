"""`check`: the tasks of a dataset match a multi-task model's heads."""

import tensorflow as tf


def task_names(model):
    outputs = model.output
    if not isinstance(outputs, dict):
        raise ValueError(
            "`model` must have a dict output keyed by task name, as "
            "`kfinetune.multitask.build` makes. "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    return sorted(outputs)


def check(model, dataset):
    """Checks that every task in a dataset has a head, and vice versa.

    Keras itself only says "y_true and y_pred have different structures"
    once training has started; this names the task. Call it before `fit`.

    Args:
        model: a model built by `kfinetune.multitask.build` (or the model
            `kfinetune.peft.apply` returned for it).
        dataset: a `tf.data.Dataset` of `(x, {task: y}, ...)`, such as
            `kfinetune.data.mix` returns.

    Raises:
        ValueError: a task in the data has no head, a head has no targets in
            the data, or the targets are not a dict keyed by task.

    Example:

    ```python
    train = kfinetune.data.mix({"sentiment": ds1, "topic": ds2})
    kfinetune.multitask.check(model, train)
    model.fit(train.batch(32), epochs=1)
    ```
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            "`dataset` must be a `tf.data.Dataset` of (x, {task: y}, ...). "
            f"Received: dataset={dataset!r}"
        )
    heads = task_names(model)
    spec = dataset.element_spec
    targets = spec[1] if isinstance(spec, tuple) and len(spec) > 1 else None
    if not isinstance(targets, dict):
        raise ValueError(
            "`dataset` must yield (x, {task: y}, ...) with a dict of targets "
            "keyed by task name, as `kfinetune.data.mix` makes. "
            f"Received: dataset.element_spec={spec}"
        )
    for task in targets:
        if task not in heads:
            raise ValueError(
                f"The data has targets for task {task!r}, but the model has "
                f"no head of that name (heads: {heads}). "
                f"Received: task={task!r}"
            )
    for task in heads:
        if task not in targets:
            raise ValueError(
                f"The model's head {task!r} has no targets in the data (tasks "
                f"in the data: {sorted(targets)}); mix a dataset for it in. "
                f"Received: task={task!r}"
            )
