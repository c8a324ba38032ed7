import json
import pathlib
import string

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import evaluation
from kfinetune import peft
from kfinetune import testing

# Scores of sacrebleu 2.6.0 and rouge-score 0.1.2 on perturbed tweets and
# edge cases, written by `fixtures/generation_metrics/make_fixtures.py`.
FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "generation_metrics"
CORPORA = json.loads((FIXTURE / "scores.json").read_text())["corpora"]
# kfinetune repeats the libraries' arithmetic operation for operation: the
# measured difference is 0; the bound only allows for another libm.
TOLERANCE = 1e-9


def _corpus(name):
    sentences = CORPORA[name]["sentences"]
    return (
        [s["hypothesis"] for s in sentences],
        [s["references"] for s in sentences],
    )


def _assert_bleu(score, expected):
    assert score.score == pytest.approx(expected["score"], abs=TOLERANCE)
    np.testing.assert_allclose(
        score.precisions, expected["precisions"], rtol=0, atol=TOLERANCE
    )
    assert score.brevity_penalty == pytest.approx(
        expected["brevity_penalty"], abs=TOLERANCE
    )
    assert score.hypothesis_length == expected["hypothesis_length"]
    assert score.reference_length == expected["reference_length"]


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_sentence_scores_equal_sacrebleu_and_rouge_score(name):
    for s in CORPORA[name]["sentences"]:
        hypothesis, references = s["hypothesis"], s["references"]
        _assert_bleu(
            evaluation.sentence_bleu(hypothesis, references), s["bleu"]
        )
        assert evaluation.sentence_chrf(hypothesis, references) == (
            pytest.approx(s["chrf"], abs=TOLERANCE)
        )
        chrf_plus_plus = evaluation.sentence_chrf(
            hypothesis, references, word_order=2
        )
        assert chrf_plus_plus == pytest.approx(
            s["chrf_plus_plus"], abs=TOLERANCE
        )
        assert evaluation.sentence_rouge_l(hypothesis, references) == (
            pytest.approx(s["rouge_l"], abs=TOLERANCE)
        )


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_corpus_scores_equal_sacrebleu_and_rouge_score(name):
    hypotheses, references = _corpus(name)
    expected = CORPORA[name]
    _assert_bleu(
        evaluation.corpus_bleu(hypotheses, references), expected["bleu"]
    )
    assert evaluation.corpus_chrf(hypotheses, references) == pytest.approx(
        expected["chrf"], abs=TOLERANCE
    )
    assert evaluation.corpus_chrf(
        hypotheses, references, word_order=2
    ) == pytest.approx(expected["chrf_plus_plus"], abs=TOLERANCE)
    assert evaluation.corpus_rouge_l(hypotheses, references) == (
        pytest.approx(expected["rouge_l"], abs=TOLERANCE)
    )
    report = evaluation.generation_report(hypotheses, references)
    assert report.as_dict() == {
        "bleu": evaluation.corpus_bleu(hypotheses, references).score,
        "chrf": evaluation.corpus_chrf(hypotheses, references),
        "rouge_l": evaluation.corpus_rouge_l(hypotheses, references),
    }
    assert report.hypotheses == tuple(hypotheses)


def test_the_fixture_covers_what_it_should():
    sentences = [s for c in CORPORA.values() for s in c["sentences"]]
    assert len(CORPORA["tweets"]["sentences"]) == 40
    assert any(len(s["references"]) == 3 for s in sentences)
    assert any(s["hypothesis"] == "" for s in sentences)
    assert any("" in s["references"] for s in sentences)
    assert any(not s["hypothesis"].isascii() for s in sentences)
    # Neither all perfect nor all zero.
    scores = {round(s["bleu"]["score"]) for s in sentences}
    assert 0 in scores and 100 in scores and len(scores) > 20


def test_one_reference_string_is_a_list_of_one():
    hypotheses, references = _corpus("tweets_one_reference")
    strings = [r[0] for r in references]
    assert evaluation.corpus_bleu(hypotheses, strings) == (
        evaluation.corpus_bleu(hypotheses, references)
    )
    assert evaluation.corpus_chrf(hypotheses, strings) == (
        evaluation.corpus_chrf(hypotheses, references)
    )
    assert evaluation.sentence_rouge_l(hypotheses[1], strings[1]) == (
        evaluation.sentence_rouge_l(hypotheses[1], references[1])
    )


def test_bleu_score_prints_like_sacrebleu():
    bleu = evaluation.corpus_bleu(
        ["the cat sat on the mat"], ["the cat sat on a mat"]
    )
    assert str(bleu) == (
        "BLEU = 53.73 83.3/60.0/50.0/33.3 (BP = 1.000 ratio = 1.000 "
        "hyp_len = 6 ref_len = 6)"
    )
    assert float(bleu) == bleu.score
    assert "chrF2 = " in str(evaluation.generation_report(["a"], ["a"]))


