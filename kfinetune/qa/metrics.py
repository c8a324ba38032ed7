"""Exact match and token F1, as the official SQuAD evaluation computes them.

The official scripts (v1.1 and v2.0) normalise both texts the same way:
lower case, drop ASCII punctuation, drop the articles "a", "an" and "the",
collapse whitespace. An example scores the best of its gold answers. In
v2.0 an unanswerable question's only gold answer is `""`: the empty
prediction scores 1 on it and any other prediction 0.
"""

import collections
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text):
    """Normalises an answer text as the SQuAD evaluation does.

    Args:
        text: a string.

    Returns:
        `text` lower-cased, without punctuation or articles, with single
        spaces.

    Example:

    >>> kfinetune.qa.normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    """
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction, gold_answers):
    """1.0 when the normalised prediction equals a normalised gold answer.

    Args:
        prediction: the predicted answer text.
        gold_answers: the gold answer texts; empty for an unanswerable
            question (then only `""` matches).

    Returns:
        `1.0` or `0.0`.

    Example:

    >>> kfinetune.qa.exact_match("the movie", ["Movie", "a film"])
    1.0
    """
    return max(
        float(normalize_answer(prediction) == normalize_answer(gold))
        for gold in _golds(gold_answers)
    )


def f1_score(prediction, gold_answers):
    """The best token F1 of the prediction over the gold answers.

    Tokens are the whitespace-separated words of the normalised texts;
    the overlap counts repeated tokens as often as both texts hold them.
    When either text has no tokens, the score is 1.0 if both have none,
    else 0.0.

    Args:
        prediction: the predicted answer text.
        gold_answers: the gold answer texts; empty for an unanswerable
            question.

    Returns:
        A float in `[0, 1]`.

    Example:

    >>> kfinetune.qa.f1_score("a good movie", ["the movie"])
    0.6666666666666666
    """
    return max(_f1(prediction, gold) for gold in _golds(gold_answers))


def _golds(gold_answers):
    # The v2.0 script drops gold answers that normalise to nothing and
    # scores against `""` when none is left.
    golds = [gold for gold in gold_answers if normalize_answer(gold)]
    return golds or [""]


def _f1(prediction, gold):
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = collections.Counter(predicted) & collections.Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, examples):
    """Exact match and F1 over a set of examples, in percent.

    Args:
        predictions: a dict from question id to predicted answer text (as
            `kfinetune.qa.postprocess` returns). A question without a
            prediction scores 0, as in the official script.
        examples: the `kfinetune.data.QAExample`s to score.

    Returns:
        A dict with `exact_match` and `f1`, each the mean over `examples`
        times 100, and `count`, the number of examples.

    Raises:
        ValueError: `examples` is empty.

    Example:

    ```python
    answers = kfinetune.qa.postprocess(features, out["start"], out["end"])
    kfinetune.qa.squad_scores(answers, examples)
    # {"exact_match": 71.0, "f1": 80.2, "count": 100}
    ```
    """
    examples = list(examples)
    if not examples:
        raise ValueError(
            "`examples` must hold at least one example. "
            f"Received: examples={examples!r}"
        )
    em = f1 = 0.0
    for example in examples:
        if example.id not in predictions:
            continue
        em += exact_match(predictions[example.id], example.answers)
        f1 += f1_score(predictions[example.id], example.answers)
    return {
        "exact_match": 100.0 * em / len(examples),
        "f1": 100.0 * f1 / len(examples),
        "count": len(examples),
    }


def squad_scores_by_kind(predictions, examples):
    """`squad_scores` over all examples, the answerable ones and the
    unanswerable ones (SQuAD v2.0's `HasAns` and `NoAns` scores).

    Args:
        predictions: a dict from question id to predicted answer text.
        examples: the `kfinetune.data.QAExample`s to score.

    Returns:
        A dict of `"all"`, and `"answerable"` and `"unanswerable"` when
        `examples` holds such questions, to `squad_scores` dicts.

    Raises:
        ValueError: `examples` is empty.

    Example:

    ```python
    scores = kfinetune.qa.squad_scores_by_kind(answers, examples)
    scores["unanswerable"]["exact_match"]  # the questions left unanswered
    ```
    """
    examples = list(examples)
    scores = {"all": squad_scores(predictions, examples)}
    for kind, impossible in (("answerable", False), ("unanswerable", True)):
        subset = [e for e in examples if e.is_impossible == impossible]
        if subset:
            scores[kind] = squad_scores(predictions, subset)
    return scores
