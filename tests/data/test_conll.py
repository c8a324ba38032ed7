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
    with pytest.raises(FileNotFoundError, match="No such file"):
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


def test_long_sentences_become_overlapping_windows_of_whole_words(tmp_path):
    data = kft.data.from_conll(write(tmp_path, CONLL))
    # Rows of 6 hold 4 pieces between [CLS] and [SEP]: "i love good-day
    # movie" (1 + 1 + 3 + 1 pieces) needs three windows; nothing is dropped.
    aligned = data.align(testing.small_bert_preprocessor(), sequence_length=6)
    assert aligned.sentence_index == (0, 0, 0, 1, 2)
    assert aligned.first_word == (0, 1, 2, 0, 0)
    assert aligned.word_starts[:3] == ((1, 2), (1, 2), (1, 4))
    assert aligned.inputs["padding_mask"][0].tolist() == [1, 1, 1, 1, 0, 0]
    # Every window carries its words' labels: the gold tags come back.
    assert aligned.to_words(np.maximum(aligned.labels, 0)) == [
        list(tags) for tags in data.tags
    ]
    # Each word is read from the window where it has the most context on
    # its tighter side: "i" and "love" from window 0, "good-day" from
    # window 1 (the first of two ties), "movie" from window 2.
    rows = np.zeros((5, 6), "int32")
    rows[0], rows[1], rows[2] = 2, 1, 3  # B-PER, B-LOC, I-LOC
    assert aligned.to_words(rows) == [
        ["B-PER", "B-PER", "B-LOC", "I-LOC"],
        ["O", "O"],
        ["O"],
    ]
    # Without overlap the windows only touch.
    touching = data.align(
        testing.small_bert_preprocessor(), sequence_length=6, overlap=0
    )
    assert touching.first_word == (0, 2, 0, 0)


def test_a_word_longer_than_a_row_keeps_its_first_pieces():
    tokenizer = testing.small_bert_preprocessor()
    aligned = kft.data.align_tags(
        [["i", "good-day"]],
        [["B-PER", "B-LOC"]],
        tokenizer,
        ("O", "B-LOC", "B-PER", "I-LOC"),
        sequence_length=4,
    )
    # Room for 2 pieces: "i", then "good-day" cut to "good -".
    assert aligned.sentence_index == (0, 0)
    assert aligned.labels[1].tolist() == [0, 1, 3, 0]
    assert aligned.to_words(np.maximum(aligned.labels, 0)) == [
        ["B-PER", "B-LOC"]
    ]


def test_aligning_without_tags_is_for_prediction(tmp_path):
    data = kft.data.from_conll(write(tmp_path, CONLL))
    tokenizer = testing.small_bert_preprocessor()
    tagged = data.align(tokenizer, sequence_length=6)
    untagged = kft.data.align_tags(
        data.sentences, None, tokenizer, data.tag_names, sequence_length=6
    )
    for name, values in tagged.inputs.items():
        np.testing.assert_array_equal(untagged.inputs[name], values)
    assert untagged.word_starts == tagged.word_starts
    assert (untagged.labels == -1).all()
    assert (untagged.sample_weight == 0).all()
    assert not untagged.has_tags
    predictions = np.maximum(tagged.labels, 0)
    assert untagged.to_words(predictions) == tagged.to_words(predictions)
    with pytest.raises(ValueError, match=r"without tags.*Received: tags=None"):
        untagged.dataset()


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
    with pytest.raises(ValueError, match="Received: sequence_length=2"):
        kft.data.align_tags([["i"]], [["O"]], tokenizer, ("O",), 2)
    with pytest.raises(ValueError, match="Received: overlap=-1"):
        kft.data.align_tags([["i"]], [["O"]], tokenizer, ("O",), overlap=-1)


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
