"""`predict`: a keras-hub task's predictions on raw inputs, with the
task's preprocessor traced once rather than in every call.

keras-hub's `Task.predict` maps the task's preprocessor over a new
`tf.data` pipeline on every call, and that traces the preprocessor again
each time: about 0.7 s for a BERT tokenizer on two CPU cores, many times
what predicting a few hundred tweets takes (measured on a small BERT
classifier and 200 texts: 1.2-1.9 s per `predict`, under 0.1 s this way).
Code that predicts raw text again and again (an evaluation after every
epoch, each round of active learning, the command line's checks) runs the
preprocessor through one `tf.function` per preprocessor and input
structure instead, then `predict`s on its outputs with the preprocessor
set aside for the call (`task.preprocessor = None` is keras-hub's
documented way to turn preprocessing off). The preprocessor runs its
TensorFlow path, as in `fit`'s `tf.data` pipeline (called eagerly,
keras-hub runs a separate pure-Python implementation), so the outputs
equal `model.predict`'s.
"""

import contextlib
import weakref

import keras
import keras_hub
import numpy as np
import tensorflow as tf


@contextlib.contextmanager
def without_preprocessor(model):
    """Sets `model.preprocessor` aside inside the block (keras-hub tasks
    then take preprocessed inputs), and puts it back afterwards."""
    preprocessor = model.preprocessor
    model.preprocessor = None
    try:
        yield preprocessor
    finally:
        model.preprocessor = preprocessor


# One traced function per preprocessor and input structure; the weak keys
# let a preprocessor (and its lookup tables) go with its model.
_FUNCTIONS = weakref.WeakKeyDictionary()


def _traced(preprocessor, x):
    """The preprocessor as a `tf.function` over batches shaped like `x`
    (any batch size)."""
    spec = tf.nest.map_structure(
        lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), x
    )
    functions = _FUNCTIONS.setdefault(preprocessor, {})
    key = repr(spec)
    if key not in functions:
        # A weak reference: a function holding its own key would keep the
        # key, and so the entry, alive for good.
        owner = weakref.ref(preprocessor)

        def run(x):
            preprocessor = owner()
            # keras-hub's `Task.preprocess_samples` calls the same way: a
            # tuple `x` is the texts of pairs, not texts and labels.
            if isinstance(preprocessor, keras_hub.models.Preprocessor):
                return preprocessor(x, y=None, sample_weight=None)
            return preprocessor(x)

        functions[key] = tf.function(run, input_signature=[spec])
    return functions[key]


def _tensors(x):
    if isinstance(x, (tuple, list)) and x and not isinstance(x[0], str):
        return tuple(tf.convert_to_tensor(np.asarray(part)) for part in x)
    return tf.convert_to_tensor(np.asarray(x))


def preprocess(preprocessor, x):
    """`preprocessor`'s outputs for `x`, as NumPy arrays.

    Args:
        preprocessor: a keras-hub preprocessor (e.g. a task's
            `preprocessor`), or any callable on a batch of inputs that
            TensorFlow can trace.
        x: a batch of raw inputs (an array or list of strings, a tuple of
            two arrays for sentence pairs), or a `tf.data.Dataset` of such
            batches, read as `predict` reads one (a batch `(x,)` or
            `(x, y)` holds the inputs `x`).

    Returns:
        The preprocessed inputs (for a text classifier, a dict of
        `token_ids`, `padding_mask`, ... arrays), all batches joined.

    Raises:
        ValueError: `x` is an empty dataset.

    Example:

    ```python
    features = kfinetune.preprocessing.preprocess(
        model.preprocessor, ["so good", "awful"])
    features["token_ids"].shape  # (2, 64)
    ```
    """
    if isinstance(x, tf.data.Dataset):
        batches = []
        for batch in x:
            # As `predict` reads a dataset: `(x,)` or `(x, y, ...)` are
            # tuples holding the inputs (a sentence pair is `((a, b),)`).
            batch, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
            batches.append(_numpy(_traced(preprocessor, batch)(batch)))
        if not batches:
            raise ValueError(
                "The dataset holds no inputs to preprocess. Received: an "
                "empty dataset"
            )
        return keras.tree.map_structure(
            lambda *parts: np.concatenate(parts), *batches
        )
    x = _tensors(x)
    return _numpy(_traced(preprocessor, x)(x))


def _numpy(structure):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, structure)


def predict(model, x, batch_size=32, verbose=0):
    """`model.predict(x)`, with a keras-hub task's preprocessing run once,
    eagerly, instead of traced anew in every call.

    A model without a `preprocessor` (or with `preprocessor=None`)
    predicts as `model.predict` does.

    Args:
        model: a Keras model; a keras-hub task with a preprocessor takes
            raw inputs.
        x: what `model.predict` takes: raw inputs (strings, a tuple of two
            arrays of strings for pairs), a `tf.data.Dataset` of batches
            of them, or preprocessed inputs for a model without a
            preprocessor.
        batch_size: the batch size of `predict` (a dataset keeps its own
            batches for the preprocessor). Defaults to `32`.
        verbose: `model.predict`'s progress output. Defaults to `0`.

    Returns:
        What `model.predict` returns.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    logits = kfinetune.preprocessing.predict(model, ["so good", "awful"])
    ```
    """
    if getattr(model, "preprocessor", None) is None:
        return model.predict(x, batch_size=batch_size, verbose=verbose)
    features = preprocess(model.preprocessor, x)
    with without_preprocessor(model):
        return model.predict(features, batch_size=batch_size, verbose=verbose)
