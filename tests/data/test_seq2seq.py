"""Tests of `seq2seq`: encoder-decoder rows of source and target texts."""

import string

import keras
import keras_hub
import numpy as np
import pytest

import kfinetune as kft
from kfinetune import testing


@pytest.fixture(scope="module")
def tokenizer():
    # Character-level BART byte pairs: ids fit the small BART's vocabulary.
    vocabulary = {"<s>": 0, "<pad>": 1, "</s>": 2, "<mask>": 3, "Ġ": 4}
    for character in string.ascii_lowercase:
        vocabulary[character] = len(vocabulary)
    vocabulary["Ġa"] = len(vocabulary)
    assert len(vocabulary) <= len(testing.VOCABULARY)
    return keras_hub.models.BartTokenizer(vocabulary=vocabulary, merges=["Ġ a"])


PAIRS = [
    {"source": " the movie was good", "target": " great"},
    (" a bad day", " awful"),
]


def keras_hub_rows(preprocessor, pairs):
    x, y, sample_weight = preprocessor(
        {
            "encoder_text": [source for source, _ in pairs],
            "decoder_text": [target for _, target in pairs],
        }
    )
    return {k: np.asarray(v) for k, v in x.items()}, y, sample_weight


def assert_same_rows(data, rows):
    x, y, sample_weight = rows
    for name, value in x.items():
        np.testing.assert_array_equal(data.inputs[name], value, err_msg=name)
    np.testing.assert_array_equal(data.labels, y)
    np.testing.assert_array_equal(data.sample_weight, sample_weight)


def test_layout_matches_bart_seq2seq_lm_preprocessor(tokenizer):
    pairs = [(" the movie was good", " great"), (" a bad day", " awful")]
    preprocessor = keras_hub.models.BartSeq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=24, decoder_sequence_length=10
    )
    rows = keras_hub_rows(preprocessor, pairs)
    assert_same_rows(kft.data.seq2seq(PAIRS, tokenizer, 24, 10), rows)
    assert_same_rows(kft.data.seq2seq(PAIRS, preprocessor, 24, 10), rows)
    # BART's decoder starts `</s> <s>`: the first label is `<s>`.
    data = kft.data.seq2seq(PAIRS, tokenizer, 24, 10)
    assert data.inputs["decoder_token_ids"][0, :2].tolist() == [2, 0]
    assert data.labels[0, 0] == 0


def test_other_tokenizers_get_the_generic_layout():
    tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=list(testing.VOCABULARY)
    )
    pairs = [("the movie was good", "great"), ("a bad day", "awful")]
    preprocessor = keras_hub.models.Seq2SeqLMPreprocessor(
        tokenizer, encoder_sequence_length=8, decoder_sequence_length=6
    )
    data = kft.data.seq2seq(pairs, tokenizer, 8, 6)
    assert_same_rows(data, keras_hub_rows(preprocessor, pairs))


def test_truncation_keeps_the_encoder_end_but_not_the_target_end(tokenizer):
    data = kft.data.seq2seq(PAIRS, tokenizer, 8, 7)
    source = data.inputs["encoder_token_ids"][0]
    assert source[0] == 0 and source[-1] == 2 and source.size == 8
    assert tokenizer.end_token_id not in data.labels[0].tolist()
    assert data.labels[1, -1] == tokenizer.end_token_id  # " awful" fits
    report = data.source_truncation
    assert (report.num_examples, report.num_truncated) == (2, 2)
    # A token per character (no "Ġa" here), and <s> and </s>.
    assert report.longest == len(" the movie was good") + 2
    assert "encoder_sequence_length=8" in str(report)
    report = data.target_truncation
    # `</s> <s> Ġ g r e a t </s>`, shifted: 8 long.
    assert (report.num_truncated, report.longest) == (1, 8)
    assert "decoder_sequence_length=7" in str(report)


def test_errors_name_the_example(tokenizer):
    with pytest.raises(ValueError, match="Example 1: the target has no"):
        kft.data.seq2seq([PAIRS[0], (" good", "")], tokenizer, 16, 8)
    with pytest.raises(ValueError, match="Example 0: the source has no"):
        kft.data.seq2seq([("", " good")], tokenizer, 16, 8)
    with pytest.raises(ValueError, match="Example 1 must be a dict with"):
        kft.data.seq2seq([PAIRS[0], {"prompt": "x"}], tokenizer, 16, 8)
    with pytest.raises(ValueError, match="`target` must be a string"):
        kft.data.seq2seq([(" good", None)], tokenizer, 16, 8)
    with pytest.raises(ValueError, match="Received: examples=\\[\\]"):
        kft.data.seq2seq([], tokenizer, 16, 8)
    with pytest.raises(ValueError, match="Received: encoder_sequence_length=2"):
        kft.data.seq2seq(PAIRS, tokenizer, 2, 8)
    # BART's two decoder start tokens leave no room for the target.
    with pytest.raises(ValueError, match="Received: decoder_sequence_length=1"):
        kft.data.seq2seq(PAIRS, tokenizer, 16, 1)


def test_a_short_fit_of_a_small_bart_trains(tokenizer):
    data = kft.data.seq2seq(PAIRS * 2, tokenizer, 24, 10)
    model = testing.small_seq2seq_lm(num_layers=1)
    # Eager: tracing a train step costs seconds, and trains the same. One
    # step of one layer: an eager step of the 2-layer BART takes seconds.
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(data.dataset().batch(4), verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = model.trainable_weights
    assert any(
        not np.allclose(a, b.numpy())
        for a, b in zip(before, after, strict=True)
    )
