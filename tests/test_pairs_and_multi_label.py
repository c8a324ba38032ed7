"""Sentence pairs and multi-label targets through a keras-hub text
classifier: fit, evaluation and SavedModel export, on the small random
BERT. LoRA and the `.keras` round trip of a pair model: the command
line's pair run (tests/test_cli_pairs_and_multi_label.py), which compares
the reloaded model's logits with the trained one's."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import evaluation
from kfinetune import export
from kfinetune import testing
from kfinetune.data import LabelledTexts

CLASS_NAMES = ("fun", "sad", "movie")
FIRST = ["i love this movie", "a sad day", "so fun", "the film was boring"]
SECOND = ["great fun", "i hate it", "we loved it", "not a good movie"]
LABELS = [[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 1]]
PAIRS = (np.array(FIRST), np.array(SECOND))


@pytest.fixture(scope="module")
def trained():
    """A pair classifier with a sigmoid per class, fit a few steps, and
    its logits for `PAIRS`."""
    keras.utils.set_random_seed(0)
    texts = LabelledTexts(
        list(zip(FIRST * 2, SECOND * 2, strict=True)), LABELS * 2, CLASS_NAMES
    )
    model = testing.small_bert_classifier(num_classes=3, sequence_length=16)
    train = texts.as_dataset(seed=0).batch(4)
    testing.compile_and_build(
        model,
        data=train,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        # keras-hub compiled the model with sparse accuracy, which Keras
        # keeps unless given other metrics.
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)],
    )
    history = model.fit(train, epochs=2, verbose=0)
    logits = testing.predict(model, PAIRS)
    return model, texts, history.history["loss"], logits


def test_pairs_train_and_are_packed_as_two_segments(trained):
    model, texts, losses, logits = trained
    assert losses[-1] < losses[0]
    # `x=`: keras-hub reads a positional 2-tuple as `(x, y)`.
    x = model.preprocessor(x=tuple(tf.constant(t) for t in PAIRS))
    # [CLS] a [SEP] b [SEP]: the second segment has segment id 1.
    assert set(np.unique(x["segment_ids"])) == {0, 1}
    # A pair is one input: `evaluate_classifier` on the dataset of pairs
    # scores what `predict` gives on the arrays.
    report = evaluation.evaluate_classifier(
        model, texts.as_dataset(shuffle=False), CLASS_NAMES
    )
    probabilities = 1 / (1 + np.exp(-np.concatenate([logits, logits])))
    expected = evaluation.multi_label_report(
        texts.labels, probabilities, CLASS_NAMES
    )
    assert report == expected


def test_pair_multi_label_model_exports(trained, tmp_path):
    model, _, _, logits = trained
    export.export_text_classifier(
        model,
        tmp_path / "sm",
        class_names=CLASS_NAMES,
        verbose=False,
        pairs=True,
        multi_label=True,
        threshold=0.4,
    )
    # Keep the loaded object alive: its functions do not own the variables.
    reloaded = export.load_text_classifier(tmp_path / "sm")
    served = reloaded.signatures["serving_default"](
        texts=tf.constant(FIRST), text_pairs=tf.constant(SECOND)
    )
    testing.assert_outputs_close(served["outputs"], logits)
    probabilities = 1 / (1 + np.exp(-logits))
    testing.assert_outputs_close(served["probabilities"], probabilities)
    chosen = probabilities > 0.4
    assert chosen.any() and not chosen.all()
    np.testing.assert_array_equal(served["predicted"], chosen.astype(int))
    labels = served["labels"].numpy()
    assert labels.shape == (4, 3)
    for row, picked in zip(labels, chosen, strict=True):
        names = [name.decode() for name in row if name]
        assert names == [
            n for n, c in zip(CLASS_NAMES, picked, strict=True) if c
        ]


def test_export_checks_its_arguments(tmp_path):
    model = testing.small_bert_classifier(sequence_length=16)
    with pytest.raises(ValueError, match="Received: threshold=0.4"):
        export.export_text_classifier(model, tmp_path / "sm", threshold=0.4)
    with pytest.raises(ValueError, match="Received: threshold=1"):
        export.export_text_classifier(
            model, tmp_path / "sm", multi_label=True, threshold=1
        )
    with pytest.raises(ValueError, match="Received: pairs='yes'"):
        export.export_text_classifier(model, tmp_path / "sm", pairs="yes")
    model = testing.small_bert_classifier(sequence_length=16)
    softmax = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, activation="softmax")]
    )
    softmax.preprocessor = model.preprocessor
    with pytest.raises(ValueError, match="activation is softmax"):
        export.export_text_classifier(
            softmax, tmp_path / "sm", multi_label=True
        )
    assert not (tmp_path / "sm").exists()
