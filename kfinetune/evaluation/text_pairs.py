"""Checks of the hypotheses and references that text metrics score.

Every text metric (`corpus_bleu`, `corpus_chrf`, `corpus_rouge_l` and their
sentence-level forms) takes the same arguments: one hypothesis string per
example, and for each one either a reference string or a list of reference
strings (several references; examples may have different numbers of them).
"""


def _fail(message, received):
    raise ValueError(f"{message} Received: {received}")


def check_text(name, value):
    """Checks that `value` is a string."""
    if not isinstance(value, str):
        _fail(f"`{name}` must be a string.", f"{name}={value!r}")


def _references_of(name, references):
    """One example's references, as a non-empty tuple of strings."""
    if isinstance(references, str):
        return (references,)
    if not isinstance(references, (list, tuple)) or not references:
        _fail(
            f"`{name}` must be a reference string or a non-empty list of "
            "reference strings.",
            f"{name}={references!r}",
        )
    for index, reference in enumerate(references):
        check_text(f"{name}[{index}]", reference)
    return tuple(references)


def check_sentence(hypothesis, references):
    """Checks one hypothesis and its references.

    Args:
        hypothesis: a string.
        references: a reference string, or a non-empty list of them.

    Returns:
        `(hypothesis, references)` with `references` a tuple of strings.

    Raises:
        ValueError: `hypothesis` is not a string, or `references` is neither
            a string nor a non-empty list of strings.
    """
    check_text("hypothesis", hypothesis)
    return hypothesis, _references_of("references", references)


def check_corpus(hypotheses, references, hypotheses_name="hypotheses"):
    """Checks a corpus of hypotheses and their references.

    Args:
        hypotheses: a non-empty list of strings.
        references: a list as long as `hypotheses`: for each hypothesis, a
            reference string or a non-empty list of them.
        hypotheses_name: the name of `hypotheses` in messages, e.g.
            `"prompts"`. Defaults to `"hypotheses"`.

    Returns:
        `(hypotheses, references)`: a list of strings and a list of tuples
        of strings.

    Raises:
        ValueError: either argument is a single string or not a list, the
            corpus is empty, the lengths differ, or an element is not a
            string (naming its index).
    """
    name = hypotheses_name
    for argument, value in ((name, hypotheses), ("references", references)):
        if isinstance(value, str) or not hasattr(value, "__len__"):
            _fail(
                f"`{argument}` must be a list with one entry per example "
                "(for one sentence, use the `sentence_` function).",
                f"{argument}={value!r}",
            )
    hypotheses = list(hypotheses)
    references = list(references)
    if not hypotheses:
        _fail(f"Nothing to score: `{name}` is empty.", f"{name}=[]")
    if len(hypotheses) != len(references):
        _fail(
            f"`{name}` and `references` must have one entry per example "
            "(for several references, give each example a list of them).",
            f"len({name})={len(hypotheses)}, len(references)={len(references)}",
        )
    for index, hypothesis in enumerate(hypotheses):
        check_text(f"{name}[{index}]", hypothesis)
    references = [
        _references_of(f"references[{index}]", example)
        for index, example in enumerate(references)
    ]
    return hypotheses, references
