"""`snapshot`: a model's trainable weight values, keyed by variable path."""

import keras
import numpy as np

from kfinetune import checks


def trainable_by_path(model):
    """The trainable variables of `model`, keyed by `variable.path`.

    Args:
        model: a built Keras model.

    Returns:
        A dict of path → variable, in the order of
        `model.trainable_variables`.

    Raises:
        ValueError: `model` is not a built Keras model with weights, or two
            of its variables share a path (a model holding two copies of a
            backbone), so values keyed by path would be ambiguous.
    """
    if not isinstance(model, keras.Model) or not model.weights:
        raise ValueError(
            "`model` must be a built Keras model with weights. "
            f"Received: model={model!r}"
        )
    paths = checks.unique_weight_paths(model.trainable_variables, "key weights")
    return dict(zip(paths, model.trainable_variables, strict=True))


def snapshot(model):
    """Copies the values of a model's trainable weights, keyed by path.

    The anchor that `kfinetune.incremental.anchor` takes: keep one before
    fine-tuning further and pass it as `anchor=` to pull the weights back
    toward these values, also from another model of the same architecture
    (a copy built from the same config has the same paths).

    Args:
        model: a built Keras model.

    Returns:
        A dict of `variable.path` → NumPy array, one per trainable
        variable.

    Raises:
        ValueError: `model` is not a built Keras model, or two of its
            variables share a path.

    Example:

    ```python
    before = kfinetune.incremental.snapshot(model)
    model.fit(new_data)
    kfinetune.incremental.anchor(model, 0.01, anchor=before)
    ```
    """
    return {
        path: np.array(keras.ops.convert_to_numpy(variable))
        for path, variable in trainable_by_path(model).items()
    }
