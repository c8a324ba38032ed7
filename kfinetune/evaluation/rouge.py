"""ROUGE-L as Google's `rouge-score` computes it: the F-measure of the
longest common subsequence of words."""

import re

from kfinetune.evaluation import text_pairs

_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def tokenize_rouge(text):
    """Tokenises text as rouge-score's default tokeniser does (no stemmer).

    Lowercases, turns every run of characters other than `a-z` and `0-9`
    into a space, and splits on whitespace. Letters outside ASCII (`é`,
    `ß`, CJK) are dropped, as in rouge-score.

    Args:
        text: a string.

    Returns:
        The list of tokens.

    Example:

    >>> kfinetune.evaluation.tokenize_rouge("Don't panic, café!")
    ['don', 't', 'panic', 'caf']
    """
    text_pairs.check_text("text", text)
    return _NOT_ALPHANUMERIC.sub(" ", text.lower()).split()


def _lcs_length(a, b):
    """The length of the longest common subsequence of two token lists."""
    if len(b) > len(a):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            if token == other:
                current.append(previous[j] + 1)
            else:
                current.append(max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _f_measure(hypothesis_tokens, reference):
    reference_tokens = tokenize_rouge(reference)
    if not hypothesis_tokens or not reference_tokens:
        return 0.0
    lcs = _lcs_length(reference_tokens, hypothesis_tokens)
    precision = lcs / len(hypothesis_tokens)
    recall = lcs / len(reference_tokens)
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _sentence(hypothesis, references):
    tokens = tokenize_rouge(hypothesis)
    return max(_f_measure(tokens, reference) for reference in references)


def sentence_rouge_l(hypothesis, references):
    """Computes the ROUGE-L F-measure of one sentence, equal to
    `rouge_score.rouge_scorer.RougeScorer(["rougeL"])`.

    Precision and recall are the length of the longest common subsequence
    of words (see `tokenize_rouge`) over the hypothesis and reference
    lengths; the F-measure is their harmonic mean. With several
    references, the best F-measure counts (rouge-score's `score_multi`).
    An empty hypothesis or reference scores 0.

    Args:
        hypothesis: a string.
        references: a reference string, or a list of them.

    Returns:
        The F-measure, a float from 0 to 1 (rouge-score's scale).

    Raises:
        ValueError: `hypothesis` is not a string, or `references` is
            neither a string nor a non-empty list of strings.

    Example:

    >>> kfinetune.evaluation.sentence_rouge_l(
    ...     "the cat sat on the mat", "the cat was on the mat")
    0.8333333333333334
    """
    hypothesis, references = text_pairs.check_sentence(hypothesis, references)
    return _sentence(hypothesis, references)


def corpus_rouge_l(hypotheses, references):
    """Computes the mean ROUGE-L F-measure over a corpus.

    The mean of `sentence_rouge_l` over the examples: what
    rouge-score users report as ROUGE-L when they average its scores
    (rouge-score's `BootstrapAggregator` reports a resampled estimate of
    this mean instead).

    Args:
        hypotheses: a list of strings.
        references: one entry per hypothesis: a reference string, or a
            list of them (see `corpus_bleu`).

    Returns:
        The mean F-measure, a float from 0 to 1.

    Raises:
        ValueError: an empty corpus, different numbers of hypotheses and
            references, or an element that is not a string.

    Example:

    >>> kfinetune.evaluation.corpus_rouge_l(
    ...     ["the cat sat", "a dog"], ["the cat sat", "the dog barked"])
    0.7
    """
    hypotheses, references = text_pairs.check_corpus(hypotheses, references)
    scores = [
        _sentence(hypothesis, example_references)
        for hypothesis, example_references in zip(
            hypotheses, references, strict=True
        )
    ]
    return sum(scores) / len(scores)
