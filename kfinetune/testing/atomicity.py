"""Checks that a failed operation left a model exactly as it was."""

import numpy as np

from kfinetune import walk


def model_state(model):
    """Captures a model's structure, weights and trainable flags.

    Returns:
        A dict to pass to `assert_model_unchanged`.

    Example:

    ```python
    state = kfinetune.testing.model_state(model)
    with pytest.raises(ValueError):
        kfinetune.peft.apply(model, bad_config)
    kfinetune.testing.assert_model_unchanged(model, state)
    ```
    """
    sites = walk.sites(model)
    return {
        "structure": [
            (s.path, type(s.layer).__name__, id(s.layer), s.attribute)
            for s in sites
        ],
        "weights": {
            (i, v.path): v.numpy().copy() for i, v in enumerate(model.weights)
        },
        "variable_flags": [(v.path, v.trainable) for v in model.weights],
        "layer_flags": [(id(s.layer), s.layer.trainable) for s in sites],
    }


def assert_model_unchanged(model, state):
    """Asserts the model's structure, weights (bitwise) and trainable flags
    equal those captured by `model_state`."""
    after = model_state(model)
    for key in ("structure", "variable_flags", "layer_flags"):
        if after[key] != state[key]:
            raise AssertionError(
                f"The model's {key.replace('_', ' ')} changed."
            )
    if after["weights"].keys() != state["weights"].keys():
        raise AssertionError("The model's set of weights changed.")
    for key, value in state["weights"].items():
        np.testing.assert_array_equal(after["weights"][key], value)
