"""What a query needs from a model: probabilities, dropout passes, embeddings.

Every function reads its items batch by batch and can show Keras's
progress bar, so a large pool never has to go through the model at once.
"""

import keras
import numpy as np
import tensorflow as tf

from kfinetune import encoders
from kfinetune import preprocessing
from kfinetune import walk
from kfinetune.active import pool as pool_lib
from kfinetune.layers.mixup import Mixup

# Probabilities a softmax or sigmoid wrote sum to 1 within float rounding.
_SUM_TOLERANCE = 1e-3


def to_probabilities(outputs, from_logits):
    """Class probabilities from a classifier's outputs.

    Args:
        outputs: an array of shape `(items, classes)`, or `(items, 1)` /
            `(items,)` for a binary classifier with one sigmoid output.
        from_logits: whether `outputs` are logits (softmax or sigmoid is
            applied) rather than probabilities.

    Returns:
        A float64 array of shape `(items, classes)`, at least 2 classes.

    Raises:
        ValueError: if `from_logits=False` and `outputs` are not
            probabilities.

    Example:

    ```python
    kfinetune.active.predictions.to_probabilities(
        np.array([[0.0, 0.0]]), from_logits=True)
    # array([[0.5, 0.5]])
    ```
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]
    binary = outputs.ndim == 1
    if from_logits:
        if binary:
            positive = 1.0 / (1.0 + np.exp(-outputs))
            return np.stack([1.0 - positive, positive], axis=-1)
        shifted = outputs - outputs.max(axis=-1, keepdims=True)
        exponentials = np.exp(shifted)
        return exponentials / exponentials.sum(axis=-1, keepdims=True)
    valid = bool(np.all((outputs >= 0) & (outputs <= 1)))
    if valid and not binary:
        valid = np.allclose(outputs.sum(axis=-1), 1.0, atol=_SUM_TOLERANCE)
    if not valid:
        raise ValueError(
            "The model's outputs are not probabilities (each in [0, 1], "
            "summing to 1 per item); pass `from_logits=True` for a model "
            "that outputs logits, such as a keras-hub classifier. "
            "Received: from_logits=False"
        )
    if binary:
        return np.stack([1.0 - outputs, outputs], axis=-1)
    return outputs


def probabilities(model, items, from_logits, batch_size, verbose):
    """The model's class probabilities for every item, via `predict`."""
    outputs = preprocessing.predict(model, items, batch_size, verbose)
    return to_probabilities(outputs, from_logits)


