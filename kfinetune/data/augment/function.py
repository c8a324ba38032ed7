"""`from_function`: any Python `text -> text` function as an
augmentation."""

import numpy as np
import tensorflow as tf

from kfinetune.data.augment import augmentation


class FunctionAugmentation(augmentation.Augmentation):
    """A Python function applied to texts; see `from_function`."""

    def __init__(self, function):
        if not callable(function):
            raise ValueError(
                "`function` must be a callable taking a text and returning "
                f"a text. Received: function={function!r}"
            )
        super().__init__(seed=None)
        self.function = function

    def _apply(self, texts):
        texts = np.asarray(texts)
        outputs = []
        for text in texts.reshape(-1):
            output = self.function(text.decode("utf-8"))
            if not isinstance(output, str):
                raise ValueError(
                    "The augmentation function must return a string. "
                    f"Received: {output!r} for the text {text!r}"
                )
            outputs.append(output.encode("utf-8"))
        return np.array(outputs, dtype=object).reshape(texts.shape)

    def augment(self, inputs):
        texts = tf.convert_to_tensor(inputs)
        if texts.dtype != tf.string:
            raise ValueError(
                "`from_function` augments texts. Received: inputs of dtype "
                f"{texts.dtype.name}"
            )
        outputs = tf.numpy_function(
            self._apply, [texts], tf.string, stateful=True
        )
        outputs.set_shape(texts.shape)
        return outputs

    def _arguments(self):
        return {"function": self.function}


def from_function(function):
    """Wraps a Python function `text -> text` as an augmentation.

    The hook for back-translation, a paraphrasing model, or any augmentation
    written in Python. It runs through `tf.numpy_function`: host-side
    Python, outside the `tf.data` graph, so it holds the GIL, cannot be
    serialized with the dataset (no `tf.data` service, no SavedModel) and
    is as reproducible as the function is. Cache expensive outputs (e.g.
    translate the training set once and `concatenate` it) rather than
    calling a model on every epoch.

    Args:
        function: a callable taking one `str` and returning a `str`.

    Returns:
        An `Augmentation` to pass to `tf.data.Dataset.map` over texts or
        `(text, label)` pairs, unbatched or batched.

    Example:

    ```python
    def back_translate(text):
        return to_english(to_german(text))  # your translation models

    augment = kfinetune.data.augment.from_function(back_translate)
    train = data.train.map(augment).batch(32)
    ```
    """
    return FunctionAugmentation(function)
