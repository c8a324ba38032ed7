"""`ModelRows`: tokenized training rows of a keras-hub generator."""

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class ModelRows:
    """Inputs, next-token labels and their weights, one row per example.

    The common part of `kfinetune.data.CausalLMData` and
    `kfinetune.data.Seq2SeqLMData`.

    Attributes:
        inputs: the dict of int32 arrays the model takes.
        labels: int32 next-token labels.
        sample_weight: float32 weights of the labels.
    """

    inputs: dict
    labels: np.ndarray
    sample_weight: np.ndarray

    def dataset(self):
        """An unbatched `tf.data.Dataset` of `(x, y, sample_weight)` rows.

        Returns:
            A `tf.data.Dataset` whose `x` is the dict of `inputs`.

        Example:

        ```python
        model.fit(data.dataset().shuffle(1000).batch(8))
        ```
        """
        return tf.data.Dataset.from_tensor_slices(
            (self.inputs, self.labels, self.sample_weight)
        )
