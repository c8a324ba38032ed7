"""`reset_compiled_functions`: makes Keras trace a changed model again."""

import keras

from kfinetune import walk


def reset_compiled_functions(model):
    """Drops the traced train / test / predict (and keras-hub `generate`)
    functions of a model and of every model inside it, so the next `fit`,
    `evaluate`, `predict` or `generate` traces the current structure.

    Keras keeps running the graph it traced first: after a structural
    change (injecting, merging or switching adapters) `predict` would
    return the old outputs. Every `kfinetune.peft` function that changes
    the structure calls this; call it after changing a model yourself.

    Args:
        model: a Keras model.

    Example:

    ```python
    kfinetune.peft.reset_compiled_functions(model)
    ```
    """
    inner = [s.layer for s in walk.sites(model)]
    for m in [model, *inner]:
        if isinstance(m, keras.Model):
            m.train_function = None
            m.test_function = None
            m.predict_function = None
            if hasattr(m, "generate_function"):
                # keras-hub generators trace `generate` the same way.
                m.generate_function = None
