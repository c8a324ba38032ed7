"""`SpanHead`: start and end logits of an extractive answer span."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kfinetune")
class SpanHead(keras.layers.Layer):
    """Start and end logits over tokens, for extractive question answering.

    One dense unit per output on every token's hidden state. Tokens that
    cannot hold an answer get a logit of `-1e9`, so a softmax over the
    positions never picks them: only the context tokens (segment 1, not
    padding) and the first token (`[CLS]` or `<s>`, which stands for "no
    answer") keep their logits. The context's closing end token (segment
    1) keeps its logit too; no training target points at it and
    `kfinetune.qa.postprocess` never picks it.

    The context is read from `segment_ids`, not from the backbone, so the
    head works on every encoder family, those whose backbone takes no
    `segment_ids` (RoBERTa, ...) included (see
    `kfinetune.qa.question_answerer`).

    Args:
        kernel_initializer: initializer of the dense kernel. Defaults to
            `"glorot_uniform"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Input shape:
        `sequence_output` `(batch, sequence, hidden)`, `segment_ids` and
        `padding_mask` `(batch, sequence)`.

    Output shape:
        A tuple `(start_logits, end_logits)`, each `(batch, sequence)`.

    Example:

    ```python
    head = kfinetune.layers.SpanHead()
    start, end = head(outputs["sequence_output"], segment_ids, padding_mask)
    ```
    """

    def __init__(self, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dense = keras.layers.Dense(
            2,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="dense",
        )

    def build(
        self, sequence_output_shape, segment_ids_shape, padding_mask_shape
    ):
        self.dense.build(sequence_output_shape)

    def call(self, sequence_output, segment_ids, padding_mask):
        logits = self.dense(sequence_output)
        positions = ops.arange(ops.shape(segment_ids)[1])
        allowed = ops.logical_or(
            ops.logical_and(
                ops.equal(segment_ids, 1), ops.not_equal(padding_mask, 0)
            ),
            ops.equal(positions, 0)[None, :],
        )
        masked = ops.where(
            allowed[..., None], logits, ops.full_like(logits, -1e9)
        )
        return masked[..., 0], masked[..., 1]

    def compute_output_shape(
        self, sequence_output_shape, segment_ids_shape, padding_mask_shape
    ):
        shape = tuple(sequence_output_shape[:-1])
        return shape, shape

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer
            ),
        }
