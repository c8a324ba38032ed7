"""chrF and chrF++ as sacrebleu computes them: character n-gram F-score."""

import collections

from kfinetune import checks
from kfinetune.evaluation import text_pairs

# `string.punctuation`: split off the ends of words for word n-grams.
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _words(text):
    """Whitespace-split words, with one punctuation character split off the
    end of a word (or, failing that, off its start), as chrF++ does."""
    words = []
    for word in text.split():
        if len(word) > 1 and word[-1] in _PUNCTUATION:
            words += [word[:-1], word[-1]]
        elif len(word) > 1 and word[0] in _PUNCTUATION:
            words += [word[0], word[1:]]
        else:
            words.append(word)
    return words


def _ngram_counts(text, char_order, word_order):
    """One `Counter` per order: characters 1..char_order (whitespace
    removed), then words 1..word_order."""
    characters = "".join(text.split())
    counts = [
        collections.Counter(
            characters[i : i + n] for i in range(len(characters) - n + 1)
        )
        for n in range(1, char_order + 1)
    ]
    words = _words(text) if word_order else []
    counts += [
        collections.Counter(
            " ".join(words[i : i + n]) for i in range(len(words) - n + 1)
        )
        for n in range(1, word_order + 1)
    ]
    return counts


def _match_statistics(hypothesis_counts, reference_counts):
    """`[hypothesis n-grams, reference n-grams, matches]` for each order."""
    statistics = []
    for hypothesis, reference in zip(
        hypothesis_counts, reference_counts, strict=True
    ):
        matches = sum(
            min(count, reference[ngram])
            for ngram, count in hypothesis.items()
            if ngram in reference
        )
        # sacrebleu counts no hypothesis n-gram of an order the reference
        # has none of (a reference shorter than the order).
        total = sum(hypothesis.values()) if reference else 0
        statistics += [total, sum(reference.values()), matches]
    return statistics


def _f_score(statistics, beta):
    """chrF (0-100) from summed statistics, as sacrebleu's default
    (`eps_smoothing=False`) computes it: precision and recall averaged
    over the orders both sides have n-grams of, then F-beta."""
    factor = beta**2
    precision, recall = 0.0, 0.0
    orders = 0
    for i in range(0, len(statistics), 3):
        hypothesis, reference, matches = statistics[i : i + 3]
        if hypothesis > 0 and reference > 0:
            precision += matches / hypothesis
            recall += matches / reference
            orders += 1
    if orders:
        precision /= orders
        recall /= orders
    if precision + recall:
        score = (1 + factor) * precision * recall
        score /= (factor * precision) + recall
        return 100 * score
    return 0.0


def _statistics(hypothesis, references, char_order, word_order, beta):
    """The statistics of the reference that gives the best F-score (the
    first one on a tie)."""
    hypothesis_counts = _ngram_counts(hypothesis, char_order, word_order)
    best, best_score = None, -1.0
    for reference in references:
        statistics = _match_statistics(
            hypothesis_counts, _ngram_counts(reference, char_order, word_order)
        )
        score = _f_score(statistics, beta)
        if score > best_score:
            best, best_score = statistics, score
    return best


def _check_orders(char_order, word_order, beta):
    checks.positive_integer("char_order", char_order)
    checks.non_negative_integer("word_order", word_order)
    checks.positive_number("beta", beta)


def corpus_chrf(hypotheses, references, char_order=6, word_order=0, beta=2):
    """Computes corpus-level chrF, equal to sacrebleu's `corpus_chrf`.

    sacrebleu 2.x's default chrF (chrF2; signature
    `nrefs:N|case:mixed|eff:yes|nc:6|nw:0|space:no`): character n-grams of
    orders 1 to 6, whitespace removed, case kept; counts are summed over
    the corpus, precision and recall are averaged over the orders, and
    combined into an F-score that weights recall `beta` times as much as
    precision. With `word_order=2` it is chrF++, which adds word unigrams
    and bigrams. The score is on sacrebleu's 0-100 scale; with several
    references, each example counts the one that gives it the best
    F-score.

    Args:
        hypotheses: a list of strings.
        references: one entry per hypothesis: a reference string, or a
            list of them (see `corpus_bleu`).
        char_order: the longest character n-gram. Defaults to `6`.
        word_order: the longest word n-gram; `2` gives chrF++. Defaults to
            `0`.
        beta: how many times recall weighs as much as precision. Defaults
            to `2`.

    Returns:
        The chrF score, a float from 0 to 100.

    Raises:
        ValueError: an empty corpus, different numbers of hypotheses and
            references, an element that is not a string, or an order or
            `beta` that is not positive.

    Example:

    >>> chrf = kfinetune.evaluation.corpus_chrf(
    ...     ["the cat sat on the mat"], [["the cat sat on a mat"]])
    >>> round(chrf, 2)
    72.08
    """
    _check_orders(char_order, word_order, beta)
    hypotheses, references = text_pairs.check_corpus(hypotheses, references)
    total = [0] * (3 * (char_order + word_order))
    for hypothesis, example_references in zip(
        hypotheses, references, strict=True
    ):
        statistics = _statistics(
            hypothesis, example_references, char_order, word_order, beta
        )
        total = [a + b for a, b in zip(total, statistics, strict=True)]
    return _f_score(total, beta)


def sentence_chrf(hypothesis, references, char_order=6, word_order=0, beta=2):
    """Computes the chrF of one sentence, equal to sacrebleu's
    `sentence_chrf`.

    Args:
        hypothesis: a string.
        references: a reference string, or a list of them.
        char_order: the longest character n-gram. Defaults to `6`.
        word_order: the longest word n-gram; `2` gives chrF++. Defaults to
            `0`.
        beta: how many times recall weighs as much as precision. Defaults
            to `2`.

    Returns:
        The chrF score, a float from 0 to 100.

    Raises:
        ValueError: `hypothesis` is not a string, `references` is neither a
            string nor a non-empty list of strings, or an order or `beta`
            is not positive.

    Example:

    >>> kfinetune.evaluation.sentence_chrf("the cat", ["the cat"])
    100.0
    """
    _check_orders(char_order, word_order, beta)
    hypothesis, references = text_pairs.check_sentence(hypothesis, references)
    return _f_score(
        _statistics(hypothesis, references, char_order, word_order, beta),
        beta,
    )
