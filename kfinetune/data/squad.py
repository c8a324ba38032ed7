"""`from_squad`: extractive question answering examples from SQuAD JSON."""

import dataclasses
import json
import numbers
import pathlib

from kfinetune import checks


@dataclasses.dataclass(frozen=True)
class QAExample:
    """One question about one context, with its gold answers.

    Args:
        id: the question's identifier, unique in its file.
        question: the question text.
        context: the paragraph the answer is extracted from.
        answers: the gold answer texts; empty for an unanswerable question.
        answer_starts: the character offset of each answer in `context`.
        is_impossible: whether the question has no answer in `context`
            (SQuAD v2.0). Defaults to `False`.

    Example:

    ```python
    example = kfinetune.data.QAExample(
        id="q1",
        question="what was good?",
        context="the movie was good",
        answers=("the movie",),
        answer_starts=(0,),
    )
    ```
    """

    id: str
    question: str
    context: str
    answers: tuple
    answer_starts: tuple
    is_impossible: bool = False


def _fail(path, where, message, value):
    raise ValueError(f"{path}: {where}: {message} Received: {value!r}")


def _field(path, where, item, key, kind, kind_name):
    if not isinstance(item, dict) or key not in item:
        _fail(path, where, f"expected an object with a `{key}` field.", item)
    value = item[key]
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        _fail(path, f"{where}.{key}", f"expected {kind_name}.", value)
    return value


def _answers(path, where, qa, context, qid, impossible):
    answers = _field(path, where, qa, "answers", list, "an array")
    if impossible and answers:
        _fail(
            path,
            f"{where}.answers",
            f"question {qid!r} is marked `is_impossible` but has answers.",
            answers,
        )
    if not impossible and not answers:
        _fail(
            path,
            f"{where}.answers",
            f"question {qid!r} has no answers and is not marked "
            "`is_impossible`.",
            answers,
        )
    texts, starts = [], []
    for k, answer in enumerate(answers):
        at = f"{where}.answers[{k}]"
        text = _field(path, at, answer, "text", str, "a string")
        start = _field(
            path, at, answer, "answer_start", numbers.Integral, "an integer"
        )
        if start < 0 or start + len(text) > len(context):
            _fail(
                path,
                f"{at}.answer_start",
                f"the answer of question {qid!r} does not fit in its "
                f"context of {len(context)} characters.",
                start,
            )
        if context[start : start + len(text)] != text:
            _fail(
                path,
                f"{at}.text",
                f"the answer of question {qid!r} is not the context's text "
                f"at character {start} "
                f"({context[start : start + len(text)]!r}).",
                text,
            )
        texts.append(text)
        starts.append(int(start))
    return tuple(texts), tuple(starts)


def from_squad(path, encoding="utf-8"):
    """Reads extractive question answering examples from a SQuAD JSON file.

    Reads the SQuAD v1.1 and v2.0 formats: `{"data": [{"paragraphs":
    [{"context": ..., "qas": [{"id", "question", "answers": [{"text",
    "answer_start"}], "is_impossible"}]}]}]}`. `is_impossible` (v2.0) is
    optional and defaults to `false`; an unanswerable question has an empty
    `answers` list (its `plausible_answers` are ignored). Every answer must
    be the context's text at `answer_start`.

    Args:
        path: the JSON file.
        encoding: the file's text encoding. Defaults to `"utf-8"`.

    Returns:
        A list of `QAExample`s, in file order.

    Raises:
        ValueError: the file is not JSON, a field is missing or has the wrong
            type, a question id repeats, or an answer is not inside its
            context. The message names the file, the place in the JSON
            (e.g. `data[0].paragraphs[2].qas[1].answers[0]`), the question
            id and the value received. Also raised for an unknown
            `encoding`.

    Example:

    ```python
    examples = kfinetune.data.from_squad("train-v2.0.json")
    examples[0].question, examples[0].answers
    ```
    """
    checks.text_encoding("encoding", encoding)
    path = pathlib.Path(path)
    try:
        document = json.loads(path.read_text(encoding=encoding))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}, "
            f"column {error.colno}). Received: path={str(path)!r}"
        ) from None
    examples, seen = [], set()
    data = _field(path, "top level", document, "data", list, "an array")
    for i, article in enumerate(data):
        paragraphs = _field(
            path, f"data[{i}]", article, "paragraphs", list, "an array"
        )
        for j, paragraph in enumerate(paragraphs):
            where = f"data[{i}].paragraphs[{j}]"
            context = _field(path, where, paragraph, "context", str, "a string")
            qas = _field(path, where, paragraph, "qas", list, "an array")
            for k, qa in enumerate(qas):
                at = f"{where}.qas[{k}]"
                qid = _field(path, at, qa, "id", str, "a string")
                if qid in seen:
                    _fail(path, f"{at}.id", "duplicate question id.", qid)
                seen.add(qid)
                question = _field(path, at, qa, "question", str, "a string")
                impossible = False
                if "is_impossible" in qa:
                    impossible = _field(
                        path, at, qa, "is_impossible", bool, "a boolean"
                    )
                texts, starts = _answers(path, at, qa, context, qid, impossible)
                examples.append(
                    QAExample(qid, question, context, texts, starts, impossible)
                )
    return examples
