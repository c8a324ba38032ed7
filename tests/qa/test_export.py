"""`export_question_answerer`: raw questions and contexts in, the answers
of `prepare_features`, `predict` and `postprocess` out."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import data
from kfinetune import export
from kfinetune import qa
from kfinetune import testing
from kfinetune.export import question_answerer
from kfinetune.qa import features as qa_features

SEQUENCE_LENGTH = 32
ARGUMENTS = {"document_stride": 6, "max_question_length": 8}
# Punctuation and pieces of "Zürich" and "Straße" ("strasse" once
# lower-cased): answers inside words and around punctuation. No larger than
# `testing.VOCABULARY`, so that `testing.small_bert_backbone` embeds it.
VOCABULARY = (
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *"the a was is it in of to and good fun day night movie love".split(),
    *"where what german speaking denver paris france people game".split(),
    *"played she moved roof z ##ü ##rich str ##ass ##e".split(),
    *". , - ' ( ) ! ?".split(),
)
# The pointer model's start and end logits by token: answers it must find
# whatever the random model says, a weak one and the no-answer score.
STRONG, WEAK, NULL = 100.0, 25.0, 50.0
STARTS = {"german": STRONG, "denver": STRONG, "paris": STRONG, "z": STRONG}
STARTS |= {"str": STRONG, "love": WEAK, "[CLS]": NULL}
ENDS = {"german": STRONG, "denver": STRONG, "paris": STRONG, "##rich": STRONG}
ENDS |= {"##e": STRONG, "love": WEAK, "[CLS]": NULL}
LONG = " ".join(["the movie was good and the night was fun."] * 6)
# (question, context, the answer the pointers force or None).
EXAMPLES = [
    ("who are they?", "Most of its people are German-speaking.", "German"),
    (
        "where was the game?",
        "The game was played in Denver. It rained.",
        "Denver",
    ),
    ("where to?", "She moved to Paris, France, in 1990.", "Paris"),
    ("what roof?", "The 2,000-year-old Café Zürich's roof", "Zürich"),
    # Many windows; the answer is in the middle ones only.
    ("where?", f"{LONG} (Straße) {LONG}", "Straße"),
    # Without a pointer: the random model's answer, or no answer.
    ("was it fun?", LONG, None),
    ("what was it?", "a good day! it was fun, the night", None),
    # A question longer than `max_question_length` pieces.
    (" ".join(["what was good?"] * 4), "the movie-day was good", None),
    # The weak pointer: answered only thanks to the threshold.
    ("what?", "i love it", "love"),
    ("what?", "", ""),
    ("what?", " \n\u3000", ""),
]


@pytest.fixture(scope="module")
def tokenizer():
    return keras_hub.models.BertTokenizer(
        vocabulary=list(VOCABULARY), lowercase=True
    )


@pytest.fixture(scope="module")
def model():
    """A random BERT question answerer plus fixed logits by token."""
    answerer = qa.question_answerer(
        testing.small_bert_backbone(), SEQUENCE_LENGTH, dropout=0.0
    )
    inputs = {
        name: keras.Input((SEQUENCE_LENGTH,), dtype="int32", name=name)
        for name in ("token_ids", "segment_ids", "padding_mask")
    }
    pointer = keras.layers.Embedding(len(testing.VOCABULARY), 2)
    pointed = pointer(inputs["token_ids"])
    table = np.zeros((len(testing.VOCABULARY), 2), "float32")
    for column, logits in enumerate((STARTS, ENDS)):
        for token, logit in logits.items():
            table[VOCABULARY.index(token), column] = logit
    pointer.set_weights([table])
    outputs = answerer(inputs)
    return keras.Model(
        inputs,
        {
            "start": keras.layers.Add(name="start")(
                [outputs["start"], pointed[..., 0]]
            ),
            "end": keras.layers.Add(name="end")(
                [outputs["end"], pointed[..., 1]]
            ),
        },
    )


@pytest.fixture(scope="module")
def python_pipeline(tokenizer, model):
    examples = [
        data.QAExample(str(i), question, context, (), (), True)
        for i, (question, context, _) in enumerate(EXAMPLES)
    ]
    features = qa.prepare_features(
        examples, tokenizer, SEQUENCE_LENGTH, **ARGUMENTS
    )
    return features, testing.predict(model, features.inputs())


def best_scores(features, logits, max_answer_length=30):
    """Each example's best span score, the long way."""
    best = np.full(len(features.examples), -np.inf)
    for row, index in enumerate(features.example_index):
        context = np.flatnonzero(features.offsets[row, :, 0] >= 0)
        for i in context:
            for j in context[
                (context >= i) & (context < i + max_answer_length)
            ]:
                score = float(logits["start"][row, i]) + logits["end"][row, j]
                best[index] = max(best[index], score)
    return best


