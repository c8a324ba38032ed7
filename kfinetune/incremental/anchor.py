"""`anchor` and `release`: L2-SP or EWC penalties on a model's weights."""

import keras
import numpy as np

from kfinetune import checks
from kfinetune.incremental.regularizers import EWC
from kfinetune.incremental.regularizers import L2SP
from kfinetune.incremental.snapshot import snapshot
from kfinetune.incremental.snapshot import trainable_by_path
from kfinetune.peft.compiled_functions import reset_compiled_functions

METHODS = ("l2sp", "ewc")


def _check_arrays(name, arrays, variables):
    if not isinstance(arrays, dict) or not arrays:
        raise ValueError(
            f"`{name}` must be a non-empty dict of variable path → array "
            f"(e.g. from `kfinetune.incremental.snapshot`). "
            f"Received: {name}={type(arrays).__name__}"
        )
    unknown = sorted(set(arrays) - set(variables))
    if unknown:
        raise ValueError(
            f"`{name}` holds weights that are not trainable weights of "
            "`model` (another architecture, or a layer frozen since): "
            f"{len(unknown)} paths. Received: {name} paths {unknown[:5]}"
        )
    mismatched = [
        f"{path}: {tuple(np.shape(array))} vs {tuple(variables[path].shape)}"
        for path, array in arrays.items()
        if tuple(np.shape(array)) != tuple(variables[path].shape)
    ]
    if mismatched:
        raise ValueError(
            f"`{name}` has arrays whose shapes differ from the model's "
            f"weights (another architecture). Received: {mismatched[:5]}"
        )


def anchor(model, strength, method="l2sp", anchor=None, fisher=None):
    """Penalises a model's weights for moving away from an anchor.

    Sets a `kfinetune.incremental.L2SP` (or `EWC`) regularizer on each
    anchored variable (`keras.Variable.regularizer`). Keras adds the
    regularizers of a model's trainable variables to the loss that `fit`
    minimises, so the penalty works in plain `model.fit`, under
    `jit_compile=True` and for any Keras model, keras-hub tasks included.
    The model's compiled functions are reset, so the next `fit` traces the
    penalty in.

    - `"l2sp"`: `strength / 2 * sum((w - anchor) ** 2)` over every
      anchored weight, against forgetting when fine-tuning on new data.
    - `"ewc"`: `strength / 2 * sum(fisher * (w - anchor) ** 2)` over the
      weights in `fisher` (from `kfinetune.incremental.fisher` on the old
      task's data): the weights the old task depends on move least.

    A frozen variable is not penalised: Keras only adds the regularizers of
    trainable variables, so a variable anchored and frozen later is
    skipped while frozen, and one frozen at the time of `anchor` (not in
    the default snapshot) stays unpenalised when unfrozen unless `anchor`
    holds its value. Layer configs do not include the regularizers set on
    variables: a model saved with an anchor reloads without the penalty
    (re-anchor it if training continues). Remove the penalty with
    `kfinetune.incremental.release`.

    Args:
        model: a built Keras model.
        strength: the penalty coefficient, positive.
        method: `"l2sp"` or `"ewc"`. Defaults to `"l2sp"`.
        anchor: dict of variable path → values to pull the weights toward,
            e.g. `kfinetune.incremental.snapshot(previous_model)`; every
            path must be a trainable weight of `model` with that shape.
            Weights not in it are not penalised. Defaults to the current
            values of every trainable weight.
        fisher: with `"ewc"`, dict of variable path → non-negative diagonal
            Fisher information (`kfinetune.incremental.fisher`); its paths
            must also be in `anchor`. Defaults to `None`.

    Raises:
        ValueError: `strength` or `method` is invalid; `fisher` is missing
            with `"ewc"` or given with `"l2sp"`; `anchor` or `fisher` has
            paths that are not trainable weights of `model`, or other
            shapes (another architecture); two weights share a path; a
            variable already has a regularizer. Nothing is changed then.

    Example:

    ```python
    old_fisher = kfinetune.incremental.fisher(model, old_data.batch(1))
    kfinetune.incremental.anchor(model, 100.0, "ewc", fisher=old_fisher)
    model.compile(optimizer="adamw", loss=loss, jit_compile=True)
    model.fit(new_data.batch(32))
    kfinetune.incremental.release(model)
    ```
    """
    checks.positive_number("strength", strength)
    checks.one_of("method", method, METHODS)
    if method == "ewc" and fisher is None:
        raise ValueError(
            '`method="ewc"` needs `fisher` (from '
            "`kfinetune.incremental.fisher`). Received: fisher=None"
        )
    if method == "l2sp" and fisher is not None:
        raise ValueError(
            '`fisher` weights the EWC penalty; pass `method="ewc"` to use '
            f"it. Received: method={method!r}, fisher=dict"
        )
    variables = trainable_by_path(model)
    anchor = snapshot(model) if anchor is None else anchor
    _check_arrays("anchor", anchor, variables)
    if fisher is not None:
        _check_arrays("fisher", fisher, variables)
        missing = sorted(set(fisher) - set(anchor))
        if missing:
            raise ValueError(
                "Every weight in `fisher` needs an anchor value, but "
                "`anchor` lacks some. "
                f"Received: fisher paths missing from anchor {missing[:5]}"
            )
    penalised = list(fisher if fisher is not None else anchor)
    taken = [
        path for path in penalised if variables[path].regularizer is not None
    ]
    if taken:
        anchored = any(
            isinstance(variables[path].regularizer, L2SP) for path in taken
        )
        advice = (
            "call `kfinetune.incremental.release(model)` first"
            if anchored
            else "the penalty would replace it"
        )
        raise ValueError(
            f"Some weights already have a regularizer ({advice}). "
            f"Received: regularized paths {taken[:5]}"
        )
    if method == "ewc":
        regularizers = {
            path: EWC(strength, anchor[path], fisher[path])
            for path in penalised
        }
    else:
        regularizers = {
            path: L2SP(strength, anchor[path]) for path in penalised
        }
    for path, regularizer in regularizers.items():
        variables[path].regularizer = regularizer
    reset_compiled_functions(model)


def release(model):
    """Removes the penalties `kfinetune.incremental.anchor` set.

    Clears every `L2SP` and `EWC` regularizer from the model's variables
    (trainable or not) and resets the compiled functions, so the next
    `fit` trains without the penalty. Other regularizers are kept.

    Args:
        model: a Keras model.

    Returns:
        The number of variables released.

    Raises:
        ValueError: `model` is not a Keras model.

    Example:

    ```python
    kfinetune.incremental.release(model)
    ```
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a Keras model. Received: model={model!r}"
        )
    released = 0
    for variable in model.weights:
        if isinstance(variable.regularizer, L2SP):
            variable.regularizer = None
            released += 1
    reset_compiled_functions(model)
    return released
