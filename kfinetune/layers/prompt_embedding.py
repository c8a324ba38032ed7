"""`PromptEmbedding`: learned soft-prompt vectors inserted into a sequence."""

import keras
from keras import ops

from kfinetune import checks


def insert(sequence, prompts, position):
    """Inserts `prompts` `(P, H)` into `sequence` `(B, L, H)` before index
    `position`, for every row."""
    batch = ops.shape(sequence)[0]
    prompts = ops.cast(prompts, sequence.dtype)
    tiled = ops.tile(ops.expand_dims(prompts, 0), [batch, 1, 1])
    return ops.concatenate(
        [sequence[:, :position], tiled, sequence[:, position:]], axis=1
    )


def extend_padding_mask(mask, length, position):
    """Marks `length` inserted positions at `position` as real tokens in a
    `(B, L)` padding mask."""
    ones = ops.ones_like(mask[:, :1])
    prompt = ops.repeat(ones, length, axis=1)
    return ops.concatenate([mask[:, :position], prompt, mask[:, position:]], 1)


def extend_attention_mask(mask, length, position):
    """Lets every position attend to, and be attended by, `length` inserted
    positions in a `(B, T, S)` attention mask."""
    rows = ops.ones_like(mask[:, :1, :])
    mask = ops.concatenate(
        [mask[:, :position], ops.repeat(rows, length, 1), mask[:, position:]],
        axis=1,
    )
    columns = ops.ones_like(mask[:, :, :1])
    return ops.concatenate(
        [
            mask[:, :, :position],
            ops.repeat(columns, length, 2),
            mask[:, :, position:],
        ],
        axis=2,
    )


def strip(sequence, length, position):
    """Removes `length` inserted positions at `position` again."""
    return ops.concatenate(
        [sequence[:, :position], sequence[:, position + length :]], axis=1
    )


@keras.saving.register_keras_serializable(package="kfinetune")
class PromptEmbedding(keras.layers.Layer):
    """Prompt tuning (Lester et al., 2021): `length` learned vectors inserted
    into a sequence of embeddings.

    The vectors go in before index `position` of every row: `0` puts them
    before the first token (decoders), `1` right after a `[CLS]` token
    (BERT-style encoders, whose pooler reads position 0). With a
    `padding_mask`, the layer also returns the mask extended to mark the
    prompt positions as real tokens, so every token may attend to them.

    Args:
        length: number of prompt vectors, a positive integer.
        position: index to insert at. Defaults to `0`.
        initializer: initializer of the `(length, hidden)` prompt vectors.
            Defaults to `"random_normal"`.
        **kwargs: base layer arguments such as `name`.

    Input shape:
        `(batch, sequence, hidden)`, and optionally a `padding_mask` of
        shape `(batch, sequence)`.

    Output shape:
        `(batch, sequence + length, hidden)`, and the extended padding mask
        when one was given.

    Example:

    ```python
    x = keras.Input((None, 64))
    mask = keras.Input((None,), dtype="int32")
    y, y_mask = kfinetune.layers.PromptEmbedding(length=8)(x, padding_mask=mask)
    ```
    """

    def __init__(
        self, length, position=0, initializer="random_normal", **kwargs
    ):
        checks.positive_integer("length", length)
        checks.non_negative_integer("position", position)
        super().__init__(**kwargs)
        self.length = length
        self.position = position
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape):
        self.prompt_embeddings = self.add_weight(
            name="prompt_embeddings",
            shape=(self.length, inputs_shape[-1]),
            initializer=self.initializer,
        )

    def call(self, inputs, padding_mask=None):
        outputs = insert(inputs, self.prompt_embeddings, self.position)
        if padding_mask is None:
            return outputs
        return outputs, extend_padding_mask(
            padding_mask, self.length, self.position
        )

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        length = inputs_shape[1]
        if length is not None:
            length += self.length
        shape = (inputs_shape[0], length, *inputs_shape[2:])
        if padding_mask_shape is None:
            return shape
        return shape, (padding_mask_shape[0], length)

    def get_config(self):
        return {
            **super().get_config(),
            "length": self.length,
            "position": self.position,
            "initializer": keras.initializers.serialize(self.initializer),
        }
