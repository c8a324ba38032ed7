"""Tests of `from_conll`, `align_tags` and `TokenLabels.to_words`."""

import numpy as np
import pytest

import kfinetune as kft
from kfinetune import testing

# Words of the small random BERT's vocabulary; "good-day" is split by
# punctuation into three pieces: good, [UNK] ("-"), day.
CONLL = """\
-DOCSTART- -X- -X- O

i PRP B-NP B-PER
love VBP B-VP O
good-day NN B-NP B-LOC
movie NN I-NP I-LOC

-DOCSTART- -X- -X- O
we PRP B-NP B-PER
hate VBP B-VP O


it PRP B-NP O
"""


def write(tmp_path, text, name="train.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_sentences_tags_and_vocabulary(tmp_path):
    data = kft.data.from_conll(write(tmp_path, CONLL))
    assert data.sentences == (
        ("i", "love", "good-day", "movie"),
        ("we", "hate"),
        ("it",),
    )
    assert data.tags == (
        ("B-PER", "O", "B-LOC", "I-LOC"),
        ("B-PER", "O"),
        ("O",),
    )
    assert data.tag_names == ("O", "B-LOC", "B-PER", "I-LOC")


def test_reads_any_tag_column(tmp_path):
    data = kft.data.from_conll(write(tmp_path, CONLL), tag_column=2)
    assert data.tags[0] == ("B-NP", "B-VP", "B-NP", "I-NP")
    assert data.tag_names == ("B-NP", "B-VP", "I-NP")


def test_given_tag_vocabulary_sets_the_order(tmp_path):
    tags = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    data = kft.data.from_conll(write(tmp_path, CONLL), tags=tags)
    assert data.tag_names == tags


def test_unknown_tag_names_tag_and_line(tmp_path):
    with pytest.raises(ValueError, match=r"line 5: unknown tag 'B-LOC'"):
        kft.data.from_conll(
            write(tmp_path, CONLL), tags=("O", "B-PER", "I-LOC")
        )


def test_too_few_columns_names_file_line_and_content(tmp_path):
    path = write(tmp_path, "i PRP B-PER\nlove\n")
    with pytest.raises(
        ValueError,
        match=r"train.txt, line 2: expected at least 3 .*line='love'",
    ):
        kft.data.from_conll(path, tag_column=2)


def test_column_out_of_range_is_a_line_error(tmp_path):
    path = write(tmp_path, "i PRP B-PER\n")
    with pytest.raises(ValueError, match=r"line 1: expected at least 4"):
        kft.data.from_conll(path, tag_column=3)


def test_empty_file_and_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="holds no tagged sentence"):
        kft.data.from_conll(write(tmp_path, "-DOCSTART- O\n\n"))
    with pytest.raises(ValueError, match="No such file"):
        kft.data.from_conll(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match=r"Received: tag_column='x'"):
        kft.data.from_conll(write(tmp_path, CONLL), tag_column="x")
    with pytest.raises(ValueError, match=r"Received: tags=\('O', 'O'\)"):
        kft.data.from_conll(write(tmp_path, CONLL), tags=("O", "O"))


def test_aligns_first_pieces_and_continuations(tmp_path):
    data = kft.data.from_conll(write(tmp_path, CONLL))
    tokenizer = testing.small_bert_preprocessor()
    aligned = data.align(tokenizer, sequence_length=10)
    o, b_loc, b_per, i_loc = range(4)
    # [CLS] i love good - day movie [SEP] pad pad
    np.testing.assert_array_equal(
        aligned.labels[0], [o, b_per, o, b_loc, i_loc, i_loc, i_loc, o, -1, -1]
    )
    np.testing.assert_array_equal(
        aligned.sample_weight[0], [0, 1, 1, 1, 0, 0, 1, 0, 0, 0]
    )
    np.testing.assert_array_equal(
        aligned.inputs["padding_mask"][0], [1] * 8 + [0] * 2
    )
    assert aligned.inputs["token_ids"][0, 0] == tokenizer.tokenizer.cls_token_id
    assert aligned.inputs["token_ids"][0, 7] == tokenizer.tokenizer.sep_token_id
    assert aligned.word_starts[0] == (1, 2, 3, 6)
    assert aligned.to_words(np.maximum(aligned.labels, 0)) == [
        list(tags) for tags in data.tags
    ]


def test_truncation_drops_whole_words_and_predicts_o(tmp_path):
    data = kft.data.from_conll(write(tmp_path, CONLL))
    # Room for [CLS], i, love and [SEP]: good-day (3 pieces) does not fit,
    # so it and movie are dropped.
    aligned = data.align(testing.small_bert_preprocessor(), sequence_length=6)
    assert aligned.word_starts[0] == (1, 2)
    assert aligned.inputs["padding_mask"][0].tolist() == [1, 1, 1, 1, 0, 0]
    logits = np.zeros((3, 6, 4), "float32")
    logits[:, :, 2] = 1.0  # B-PER everywhere
    assert aligned.to_words(logits)[0] == ["B-PER", "B-PER", "O", "O"]


def test_dataset_rows(tmp_path):
    data = kft.data.from_conll(write(tmp_path, CONLL))
    tokenizer = testing.small_bert_preprocessor()
    x, y, w = next(iter(data.dataset(tokenizer, sequence_length=10)))
    assert x["token_ids"].shape == (10,) and y.shape == (10,)
    assert w.shape == (10,)
    rows = data.dataset(tokenizer, sequence_length=10, sample_weights=False)
    assert len(next(iter(rows))) == 2


def test_align_errors():
    tokenizer = testing.small_bert_preprocessor()
    with pytest.raises(ValueError, match="has 2 words but 1 tags"):
        kft.data.align_tags([["i", "love"]], [["O"]], tokenizer, ("O",))
    with pytest.raises(ValueError, match="unknown tag 'B-X'"):
        kft.data.align_tags([["i"]], [["B-X"]], tokenizer, ("O",))
    with pytest.raises(ValueError, match="Received: sequence_length=1"):
        kft.data.align_tags([["i"]], [["O"]], tokenizer, ("O",), 1)


def test_to_words_checks_the_shape(tmp_path):
    data = kft.data.from_conll(write(tmp_path, CONLL))
    aligned = data.align(testing.small_bert_preprocessor(), sequence_length=10)
    with pytest.raises(ValueError, match=r"predictions.shape=\(3, 9\)"):
        aligned.to_words(np.zeros((3, 9), "int32"))


def test_a_word_without_pieces_gets_the_unknown_token():
    tokenizer = testing.small_bert_preprocessor()
    aligned = kft.data.align_tags(
        [["i", "\u200b", "love"]],
        [["B-PER", "B-LOC", "O"]],
        tokenizer,
        ("O", "B-LOC", "B-PER"),
        sequence_length=6,
    )
    unknown = tokenizer.tokenizer.token_to_id("[UNK]")
    assert aligned.inputs["token_ids"][0, 2] == unknown
    assert aligned.word_starts == ((1, 2, 3),)
    assert aligned.labels[0].tolist() == [0, 2, 1, 0, 0, -1]