def _model_batches(model, items, batch_size):
    batches = pool_lib.dataset(items, batch_size)
    # keras-hub tasks preprocess inside `predict` and `fit`, not in `call`.
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None:
        batches = batches.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def _seed_states(model):
    # `Layer.variables` is `weights` plus each SeedGenerator's state (public
    # since Keras 3.0): the state every dropout layer draws its masks from.
    weights = {id(variable) for variable in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def check_mc_dropout_model(model):
    """Refuses a model with layers that act in training other than by
    dropout: Monte-Carlo dropout calls it with `training=True`, where
    BatchNormalization normalises by each batch's statistics (and moves its
    moving averages) and `Mixup` mixes pool items with their neighbours.

    Raises:
        ValueError: naming the first such layer.
    """
    for site in walk.sites(model):
        layer = site.layer
        if isinstance(layer, keras.layers.BatchNormalization | Mixup):
            raise ValueError(
                "`strategy='bald'` calls the model with `training=True` for "
                "its dropout, which would also change what "
                f"{type(layer).__name__} layers do (batch statistics, "
                "mixing): use another strategy, or a model whose only "
                f"training-time layers are dropout. Received: a model with "
                f"the layer {site.path!r}"
            )


def mc_dropout_probabilities(
    model, items, passes, from_logits, batch_size, seed, verbose
):
    """Class probabilities of `passes` forward passes with dropout on.

    Monte-Carlo dropout (Gal & Ghahramani, 2016): the model is called with
    `training=True`, so every pass drops different units. Before the passes
    every dropout seed state of the model is set from `seed`, and after
    them restored, so the passes repeat for a seed and the model's own
    random stream (for later training) is left where it was.

    Args:
        model: a Keras classifier with dropout.
        items: pool items, as `kfinetune.active.pool.as_items` returns.
        passes: the number of passes.
        from_logits: whether the model outputs logits.
        batch_size: items per forward call.
        seed: the seed of the dropout masks.
        verbose: `0` for silence, else a progress bar over the batches.

    Returns:
        An array of shape `(passes, items, classes)`.

    Raises:
        ValueError: if the passes are all identical: the model has no
            active dropout, so BALD would score every item 0.

    Example:

    ```python
    passes = kfinetune.active.predictions.mc_dropout_probabilities(
        model, items, passes=5, from_logits=True, batch_size=64, seed=0,
        verbose=0)
    ```
    """
    states = _seed_states(model)
    saved = [keras.ops.convert_to_numpy(state) for state in states]
    rng = np.random.default_rng(seed)
    starts = rng.integers(1, 2**31 - 1, size=len(states))

    @tf.function
    def forward(x):
        return model(x, training=True)

    batches = _model_batches(model, items, batch_size)
    total = -(-pool_lib.size(items) // batch_size)
    progress = keras.utils.Progbar(total) if verbose else None
    outputs = []
    try:
        for state, start in zip(states, starts, strict=True):
            state.assign(np.array([start, 0], dtype=state.dtype))
        for step, x in enumerate(batches):
            outputs.append(
                np.stack(
                    [
                        to_probabilities(
                            keras.ops.convert_to_numpy(
                                keras.ops.cast(forward(x), "float32")
                            ),
                            from_logits,
                        )
                        for _ in range(passes)
                    ]
                )
            )
            if progress is not None:
                progress.update(step + 1)
    finally:
        for state, value in zip(states, saved, strict=True):
            state.assign(value)
    result = np.concatenate(outputs, axis=1)
    if np.array_equal(result.min(axis=0), result.max(axis=0)):
        raise ValueError(
            "`strategy='bald'` needs dropout that is active with "
            "`training=True`, but every Monte-Carlo dropout pass of the "
            "model gave the same outputs (dropout rate 0?). Build the model "
            "with dropout (keras-hub BERT presets use 0.1) or use another "
            f"strategy. Received: model={model.name!r}"
        )
    return result


def embeddings(model, items, embed, batch_size, verbose):
    """One embedding per item: `embed(items)` or the backbone's pooled output.

    Args:
        model: a Keras model; without `embed`, a keras-hub task whose
            `backbone` is an encoder of a family of `kfinetune.encoders`:
            the embedding is its pooled output (for a family without a
            pooler, the first token's hidden state; see
            `kfinetune.encoders.outputs`).
        items: pool items, as `kfinetune.active.pool.as_items` returns.
        embed: `None`, or a callable taking the items (in the pool's form)
            and returning an array of shape `(items, dimensions)`, e.g. an
            encoder's `predict`.
        batch_size: items per forward call.
        verbose: passed to `predict`.

    Returns:
        An array of shape `(items, dimensions)`.

    Raises:
        ValueError: if `embed` is `None` and the model has no encoder
            backbone of a supported family, or `embed` returns the wrong shape.

    Example:

    ```python
    vectors = kfinetune.active.predictions.embeddings(
        model, items, embed=None, batch_size=64, verbose=0)
    ```
    """
    count = pool_lib.size(items)
    if embed is None:
        backbone = getattr(model, "backbone", None)
        try:
            encoders.family_of(backbone)
        except ValueError as error:
            raise ValueError(
                "`strategy='kcenter'` measures diversity on embeddings: "
                "either the model is a keras-hub task whose `backbone` is an "
                "encoder of a supported family (its pooled output is the "
                "embedding), or `embed` is given (a callable mapping the "
                "pool's items to an array of shape (items, dimensions)). "
                f"{error} as the backbone of model={model.name!r}, and "
                "embed=None"
            ) from None
        pooled = encoders.outputs(backbone, backbone.input)["pooled_output"]
        encoder = keras.Model(backbone.input, pooled)
        vectors = encoder.predict(
            _model_batches(model, items, batch_size), verbose=verbose
        )
    else:
        vectors = embed(items)
    vectors = np.asarray(keras.ops.convert_to_numpy(vectors), dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != count:
        raise ValueError(
            f"`embed` must return one vector per item, shape ({count}, "
            f"dimensions). Received: embed returning shape {vectors.shape}"
        )
    return vectors
