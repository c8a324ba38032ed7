"""`question_answerer`: a keras-hub encoder backbone with a span head."""

import keras

from kfinetune import checks
from kfinetune import encoders
from kfinetune.layers.span_head import SpanHead

INPUTS = ("token_ids", "segment_ids", "padding_mask")


def question_answerer(backbone, sequence_length=None, dropout=0.1):
    """Builds an extractive question answering model on a backbone.

    The model takes the dict of `kfinetune.qa.QAFeatures.inputs()` and
    returns a dict of `start` and `end` logits over the tokens, with
    question and padding tokens masked to `-1e9` (see
    `kfinetune.layers.SpanHead`). It is a functional `keras.Model`, so it
    `.keras`-round-trips, exports, and takes every `kfinetune.peft` method.
    Train it with a sparse categorical cross-entropy over positions for
    each output:

    ```python
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss={"start": loss, "end": loss})
    ```

    The model takes `token_ids`, `segment_ids` and `padding_mask` whatever
    the family: the span head reads `segment_ids` (1 on the context) to
    know where an answer may lie. A backbone of a family without segment
    embeddings (RoBERTa, XLM-RoBERTa, DistilBERT, DeBERTa-v3; see
    `kfinetune.encoders`) does not read them, as its pretraining never
    saw them; only the head does.

    Args:
        backbone: a keras-hub backbone of a family of `kfinetune.encoders`.
        sequence_length: the input length, or `None` for any length up to
            the backbone's maximum. Defaults to `None`.
        dropout: dropout rate on the hidden states before the head.
            Defaults to `0.1`.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: `backbone` is not of a supported family (the message
            names the supported ones), or an argument is invalid.

    Example:

    ```python
    backbone = keras_hub.models.Backbone.from_preset(path)
    model = kfinetune.qa.question_answerer(backbone, sequence_length=256)
    ```
    """
    encoders.family_of(backbone)
    checks.in_range("dropout", dropout, 0.0, 1.0)
    if sequence_length is not None:
        checks.positive_integer("sequence_length", sequence_length)
    inputs = {
        name: keras.Input((sequence_length,), dtype="int32", name=name)
        for name in INPUTS
    }
    hidden = encoders.sequence_output(backbone, inputs)
    hidden = keras.layers.Dropout(dropout, name="span_dropout")(hidden)
    # Named like keras-hub classifier heads, so `kfinetune.peft` methods
    # keep it trainable by default.
    start, end = SpanHead(name="logits")(
        hidden, inputs["segment_ids"], inputs["padding_mask"]
    )
    outputs = {
        "start": keras.layers.Identity(name="start")(start),
        "end": keras.layers.Identity(name="end")(end),
    }
    return keras.Model(inputs, outputs, name="question_answerer")