def test_tokenizers():
    assert evaluation.tokenize_13a("AT&amp;T: 1,000.5 - 3-4 cars.") == [
        "AT",
        "&",
        "T",
        ":",
        "1,000.5",
        "-",
        "3",
        "-",
        "4",
        "cars",
        ".",
    ]
    assert evaluation.tokenize_rouge("Don't PANIC, café 42!") == [
        "don",
        "t",
        "panic",
        "caf",
        "42",
    ]


@pytest.mark.parametrize(
    "function",
    [
        evaluation.corpus_bleu,
        evaluation.corpus_chrf,
        evaluation.corpus_rouge_l,
        evaluation.generation_report,
    ],
)
def test_corpus_errors(function):
    with pytest.raises(ValueError, match=r"len\(hypotheses\)=2, len\(ref"):
        function(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="Received: hypotheses=\\[\\]"):
        function([], [])
    with pytest.raises(ValueError, match="sentence_.*hypotheses='a b'"):
        function("a b", ["a b"])
    with pytest.raises(ValueError, match="Received: hypotheses\\[1\\]=None"):
        function(["a", None], ["a", "b"])
    with pytest.raises(ValueError, match="Received: references\\[1\\]=\\[\\]"):
        function(["a", "b"], ["a", []])
    with pytest.raises(ValueError, match="references\\[0\\]\\[1\\]=3"):
        function(["a"], [["a", 3]])


@pytest.mark.parametrize(
    "function",
    [
        evaluation.sentence_bleu,
        evaluation.sentence_chrf,
        evaluation.sentence_rouge_l,
    ],
)
def test_sentence_errors(function):
    with pytest.raises(ValueError, match="Received: hypothesis=\\['a'\\]"):
        function(["a"], ["a"])
    with pytest.raises(ValueError, match="Received: references=None"):
        function("a", None)
    with pytest.raises(ValueError, match="Received: references\\[0\\]=b'a'"):
        function("a", [b"a"])


def test_chrf_argument_errors():
    with pytest.raises(ValueError, match="Received: char_order=0"):
        evaluation.corpus_chrf(["a"], ["a"], char_order=0)
    with pytest.raises(ValueError, match="Received: word_order=-1"):
        evaluation.sentence_chrf("a", "a", word_order=-1)
    with pytest.raises(ValueError, match="Received: beta=0"):
        evaluation.corpus_chrf(["a"], ["a"], beta=0)
    with pytest.raises(ValueError, match="Received: text=None"):
        evaluation.tokenize_13a(None)


# --- Perplexity and token accuracy ---


def _numpy_report(logits, y, sample_weight):
    """Perplexity and token accuracy computed directly, in float64."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
    weights = np.asarray(sample_weight, np.float64)
    mean = (nll * weights).sum() / weights.sum()
    correct = (logits.argmax(-1) == y) * weights
    return np.exp(mean), mean, correct.sum() / weights.sum(), weights.sum()


def _assert_report_close(report, expected):
    perplexity, cross_entropy, accuracy, tokens = expected
    np.testing.assert_allclose(report.perplexity, perplexity, rtol=1e-5)
    np.testing.assert_allclose(report.cross_entropy, cross_entropy, rtol=1e-5)
    np.testing.assert_allclose(report.token_accuracy, accuracy, atol=1e-7)
    assert report.tokens == tokens


def _embedding_lm():
    """A "language model" whose logits are an embedding of the input."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((None,)), keras.layers.Embedding(7, 7)]
    )


def test_perplexity_by_hand_with_weights():
    model = _embedding_lm()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, (5, 6))
    y = rng.integers(0, 7, (5, 6))
    weight = (rng.random((5, 6)) > 0.3).astype("float32")
    weight[:, 0] = 0.0  # Prompt tokens.
    weight[1, -1] = 2.5  # Weights need not be 0 or 1.
    logits = keras.ops.convert_to_numpy(model(x))
    expected = _numpy_report(logits, y, weight)
    batches = tf.data.Dataset.from_tensor_slices((x, y, weight)).batch(2)
    report = evaluation.evaluate_language_model(model, batches)
    _assert_report_close(report, expected)
    assert report.as_dict()["tokens"] == report.tokens
    assert "perplexity" in str(report)
    # Unbatched, and `(x, y)`: every token counts once.
    unweighted = tf.data.Dataset.from_tensor_slices((x, y))
    report = evaluation.evaluate_language_model(model, unweighted, batch_size=3)
    _assert_report_close(report, _numpy_report(logits, y, np.ones((5, 6))))


