"""`fisher`: the diagonal empirical Fisher information of a model's weights."""

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kfinetune.incremental.snapshot import trainable_by_path


def fisher(model, dataset, loss=None):
    """Estimates the diagonal empirical Fisher information of each weight.

    The mean, over the batches of `dataset`, of the squared gradient of the
    loss (the negative log-likelihood of the observed labels) with respect
    to each trainable weight, with the model in inference mode (no
    dropout). With batches of one example this is the textbook empirical
    Fisher, the mean of squared per-example gradients; larger batches
    square the gradient of each batch's mean loss instead, which is faster
    but smaller (about `1 / batch_size` as large where the examples'
    gradients are independent), so keep one batch size when comparing
    strengths. The result is the `fisher` of
    `kfinetune.incremental.anchor(model, strength, "ewc", fisher=...)`.

    Args:
        model: a built Keras model; keras-hub tasks preprocess raw inputs
            with their `preprocessor`, as in `fit`.
        dataset: a batched `tf.data.Dataset` of `(x, y)` or
            `(x, y, sample_weight)` from the old task (finite).
        loss: a Keras loss giving the negative log-likelihood. Defaults to
            `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`.

    Returns:
        A dict of `variable.path` → non-negative float32 NumPy array, one
        per trainable variable of `model`.

    Raises:
        ValueError: `dataset` is not a `tf.data.Dataset`, is infinite or
            has no batches; two of the model's weights share a path.

    Example:

    ```python
    old_fisher = kfinetune.incremental.fisher(
        model, old_data.train.take(500).batch(1))
    ```
    """
    variables = trainable_by_path(model)
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            "`dataset` must be a batched `tf.data.Dataset` of (x, y). "
            f"Received: dataset={dataset!r}"
        )
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "`dataset` must be finite: the Fisher is a mean over all of "
            "its batches (use `take`). Received: dataset of infinite "
            "cardinality"
        )
    loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(model, keras_hub.models.Task):
        dataset = dataset.map(model.preprocess_samples)
    weights = list(variables.values())

    @tf.function(reduce_retracing=True)
    def squared_gradients(x, y, sample_weight):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=False)
            value = loss(y, y_pred, sample_weight=sample_weight)
        gradients = tape.gradient(value, weights)
        return [
            tf.zeros(w.shape, w.dtype)
            if g is None
            else tf.square(tf.convert_to_tensor(g))
            for g, w in zip(gradients, weights, strict=True)
        ]

    totals = [np.zeros(w.shape, "float64") for w in weights]
    batches = 0
    for batch in dataset:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        for total, square in zip(
            totals, squared_gradients(x, y, sample_weight), strict=True
        ):
            total += square.numpy()
        batches += 1
    if not batches:
        raise ValueError(
            "`dataset` has no batches: the Fisher is a mean over them. "
            "Received: an empty dataset"
        )
    return {
        path: (total / batches).astype("float32")
        for path, total in zip(variables, totals, strict=True)
    }
