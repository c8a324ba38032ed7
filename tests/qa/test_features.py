import re

import numpy as np
import pytest

from kfinetune import data
from kfinetune import presets
from kfinetune import qa
from kfinetune import testing

WORDS = "the movie was good and the night was fun but the day was boring"
QUESTION = "was it good"  # 3 tokens: windows of 16 leave 10 for the context.


def example(answer=None, id="q", context=WORDS):
    if answer is None:
        return data.QAExample(id, QUESTION, context, (), (), True)
    start = context.index(answer)
    return data.QAExample(id, QUESTION, context, (answer,), (start,))


def features(examples, **kwargs):
    tokenizer = testing.small_bert_preprocessor().tokenizer
    kwargs = {"sequence_length": 16, "document_stride": 4, **kwargs}
    return qa.prepare_features(examples, tokenizer, **kwargs)


def targets(f):
    starts, ends = f.start_positions.tolist(), f.end_positions.tolist()
    return list(zip(starts, ends, strict=True))


def test_windows_layout_with_stride():
    f = features([example("day was boring")])
    tokenizer = testing.small_bert_preprocessor().tokenizer
    ids = tokenizer(WORDS.split())
    question = tokenizer(QUESTION).tolist()
    assert f.token_ids.shape == (2, 16)
    assert f.example_index.tolist() == [0, 0]
    for row, first in enumerate([0, 4]):
        expected = [2, *question, 3, *sum(ids[first : first + 10], []), 3]
        assert f.token_ids[row].tolist() == expected
        assert f.segment_ids[row].tolist() == [0] * 5 + [1] * 11
        assert f.padding_mask[row].tolist() == [1] * 16
    # Every context token maps to its word's characters.
    words = [WORDS[a:b] for a, b in f.offsets[1, 5:15]]
    assert words == WORDS.split()[4:14]
    assert (f.offsets[:, :5] == -1).all() and (f.offsets[:, 15] == -1).all()


def test_answer_in_second_window_only():
    # Words 11-13: window 0 holds words 0-9, window 1 words 4-13.
    f = features([example("day was boring")])
    assert targets(f) == [(0, 0), (12, 14)]


def test_answer_at_window_boundary():
    # "fun but" (words 8-9) ends on window 0's last context token.
    assert targets(features([example("fun but")])) == [(13, 14), (9, 10)]
    # "but the" (words 9-10) is cut by window 0's edge.
    assert targets(features([example("but the")])) == [(0, 0), (10, 11)]


def test_unanswerable_targets_cls():
    f = features([example(None), example("movie", id="r")])
    assert targets(f) == [(0, 0), (0, 0), (6, 6), (0, 0)]
    assert f.example_index.tolist() == [0, 0, 1, 1]


def test_short_context_is_padded():
    f = features([example("good", context="the movie was good")])
    assert f.token_ids.shape == (1, 16)
    assert f.padding_mask[0].tolist() == [1] * 10 + [0] * 6
    assert f.segment_ids[0].tolist() == [0] * 5 + [1] * 5 + [0] * 6
    assert targets(f) == [(8, 8)]


def test_answer_before_punctuation_targets_its_own_piece():
    # "good." tokenizes to two pieces ("." is unknown here): "good" alone is
    # the answer, the unknown piece keeps the full stop.
    f = features([example("good", context="the movie was good. fun")])
    assert targets(f) == [(8, 8)]
    assert f.offsets[0, 8].tolist() == [14, 18]
    assert f.offsets[0, 9].tolist() == [18, 19]


def minilm_features(examples):
    tokenizer = presets.text_classifier_preprocessor().tokenizer
    return qa.prepare_features(examples, tokenizer, sequence_length=48)


@pytest.mark.parametrize(
    "context, answer",
    [
        ("Most of its people are German-speaking citizens.", "German"),
        ("Most of its people are German-speaking citizens.", "speaking"),
        ("The game was played in Denver. It rained.", "Denver"),
        ("She moved to Paris, France, in 1990.", "Paris"),
        ("The 2,000-year-old Café Zürich's roof", "Zürich"),
    ],
)
def test_answers_are_exactly_the_gold_span_inside_words(context, answer):
    # The bundled MiniLM's tokenizer: real word pieces and punctuation.
    gold = example(answer, context=context)
    f = minilm_features([gold])
    ((first, last),) = targets(f)
    assert 0 < first <= last
    # The target pieces give back the answer, nothing more ...
    offsets = f.offsets[0]
    assert context[offsets[first, 0] : offsets[last, 1]] == answer
    # ... and a model pointing at them answers exactly the gold text.
    start, end = logits_for(f, {(0, first): (5.0, 0.0), (0, last): (0.0, 5.0)})
    prediction = qa.postprocess(f, start, end)["q"]
    assert prediction == answer
    assert qa.exact_match(prediction, [answer]) == 1.0


def test_piece_offsets_tile_each_word():
    context = "Zürich's 2,000-year-old naïve café, (really)."
    f = minilm_features([example(None, context=context)])
    offsets = f.offsets[0][f.offsets[0, :, 0] >= 0]
    # Every character of every word belongs to exactly one piece, in order.
    words = [m.span() for m in re.finditer(r"\S+", context)]
    covered = []
    for a, b in offsets.tolist():
        assert a <= b
        covered.extend(range(a, b))
    expected = [i for a, b in words for i in range(a, b)]
    assert covered == expected