def test_perplexity_errors():
    model = _embedding_lm()
    with pytest.raises(ValueError, match="Received: dataset=\\["):
        evaluation.evaluate_language_model(model, [1, 2])
    texts = tf.data.Dataset.from_tensor_slices(["a b", "c"])
    with pytest.raises(ValueError, match="Received: element_spec="):
        evaluation.evaluate_language_model(model, texts)
    zeros = tf.data.Dataset.from_tensor_slices(
        (np.ones((2, 3)), np.ones((2, 3)), np.zeros((2, 3)))
    ).batch(2)
    with pytest.raises(ValueError, match="Received: tokens=0.0"):
        evaluation.evaluate_language_model(model, zeros)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        evaluation.evaluate_language_model(model, zeros, batch_size=0)


def test_perplexity_of_a_seq2seq_lm_equals_numpy():
    model = testing.small_seq2seq_lm(num_layers=1)
    x = testing.small_seq2seq_inputs(batch_size=3)
    decoder = x["decoder_token_ids"]
    y = np.concatenate([decoder[:, 1:], np.zeros_like(decoder[:, :1])], 1)
    weight = np.concatenate(
        [x["decoder_padding_mask"][:, 1:], np.zeros_like(decoder[:, :1])], 1
    ).astype("float32")
    logits = keras.ops.convert_to_numpy(model(x))
    # One batch: one trace (uneven batches are tested above).
    batches = tf.data.Dataset.from_tensor_slices((x, y, weight)).batch(3)
    report = evaluation.evaluate_language_model(model, batches)
    _assert_report_close(report, _numpy_report(logits, y, weight))


# A GPT-2 with a real (tiny) byte-pair tokenizer over lowercase letters, so
# that it generates text and reads raw text like a model from a preset.
_LETTERS = [*string.ascii_lowercase, "Ġ", "Ġt"]
_VOCABULARY = {"<|endoftext|>": 0, **{t: i + 1 for i, t in enumerate(_LETTERS)}}
_TEXTS = ["the cat sat", "a dog sat down", "cars drive", "to the"]


@pytest.fixture(scope="module")
def gpt2():
    tokenizer = keras_hub.models.GPT2Tokenizer(
        vocabulary=_VOCABULARY, merges=["Ġ t"]
    )
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer, sequence_length=10
    )
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(_VOCABULARY),
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
    )
    model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=preprocessor)
    model.compile(sampler="greedy")
    return model


def test_perplexity_of_a_causal_lm_equals_numpy_and_keras_hub(gpt2):
    # Raw text goes through the model's preprocessor: padding weighs 0.
    texts = tf.data.Dataset.from_tensor_slices(_TEXTS).batch(2)
    report = evaluation.evaluate_language_model(gpt2, texts)
    x, y, weight = (
        keras.tree.map_structure(keras.ops.convert_to_numpy, part)
        for part in gpt2.preprocessor(_TEXTS)
    )
    logits = keras.ops.convert_to_numpy(gpt2(x))
    _assert_report_close(report, _numpy_report(logits, y, weight))
    assert 0 < report.tokens < y.size
    perplexity = keras_hub.metrics.Perplexity(from_logits=True)
    perplexity.update_state(y, logits, weight)
    np.testing.assert_allclose(report.perplexity, perplexity.result(), 1e-5)


def test_evaluate_generator(gpt2):
    prompts = ["the cat", "a dog", "cars", "hi"]
    references = [
        "the cat sat",
        ["a dog sat", "a dog sat down"],
        "cars go",
        "hi there",
    ]
    report = evaluation.evaluate_generator(
        gpt2,
        prompts,
        references,
        max_length=12,
        batch_size=2,
        stop_token_ids=None,
    )
    generated = [
        text
        for batch in (prompts[:2], prompts[2:])
        for text in gpt2.generate(
            batch, max_length=12, stop_token_ids=None, strip_prompt=True
        )
    ]
    assert list(report.hypotheses) == generated
    # Only what the model added is scored, not the prompt.
    assert all(
        h and not h.startswith(p)
        for h, p in zip(generated, prompts, strict=True)
    )
    assert report == evaluation.generation_report(generated, references)


def test_evaluate_generator_errors(gpt2):
    with pytest.raises(ValueError, match="Received: model=Sequential"):
        evaluation.evaluate_generator(_embedding_lm(), ["a"], ["a"])
    detached = keras_hub.models.GPT2CausalLM(gpt2.backbone, preprocessor=None)
    with pytest.raises(ValueError, match="model.preprocessor=None"):
        evaluation.evaluate_generator(detached, ["a"], ["a"])
    with pytest.raises(ValueError, match=r"len\(prompts\)=2, len\(ref"):
        evaluation.evaluate_generator(gpt2, ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="Received: max_length=0"):
        evaluation.evaluate_generator(gpt2, ["a"], ["a"], max_length=0)


def test_evaluate_generator_takes_a_model_returned_by_peft_apply():
    model = peft.apply(testing.small_gpt2_causal_lm(), peft.LoRAConfig())
    # Unwrapped to its keras-hub base, which has no preprocessor here.
    with pytest.raises(ValueError, match="preprocessor=None"):
        evaluation.evaluate_generator(model, ["a"], ["a"])
