"""Sequence-labelling metrics: entity-level precision / recall / F1 with
strict span matching, and token accuracy."""

import dataclasses

import numpy as np

from kfinetune import checks
from kfinetune.data import tag_schemes

# The schemes entity metrics read (IOB1 is converted when read).
SCHEMES = {
    name: prefixes
    for name, prefixes in tag_schemes.PREFIXES.items()
    if name != "IOB1"
}


def _parse(tag, scheme, sentence, position, name):
    """Splits `tag` into `(prefix, type)`; `("O", None)` for outside."""
    split = tag_schemes.split_tag(tag)
    if split is not None and (split[0] == "O" or split[0] in SCHEMES[scheme]):
        return split
    allowed = ", ".join(f"{p}-TYPE" for p in SCHEMES[scheme])
    raise ValueError(
        f"Unknown tag for scheme={scheme!r} in `{name}` (sentence "
        f"{sentence}, token {position}): tags must be O or {allowed}. "
        f"Received: {name}[{sentence}][{position}]={tag!r}"
    )


def _spans(parsed, scheme):
    """The strict entity spans `(type, start, end)` of one parsed sentence.

    BIO: `B-X` then every following `I-X`. IOBES: `S-X` alone, or `B-X`,
    any `I-X`, then `E-X`. Anything else (a stray `I-X`, a `B-X` with no
    `E-X` in IOBES, a change of type) is not an entity, as in seqeval's
    strict mode.
    """
    spans = []
    i = 0
    while i < len(parsed):
        prefix, entity_type = parsed[i]
        if prefix == "S":
            spans.append((entity_type, i, i + 1))
            i += 1
            continue
        if prefix != "B":
            i += 1
            continue
        end = i + 1
        last = "B"
        while (
            end < len(parsed)
            and parsed[end][1] == entity_type
            and parsed[end][0] in ("I", "E")
            and last != "E"
        ):
            last = parsed[end][0]
            end += 1
        if scheme != "IOBES" or last == "E":
            spans.append((entity_type, i, end))
        i = end
    return spans


def extract_entities(tags, scheme="BIO"):
    """The entities of one tagged sentence, as strict spans.

    Args:
        tags: the sentence's tag strings, e.g. `["B-PER", "I-PER", "O"]`.
        scheme: `"BIO"` (also called IOB2: `B-X` starts an entity, `I-X`
            continues it) or `"IOBES"` (`S-X` single-token entity, `B-X`
            ... `E-X` longer ones). Defaults to `"BIO"`.

    Returns:
        A list of `(type, start, end)` tuples, `end` exclusive, in order.

    Raises:
        ValueError: a tag is not `O` or `PREFIX-TYPE` with a prefix of the
            scheme.

    Example:

    >>> kfinetune.evaluation.extract_entities(
    ...     ["B-PER", "I-PER", "O", "B-LOC"])
    [('PER', 0, 2), ('LOC', 3, 4)]
    """
    checks.one_of("scheme", scheme, SCHEMES)
    parsed = [
        _parse(tag, scheme, 0, position, "tags")
        for position, tag in enumerate(tags)
    ]
    return _spans(parsed, scheme)


@dataclasses.dataclass(frozen=True)
class SequenceLabellingReport:
    """Entity-level precision, recall, F1 and support, and token accuracy.

    Build it with `sequence_labelling_report`. `str()` gives a printable
    table.

    Attributes:
        scheme: the tagging scheme, `"BIO"` or `"IOBES"`.
        entity_types: the entity types found in the true or predicted tags,
            sorted.
        precision: per-type precision, a tuple in `entity_types` order.
        recall: per-type recall.
        f1: per-type F1.
        support: per-type number of true entities.
        micro_precision: precision over all entities of all types.
        micro_recall: recall over all entities.
        micro_f1: the harmonic mean of `micro_precision` and
            `micro_recall`; the usual headline "entity F1".
        macro_precision: the unweighted mean of the per-type precisions.
        macro_recall: the unweighted mean of the per-type recalls.
        macro_f1: the unweighted mean of the per-type F1 scores.
        token_accuracy: the fraction of tokens whose tag is right, `O`
            tokens included.
    """

    scheme: str
    entity_types: tuple
    precision: tuple
    recall: tuple
    f1: tuple
    support: tuple
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    token_accuracy: float

    def _per_type(self):
        return zip(
            self.entity_types,
            self.precision,
            self.recall,
            self.f1,
            self.support,
            strict=True,
        )

    def plot_scores(self, path, dpi=120):
        """Draws precision, recall and F1 of each entity type and of all
        types together (micro) as grouped bars, in a PNG.

        Args:
            path: the PNG file to write.
            dpi: the resolution. Defaults to `120`.

        Returns:
            The path written, as a `pathlib.Path`.

        Example:

        ```python
        report = kfinetune.evaluation.sequence_labelling_report(gold, tags)
        report.plot_scores("entity_scores.png")
        ```
        """
        from kfinetune import plotting

        groups = [
            f"{name}\n({support})"
            for name, support in zip(
                self.entity_types, self.support, strict=True
            )
        ]
        groups.append(f"all (micro)\n({sum(self.support)})")
        return plotting.save_bars(
            path,
            groups,
            {
                "precision": [*self.precision, self.micro_precision],
                "recall": [*self.recall, self.micro_recall],
                "F1": [*self.f1, self.micro_f1],
            },
            ylabel="entity score (strict spans)",
            title=f"Entity scores; token accuracy {self.token_accuracy:.3f}",
            top=1.0,
            dpi=dpi,
        )

    def as_dict(self):
        """The report as a JSON-ready dict."""
        return {
            "scheme": self.scheme,
            "token_accuracy": self.token_accuracy,
            "micro": {
                "precision": self.micro_precision,
                "recall": self.micro_recall,
                "f1": self.micro_f1,
            },
            "macro": {
                "precision": self.macro_precision,
                "recall": self.macro_recall,
                "f1": self.macro_f1,
            },
            "per_type": {
                name: {"precision": p, "recall": r, "f1": f, "support": s}
                for name, p, r, f, s in self._per_type()
            },
        }

    def __str__(self):
        width = max(14, *(len(n) for n in self.entity_types))
        lines = [f"{'':{width}}  precision  recall     f1  support"]
        for name, p, r, f, s in self._per_type():
            lines.append(
                f"{name:{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {s:7d}"
            )
        total = sum(self.support)
        for name, p, r, f in (
            (
                "micro avg",
                self.micro_precision,
                self.micro_recall,
                self.micro_f1,
            ),
            (
                "macro avg",
                self.macro_precision,
                self.macro_recall,
                self.macro_f1,
            ),
        ):
            lines.append(
                f"{name:{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {total:7d}"
            )
        lines.append(
            f"{'token accuracy':{width}}  {'':9}  {'':6}  "
            f"{self.token_accuracy:5.3f}"
        )
        return "\n".join(lines)


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else 0.0