@pytest.mark.parametrize(
    "no_answer",
    [{}, {"allow_no_answer": True, "null_score_threshold": 75.0}],
    ids=["best-span", "no-answer"],
)
def test_exported_answers_are_the_python_pipelines(
    no_answer, tokenizer, model, python_pipeline, tmp_path
):
    features, logits = python_pipeline
    assert np.bincount(features.example_index)[4] > 3  # several windows
    expected = qa.postprocess(
        features, logits["start"], logits["end"], **no_answer
    )
    # keras-hub builds a tokenizer on its first call, and
    # `keras.export.ExportArchive` refuses an unbuilt layer: the exporter
    # builds a tokenizer just loaded (as `python -m kfinetune export` loads
    # it), here a twin of the one `prepare_features` called.
    fresh = keras_hub.models.BertTokenizer(
        vocabulary=list(VOCABULARY), lowercase=True
    )
    assert not fresh.built
    export.export_question_answerer(
        model,
        fresh,
        tmp_path / "qa",
        **ARGUMENTS,
        **no_answer,
        verbose=False,
    )
    # Keep the loaded object: its variables die with it.
    reader = export.load_text_classifier(tmp_path / "qa")
    questions, contexts, forced = zip(*EXAMPLES, strict=True)
    served = reader.signatures["serving_default"](
        questions=tf.constant(questions), contexts=tf.constant(contexts)
    )
    answers = [a.decode() for a in served["answers"].numpy()]
    assert answers == [expected[str(i)] for i in range(len(EXAMPLES))]
    # The answers are the contexts' characters from start_char to end_char.
    for answer, context, start, end in zip(
        answers,
        contexts,
        served["start_char"].numpy(),
        served["end_char"].numpy(),
        strict=True,
    ):
        if start < 0:
            assert answer == "" and end == -1
        else:
            assert answer == context[start:end]
    np.testing.assert_allclose(
        served["score"].numpy(), best_scores(features, logits), rtol=1e-6
    )
    assert [
        a for a, g in zip(answers, forced, strict=True) if g is not None
    ] == [g for g in forced if g is not None]
    if no_answer:
        # The threshold answers the weak pointer; without it, no answer.
        assert answers[5] == answers[6] == answers[7] == ""
        without = qa.postprocess(
            features, logits["start"], logits["end"], allow_no_answer=True
        )
        assert without["8"] == ""
    else:
        assert all(answers[:9])


CONTEXTS = [
    "Zürich's 2,000-year-old naïve café, (really).\u00a0STRASSE Straße",
    "ﬁ ﬁne İstanbul ΣΑΣ 🙂-fun-🙂 \x07 a\u200db good\tday\nnight\u3000fun",
    "x" * 120 + " good. #$x",
    "",
]


def test_piece_spans_in_the_graph_are_prepare_features(tokenizer):
    # Folded characters longer than one, unknown pieces between known
    # ones, characters the tokenizer drops, a word over its 100 bytes.
    examples = [
        data.QAExample(str(i), "what", context, (), (), True)
        for i, context in enumerate(CONTEXTS)
    ]
    features = qa.prepare_features(examples, tokenizer, 128)
    assert features.example_index.tolist() == [0, 1, 2, 3]
    texts = tf.constant([t or "" for t in qa_features.piece_texts(tokenizer)])
    pieces = tf.function(question_answerer._qa_pieces, autograph=False)
    _, ids, starts, ends = pieces(
        tokenizer, tf.constant(["what"] * 4), tf.constant(CONTEXTS), texts, True
    )
    for row in range(len(CONTEXTS)):
        context = features.offsets[row, :, 0] >= 0
        assert ids[row].numpy().tolist() == (
            features.token_ids[row][context].tolist()
        )
        spans = np.stack([starts[row], ends[row]], axis=-1)
        np.testing.assert_array_equal(spans, features.offsets[row][context])
    assert len(ids[0]) > 20


def test_export_question_answerer_checks_its_arguments(
    tokenizer, model, tmp_path
):
    def refused(message, model=model, tokenizer=tokenizer, **kwargs):
        with pytest.raises(ValueError, match=message):
            export.export_question_answerer(
                model, tokenizer, tmp_path / "qa", **{**ARGUMENTS, **kwargs}
            )

    refused("Received: tokenizer=None", tokenizer=None)
    classifier = testing.small_bert_classifier()
    refused("must take a dict of `token_ids`", model=classifier)
    any_length = qa.question_answerer(testing.small_bert_backbone())
    refused("Received: sequence_length=None", model=any_length)
    refused("Received: sequence_length=3", model=any_length, sequence_length=3)
    refused(
        r"input length \(32\). Received: sequence_length=64", sequence_length=64
    )
    refused("Received: document_stride=0", document_stride=0)
    refused("Received: max_question_length=1.5", max_question_length=1.5)
    refused(
        "no room for the context.*max_question_length=29, sequence_length=32",
        max_question_length=29,
    )
    refused("Received: max_answer_length=0", max_answer_length=0)
    refused("Received: allow_no_answer=1", allow_no_answer=1)
    refused(
        "null_score_threshold=1.0 with allow_no_answer=False",
        null_score_threshold=1.0,
    )
    refused(
        "finite number. Received: null_score_threshold='high'",
        allow_no_answer=True,
        null_score_threshold="high",
    )
    refused(
        "Received: null_score_threshold=inf",
        allow_no_answer=True,
        null_score_threshold=float("inf"),
    )
    assert not any(tmp_path.iterdir())
