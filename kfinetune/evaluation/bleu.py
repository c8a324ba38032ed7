"""BLEU as sacrebleu computes it: the 13a tokeniser, 4-grams, exponential
smoothing and the brevity penalty."""

import collections
import dataclasses
import math
import re

from kfinetune.evaluation import text_pairs

MAX_ORDER = 4

# mteval-v13a's tokenisation, as sacrebleu's `Tokenizer13a` and
# `TokenizerRegexp` apply it (sacrebleu 2.x, `tokenize="13a"`).
_13A_RULES = (
    # Symbols and punctuation other than `.`, `,`, `'` and `-`.
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    # `.` and `,` unless preceded by a digit.
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    # `.` and `,` unless followed by a digit.
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    # `-` after a digit.
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)
_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))


def tokenize_13a(text):
    """Tokenises text as sacrebleu's default `13a` tokeniser does.

    mteval-v13a's rules (used by WMT): punctuation and symbols become
    tokens, except `.` and `,` between digits and `-` not after a digit;
    `&quot;`, `&amp;`, `&lt;` and `&gt;` are unescaped; trailing
    whitespace is dropped.

    Args:
        text: a string.

    Returns:
        The list of tokens.

    Example:

    >>> kfinetune.evaluation.tokenize_13a("It costs $3.50, right?")
    ['It', 'costs', '$', '3.50', ',', 'right', '?']
    """
    text_pairs.check_text("text", text)
    line = text.rstrip().replace("<skipped>", "")
    line = line.replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, character in _ENTITIES:
            line = line.replace(entity, character)
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _ngrams(tokens):
    return collections.Counter(
        tuple(tokens[i : i + n])
        for n in range(1, MAX_ORDER + 1)
        for i in range(len(tokens) - n + 1)
    )


def _statistics(hypothesis, references):
    """`[hyp_len, ref_len, *matches, *totals]` of one example."""
    tokens = tokenize_13a(hypothesis)
    reference_ngrams = collections.Counter()
    lengths = []
    for reference in references:
        reference_tokens = tokenize_13a(reference)
        lengths.append(len(reference_tokens))
        # Clipping counts: an n-gram matches at most as often as it occurs
        # in the one reference that has it most often.
        for ngram, count in _ngrams(reference_tokens).items():
            reference_ngrams[ngram] = max(reference_ngrams[ngram], count)
    # The closest reference length; the shorter one on a tie.
    reference_length = min(lengths, key=lambda n: (abs(len(tokens) - n), n))
    matches = [0] * MAX_ORDER
    totals = [0] * MAX_ORDER
    for ngram, count in _ngrams(tokens).items():
        totals[len(ngram) - 1] += count
        matches[len(ngram) - 1] += min(count, reference_ngrams[ngram])
    return [len(tokens), reference_length, *matches, *totals]


@dataclasses.dataclass(frozen=True)
class BLEUScore:
    """A BLEU score and the numbers it is made of, on sacrebleu's 0-100
    scale.

    Build it with `corpus_bleu` or `sentence_bleu`. `float()` gives the
    score; `str()` prints it as sacrebleu does.

    Attributes:
        score: BLEU, from 0 to 100.
        precisions: the (smoothed) n-gram precisions for n = 1 to 4, each
            from 0 to 100.
        brevity_penalty: `exp(1 - reference_length / hypothesis_length)`
            when the hypotheses are shorter than the references, else 1.
        hypothesis_length: the number of hypothesis tokens.
        reference_length: the number of reference tokens (for each example,
            of the reference closest in length to its hypothesis).
    """

    score: float
    precisions: tuple
    brevity_penalty: float
    hypothesis_length: int
    reference_length: int

    def __float__(self):
        return self.score

    def __str__(self):
        precisions = "/".join(f"{p:.1f}" for p in self.precisions)
        ratio = (
            self.hypothesis_length / self.reference_length
            if self.reference_length
            else 0
        )
        return (
            f"BLEU = {self.score:.2f} {precisions} (BP = "
            f"{self.brevity_penalty:.3f} ratio = {ratio:.3f} hyp_len = "
            f"{self.hypothesis_length:d} ref_len = {self.reference_length:d})"
        )