def _f1(precision, recall):
    return _ratio(2 * precision * recall, precision + recall)


def _check_lengths(y_true, y_pred):
    if len(y_true) != len(y_pred):
        raise ValueError(
            "`y_true` and `y_pred` must hold the same number of sentences. "
            f"Received: len(y_true)={len(y_true)}, len(y_pred)={len(y_pred)}"
        )
    if not y_true:
        raise ValueError("Nothing to evaluate. Received: empty y_true")
    for index, (true, pred) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(true) != len(pred):
            raise ValueError(
                f"Sentence {index} has {len(true)} true tags but "
                f"{len(pred)} predicted tags. Received: "
                f"len(y_true[{index}])={len(true)}, "
                f"len(y_pred[{index}])={len(pred)}"
            )


def sequence_labelling_report(y_true, y_pred, scheme="BIO"):
    """Computes entity-level precision / recall / F1 and token accuracy.

    Entities are matched strictly: a predicted entity counts only if a true
    entity has the same type, start and end. Spans are read as `seqeval`
    reads them with `mode="strict"` (see `extract_entities`), so the
    numbers equal `seqeval.metrics.classification_report(y_true, y_pred,
    mode="strict", scheme=IOB2 or IOBES)`. A type that is never predicted
    has precision 0; a type with no true entity has recall 0.

    Args:
        y_true: the true tags, a list of sentences, each a list of tag
            strings such as `"B-PER"`, `"I-PER"`, `"O"`.
        y_pred: the predicted tags, same lengths as `y_true`.
        scheme: `"BIO"` (IOB2) or `"IOBES"`. Defaults to `"BIO"`.

    Returns:
        A `SequenceLabellingReport`.

    Raises:
        ValueError: an unknown scheme, a different number of sentences or
            of tags in a sentence (naming the sentence), no sentences, or a
            tag that is not `O` or `PREFIX-TYPE` with a prefix of the scheme
            (naming the sentence and the token).

    Example:

    >>> report = kfinetune.evaluation.sequence_labelling_report(
    ...     [["B-PER", "I-PER", "O", "B-LOC"]],
    ...     [["B-PER", "I-PER", "O", "O"]])
    >>> report.micro_precision, round(report.micro_f1, 3)
    (1.0, 0.667)
    """
    checks.one_of("scheme", scheme, SCHEMES)
    y_true = [list(sentence) for sentence in y_true]
    y_pred = [list(sentence) for sentence in y_pred]
    _check_lengths(y_true, y_pred)
    true_spans, pred_spans = set(), set()
    for name, sentences, spans in (
        ("y_true", y_true, true_spans),
        ("y_pred", y_pred, pred_spans),
    ):
        for index, sentence in enumerate(sentences):
            parsed = [
                _parse(tag, scheme, index, position, name)
                for position, tag in enumerate(sentence)
            ]
            spans.update((index, *span) for span in _spans(parsed, scheme))
    types = sorted({span[1] for span in true_spans | pred_spans})
    precision, recall, f1, support = [], [], [], []
    for entity_type in types:
        true = {s for s in true_spans if s[1] == entity_type}
        pred = {s for s in pred_spans if s[1] == entity_type}
        hits = len(true & pred)
        precision.append(_ratio(hits, len(pred)))
        recall.append(_ratio(hits, len(true)))
        f1.append(_f1(precision[-1], recall[-1]))
        support.append(len(true))
    hits = len(true_spans & pred_spans)
    micro_precision = _ratio(hits, len(pred_spans))
    micro_recall = _ratio(hits, len(true_spans))
    correct = sum(
        t == p
        for true, pred in zip(y_true, y_pred, strict=True)
        for t, p in zip(true, pred, strict=True)
    )
    tokens = sum(len(sentence) for sentence in y_true)

    def mean(values):
        return float(np.mean(values)) if values else 0.0

    return SequenceLabellingReport(
        scheme=scheme,
        entity_types=tuple(types),
        precision=tuple(precision),
        recall=tuple(recall),
        f1=tuple(f1),
        support=tuple(support),
        micro_precision=micro_precision,
        micro_recall=micro_recall,
        micro_f1=_f1(micro_precision, micro_recall),
        macro_precision=mean(precision),
        macro_recall=mean(recall),
        macro_f1=mean(f1),
        token_accuracy=_ratio(correct, tokens),
    )
