"""`EntityF1`: a tagger's entity F1 on validation sentences, in the logs."""

import keras

from kfinetune import checks
from kfinetune.data.conll import TaggedSentences
from kfinetune.evaluation.sequence_labelling import SCHEMES
from kfinetune.evaluation.sequence_labelling import sequence_labelling_report


class EntityF1(keras.callbacks.Callback):
    """Writes a tagger's strict entity F1 on validation sentences into the
    logs at the end of every epoch, as `val_entity_f1`.

    A tagger is chosen by its entity F1, not by its loss or its token
    accuracy (most tokens are `O`). This callback predicts the validation
    sentences, reads one tag per word (`TokenLabels.to_words`: a word cut
    off by `sequence_length` counts as `O`) and scores the entities
    strictly against the gold tags of every word, as
    `kfinetune.evaluation.sequence_labelling_report` does (the numbers of
    `seqeval` in strict mode). The micro-averaged F1 goes into the logs,
    where `keras.callbacks.EarlyStopping`, `ModelCheckpoint`,
    `ReduceLROnPlateau` and `History` read it: list `EntityF1` before them
    in `callbacks`, and give them `mode="max"` (Keras cannot tell which
    way a metric it did not compile should go).

    It works with any model whose `predict` gives per-piece scores
    `(sentences, sequence_length, tags)` or tags `(sentences,
    sequence_length)` (a `kfinetune.layers.CRF`), e.g.
    `kfinetune.presets.token_classifier` (a model with a `word_mask`
    input gets it, `TokenLabels.inputs_for`). Each epoch costs one `predict`
    over the validation sentences.

    Args:
        sentences: the validation split, a `kfinetune.data.TaggedSentences`
            (e.g. from `kfinetune.data.from_conll`).
        tokenizer: the model's keras-hub word-piece tokenizer, or a
            preprocessor holding one.
        sequence_length: the model's input length. Defaults to `64`.
        scheme: how tags mark entities: `"BIO"` (IOB2) or `"IOBES"`.
            Defaults to `"BIO"`.
        batch_size: sentences per `predict` batch. Defaults to `32`.
        name: the key written into the logs. Defaults to
            `"val_entity_f1"`.

    Example:

    ```python
    f1 = kfinetune.callbacks.EntityF1(validation, tokenizer)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_entity_f1", mode="max", patience=2,
        restore_best_weights=True)
    model.fit(train_rows, epochs=10, callbacks=[f1, stop])
    ```
    """

    def __init__(
        self,
        sentences,
        tokenizer,
        sequence_length=64,
        scheme="BIO",
        batch_size=32,
        name="val_entity_f1",
    ):
        super().__init__()
        if not isinstance(sentences, TaggedSentences) or not sentences.tags:
            raise ValueError(
                "`sentences` must be a non-empty "
                "`kfinetune.data.TaggedSentences` (the validation split). "
                f"Received: sentences={sentences!r}"
            )
        checks.one_of("scheme", scheme, SCHEMES)
        checks.positive_integer("batch_size", batch_size)
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"`name` must be a non-empty string. Received: name={name!r}"
            )
        # Every tag must parse in the scheme: checked now, not after the
        # first epoch.
        sequence_labelling_report(sentences.tags, sentences.tags, scheme)
        self.gold = sentences.tags
        self.aligned = sentences.align(tokenizer, sequence_length)
        self.scheme = scheme
        self.batch_size = batch_size
        self.name = name

    def report(self):
        """The model's `SequenceLabellingReport` on the sentences now."""
        predictions = self.model.predict(
            self.aligned.inputs_for(self.model),
            batch_size=self.batch_size,
            verbose=0,
        )
        words = self.aligned.to_words(predictions)
        return sequence_labelling_report(self.gold, words, self.scheme)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.name] = self.report().micro_f1