def test_dataset_feeds_fit_the_answer_spans():
    examples = [example("fun"), example(None, id="r"), example("day was")]
    f = features(examples)
    x, y = next(iter(f.dataset().batch(8)))
    assert x["token_ids"].shape == (6, 16)
    np.testing.assert_array_equal(x["token_ids"], f.token_ids)
    assert y["start"].shape == (6,) and y["end"].shape == (6,)
    # Each window's target span covers the answer's characters in the
    # context; windows without the answer, and the unanswerable question,
    # point at [CLS].
    found = {}
    for row, (start, end) in enumerate(
        zip(y["start"].numpy(), y["end"].numpy(), strict=True)
    ):
        example_index = f.example_index[row]
        if start == end == 0:
            continue
        context = examples[example_index].context
        first, last = f.offsets[row, start][0], f.offsets[row, end][1]
        found.setdefault(example_index, set()).add(context[first:last])
    assert found == {0: {"fun"}, 2: {"day was"}}
    assert f.example_index.tolist() == [0, 0, 1, 1, 2, 2]
    # "fun" (word 8) is in both windows; "day was" (words 11-12) in the
    # second only.
    assert targets(f)[0] != (0, 0) and targets(f)[1] != (0, 0)
    assert targets(f)[4] == (0, 0) and targets(f)[5] != (0, 0)


def test_errors():
    with pytest.raises(ValueError, match="Received: examples=\\(\\)"):
        features([])
    with pytest.raises(ValueError, match="Received: document_stride=0"):
        features([example("fun")], document_stride=0)
    with pytest.raises(ValueError, match="'q' leaves no room"):
        features([example("fun")], sequence_length=6)
    with pytest.raises(ValueError, match="Received: sequence_length=3"):
        features([example("fun")], sequence_length=3)


def logits_for(f, spans):
    """Logits of -5 everywhere and the given (row, position) values."""
    start = np.full(f.token_ids.shape, -5.0)
    end = np.full(f.token_ids.shape, -5.0)
    for (row, position), (s, e) in spans.items():
        start[row, position] = s
        end[row, position] = e
    return start, end


def test_postprocess_picks_best_valid_span():
    f = features([example("fun")])
    start, end = logits_for(
        f,
        {
            (0, 2): (9.0, 9.0),
            (0, 8): (3.0, 0.0),
            (0, 10): (0.0, 3.0),
            (0, 12): (0.0, 4.0),
        },
    )
    # Question tokens (position 2) are ignored; the best span inside the
    # context is words 3..5 ("good and the"): start 8, end 10.
    answers = qa.postprocess(f, start, end, max_answer_length=3)
    assert answers == {"q": "good and the"}


def test_postprocess_rejects_end_before_start():
    f = features([example("fun")])
    start, end = logits_for(
        f, {(0, 10): (6.0, -5.0), (0, 7): (-5.0, 6.0), (0, 11): (-5.0, 2.0)}
    )
    # start 10 / end 7 scores 12 but ends before it starts; the best valid
    # span is 10..11 (6 + 2).
    assert qa.postprocess(f, start, end) == {"q": "the night"}


def test_postprocess_respects_max_answer_length():
    f = features([example("fun")])
    start, end = logits_for(
        f, {(0, 5): (5.0, -5.0), (0, 9): (-5.0, 5.0), (0, 6): (0.0, 0.0)}
    )
    assert qa.postprocess(f, start, end, max_answer_length=5)["q"] == (
        "the movie was good and"
    )
    # Too long at 4 tokens: the best span is now within positions 5..8.
    assert qa.postprocess(f, start, end, max_answer_length=4)["q"] == (
        "the movie"
    )


def test_postprocess_best_over_windows_and_no_answer():
    f = features([example("day was boring")])
    start, end = logits_for(
        f,
        {
            (0, 6): (2.0, 2.0),
            (1, 12): (3.0, 0.0),
            (1, 14): (0.0, 3.0),
            (0, 0): (4.0, 4.0),
            (1, 0): (1.0, 1.0),
        },
    )
    assert qa.postprocess(f, start, end) == {"q": "day was boring"}
    # No-answer score: the lowest [CLS] score over windows, 2 < 6.
    assert qa.postprocess(f, start, end, allow_no_answer=True)["q"] == (
        "day was boring"
    )
    start[1, 0] = end[1, 0] = 4.0
    assert qa.postprocess(f, start, end, allow_no_answer=True)["q"] == ""
    # No answer only when its score beats the best span's by more than
    # the threshold: 8 - 6 = 2.
    for threshold, expected in ((1.9, ""), (2.0, "day was boring")):
        answer = qa.postprocess(
            f,
            start,
            end,
            allow_no_answer=True,
            null_score_threshold=threshold,
        )["q"]
        assert answer == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"null_score_threshold": 1.0},
            r"only `allow_no_answer=True` does. Received: "
            r"null_score_threshold=1.0 with allow_no_answer=False",
        ),
        (
            {"allow_no_answer": True, "null_score_threshold": "high"},
            r"finite number. Received: null_score_threshold='high'",
        ),
        (
            {"allow_no_answer": True, "null_score_threshold": float("nan")},
            r"Received: null_score_threshold=nan",
        ),
    ],
)
def test_bad_null_score_thresholds(kwargs, message):
    f = features([example("fun")])
    with pytest.raises(ValueError, match=message):
        qa.postprocess(f, np.zeros((2, 16)), np.zeros((2, 16)), **kwargs)


def test_postprocess_shape_error():
    f = features([example("fun")])
    with pytest.raises(ValueError, match=r"end_logits.shape=\(2, 15\)"):
        qa.postprocess(f, np.zeros((2, 16)), np.zeros((2, 15)))


def test_whitespace_answer_names_question():
    bad = data.QAExample("w", QUESTION, "the  movie", (" ",), (3,))
    with pytest.raises(ValueError, match="'w' covers no context token"):
        features([bad])