def _score(statistics, effective_order):
    """BLEU from summed statistics, as sacrebleu's `BLEU.compute_bleu` with
    `smooth_method="exp"` computes it (the same operations in the same
    order, so the floats are equal)."""
    hypothesis_length, reference_length = statistics[:2]
    matches = statistics[2 : 2 + MAX_ORDER]
    totals = statistics[2 + MAX_ORDER :]
    brevity_penalty = 1.0
    if hypothesis_length < reference_length:
        brevity_penalty = (
            math.exp(1 - reference_length / hypothesis_length)
            if hypothesis_length > 0
            else 0.0
        )
    precisions = [0.0] * MAX_ORDER

    def result(score):
        return BLEUScore(
            score=score,
            precisions=tuple(precisions),
            brevity_penalty=brevity_penalty,
            hypothesis_length=hypothesis_length,
            reference_length=reference_length,
        )

    if not any(matches):
        return result(0.0)
    smoothing = 1.0
    order = MAX_ORDER
    for n in range(1, MAX_ORDER + 1):
        if totals[n - 1] == 0:
            break
        if effective_order:
            order = n
        if matches[n - 1] == 0:
            # Exponential smoothing (NIST, mteval-v13a): the k-th order
            # with no match gets precision 1 / (2^k * total).
            smoothing *= 2
            precisions[n - 1] = 100.0 / (smoothing * totals[n - 1])
        else:
            precisions[n - 1] = 100.0 * matches[n - 1] / totals[n - 1]
    # An order with no n-gram in the hypothesis (precision 0) makes BLEU 0
    # unless `effective_order` leaves it out; sacrebleu floors log(0).
    logs = [math.log(p) if p else -9999999999 for p in precisions[:order]]
    return result(brevity_penalty * math.exp(sum(logs) / order))


def corpus_bleu(hypotheses, references):
    """Computes corpus-level BLEU, equal to sacrebleu's `corpus_bleu`.

    The default BLEU of sacrebleu 2.x (signature
    `nrefs:N|case:mixed|eff:no|tok:13a|smooth:exp`): text is tokenised
    with `tokenize_13a`, case matters, n-gram counts for n = 1 to 4 are
    summed over the corpus, an n-gram order with no match is smoothed
    exponentially, and a brevity penalty applies when the hypotheses are
    shorter than the references. The score is on sacrebleu's 0-100 scale.

    Args:
        hypotheses: a list of strings, e.g. generated texts.
        references: one entry per hypothesis: a reference string, or a
            list of reference strings (examples may have different numbers
            of references). sacrebleu takes reference *streams* instead
            (`refs[k][i]` is the k-th reference of example i); turn streams
            into this form with `list(zip(*streams))`.

    Returns:
        A `BLEUScore`; `.score` is the BLEU score.

    Raises:
        ValueError: an empty corpus, different numbers of hypotheses and
            references, or an element that is not a string.

    Example:

    >>> bleu = kfinetune.evaluation.corpus_bleu(
    ...     ["the cat sat on the mat"], [["the cat sat on a mat"]])
    >>> round(bleu.score, 2)
    53.73
    """
    hypotheses, references = text_pairs.check_corpus(hypotheses, references)
    total = [0] * (2 + 2 * MAX_ORDER)
    for hypothesis, example_references in zip(
        hypotheses, references, strict=True
    ):
        statistics = _statistics(hypothesis, example_references)
        total = [a + b for a, b in zip(total, statistics, strict=True)]
    return _score(total, effective_order=False)


def sentence_bleu(hypothesis, references):
    """Computes the BLEU of one sentence, equal to sacrebleu's
    `sentence_bleu`.

    As `corpus_bleu` on a corpus of one, but with sacrebleu's
    `use_effective_order=True` (its default for sentences): n-gram orders
    longer than the hypothesis are left out instead of making BLEU 0, so
    short sentences get a score. BLEU is a corpus metric: the mean of
    sentence scores is not the corpus score.

    Args:
        hypothesis: a string.
        references: a reference string, or a list of them.

    Returns:
        A `BLEUScore`.

    Raises:
        ValueError: `hypothesis` is not a string, or `references` is
            neither a string nor a non-empty list of strings.

    Example:

    >>> bleu = kfinetune.evaluation.sentence_bleu("the cat sat", "the cat sat")
    >>> round(bleu.score, 2)
    100.0
    """
    hypothesis, references = text_pairs.check_sentence(hypothesis, references)
    return _score(_statistics(hypothesis, references), effective_order=True)
