"""Classification metrics: accuracy, per-class precision / recall / F1,
and their multi-label forms (micro and macro F1, subset accuracy)."""

import dataclasses
import numbers

import keras
import numpy as np

from kfinetune import checks
from kfinetune import preprocessing
from kfinetune.evaluation import confusion as confusion_lib


@dataclasses.dataclass(frozen=True)
class ClassificationReport:
    """Accuracy and per-class precision, recall, F1 and support.

    Build it with `classification_report` or `evaluate_classifier`. `str()`
    gives a printable table.

    Attributes:
        class_names: the class names, in label order.
        accuracy: the fraction of correct predictions.
        precision: per-class precision, a tuple in label order.
        recall: per-class recall.
        f1: per-class F1.
        support: per-class number of true examples (with sample weights,
            their summed weights, floats).
        confusion: the confusion matrix, a tuple of rows: `confusion[i][j]`
            counts the examples of class `i` predicted as `j` (with sample
            weights, sums their weights). Defaults to `None` (a report
            built without one).
    """

    class_names: tuple
    accuracy: float
    precision: tuple
    recall: tuple
    f1: tuple
    support: tuple
    confusion: tuple | None = None

    @property
    def macro_f1(self):
        """The unweighted mean of the per-class F1 scores."""
        return float(np.mean(self.f1))

    def _per_class(self):
        return _per_class(self)

    def plot_confusion_matrix(self, path, normalize=True, dpi=120):
        """Draws the confusion matrix as a PNG; see
        `kfinetune.evaluation.plot_confusion_matrix`.

        Args:
            path: the PNG file to write.
            normalize: divide each row by its total. Defaults to `True`.
            dpi: the resolution. Defaults to `120`.

        Returns:
            The path written, as a `pathlib.Path`.

        Raises:
            ValueError: the report has no confusion matrix.
        """
        if self.confusion is None:
            raise ValueError(
                "This report has no confusion matrix: build it with "
                "`classification_report` or `evaluate_classifier`. "
                "Received: confusion=None"
            )
        return confusion_lib.plot_confusion_matrix(
            self.confusion, self.class_names, path, normalize, dpi=dpi
        )

    def as_dict(self):
        """The report as a JSON-ready dict."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": _per_class_dict(self),
        }

    def __str__(self):
        total = sum(self.support)
        return _table(
            self,
            [
                ("accuracy", None, None, self.accuracy, total),
                ("macro F1", None, None, self.macro_f1, total),
            ],
        )


@dataclasses.dataclass(frozen=True)
class MultiLabelReport:
    """Per-class and overall scores of a multi-label classifier at one
    threshold.

    Each class is scored as its own yes/no question: an example is a true
    positive of a class when the class is among its labels and its score
    is above `threshold`. Build it with `multi_label_report` or
    `evaluate_classifier`. `str()` gives a printable table.

    Attributes:
        class_names: the class names, in label order.
        threshold: the score above which a class is predicted.
        precision: per-class precision, a tuple in label order.
        recall: per-class recall.
        f1: per-class F1.
        support: per-class number of examples that have the class (with
            sample weights, their summed weights, floats).
        micro_precision: precision over every (example, class) decision.
        micro_recall: recall over every (example, class) decision.
        micro_f1: F1 of `micro_precision` and `micro_recall`: frequent
            classes weigh more.
        subset_accuracy: the fraction of examples whose predicted classes
            are exactly their labels (every class right).

    Example:

    ```python
    report = kfinetune.evaluation.evaluate_classifier(
        model, data.test, data.class_names)  # multi-hot labels
    print(report)
    report.as_dict()["micro_f1"]
    ```
    """

    class_names: tuple
    threshold: float
    precision: tuple
    recall: tuple
    f1: tuple
    support: tuple
    micro_precision: float
    micro_recall: float
    micro_f1: float
    subset_accuracy: float

    @property
    def macro_f1(self):
        """The unweighted mean of the per-class F1 scores: every class
        weighs the same."""
        return float(np.mean(self.f1))

    def as_dict(self):
        """The report as a JSON-ready dict."""
        return {
            "threshold": self.threshold,
            "subset_accuracy": self.subset_accuracy,
            "micro_precision": self.micro_precision,
            "micro_recall": self.micro_recall,
            "micro_f1": self.micro_f1,
            "macro_f1": self.macro_f1,
            "per_class": _per_class_dict(self),
        }

    def __str__(self):
        total = sum(self.support)
        return _table(
            self,
            [
                (
                    "micro avg",
                    self.micro_precision,
                    self.micro_recall,
                    self.micro_f1,
                    total,
                ),
                ("macro F1", None, None, self.macro_f1, total),
                ("subset accuracy", None, None, self.subset_accuracy, None),
                ("threshold", None, None, self.threshold, None),
            ],
        )


def _per_class(report):
    return zip(
        report.class_names,
        report.precision,
        report.recall,
        report.f1,
        report.support,
        strict=True,
    )


def _per_class_dict(report):
    return {
        name: {"precision": p, "recall": r, "f1": f, "support": s}
        for name, p, r, f, s in _per_class(report)
    }


def _table(report, totals):
    """The per-class rows, then `totals`: rows of `(name, precision,
    recall, score, support)`, `None` where a row has no value."""
    names = [*report.class_names, *(row[0] for row in totals)]
    width = max(8, *(len(n) for n in names))
    lines = [f"{'':{width}}  precision  recall     f1  support"]
    for name, p, r, f, s in _per_class(report):
        lines.append(
            f"{name:{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {_count(s)}"
        )
    for name, p, r, f, s in totals:
        p = "" if p is None else f"{p:.3f}"
        r = "" if r is None else f"{r:.3f}"
        s = "" if s is None else _count(s)
        lines.append(f"{name:{width}}  {p:>9}  {r:>6}  {f:5.3f}  {s}".rstrip())
    return "\n".join(lines)


def _scores(hits, predicted, support):
    """Precision, recall and F1 (0 where undefined, as scikit-learn's
    `zero_division=0`) of arrays or scalars of counts."""
    hits, predicted, support = (
        np.asarray(v, dtype=np.float64) for v in (hits, predicted, support)
    )
    zeros = np.zeros_like(hits)
    precision = np.divide(
        hits, predicted, out=zeros.copy(), where=predicted > 0
    )
    recall = np.divide(hits, support, out=zeros.copy(), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall,
        denominator,
        out=zeros.copy(),
        where=denominator > 0,
    )
    return precision, recall, f1


def _count(value):
    """A support or total, as an integer when it is one."""
    if float(value).is_integer():
        return f"{int(value):7d}"
    return f"{value:7.2f}"


def _check_sample_weight(sample_weight, n):
    weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if weights.shape != (n,) or not np.all(np.isfinite(weights)):
        raise ValueError(
            f"`sample_weight` must hold one finite weight per example ({n}). "
            f"Received: sample_weight of shape {np.shape(sample_weight)}"
        )
    if np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(
            "`sample_weight` must be non-negative with a positive sum. "
            f"Received: sample_weight with minimum {weights.min()} and sum "
            f"{weights.sum()}"
        )
    return weights


def classification_report(y_true, y_pred, class_names, sample_weight=None):
    """Computes accuracy and per-class precision, recall and F1.

    A class that is never predicted has precision 0; a class with no true
    examples has recall 0 (and F1 0), as scikit-learn does with
    `zero_division=0`. With `sample_weight`, each example counts with its
    weight, as in scikit-learn's `classification_report(...,
    sample_weight=...)`.

    Args:
        y_true: integer labels, shape `(n,)`.
        y_pred: predicted integer labels, shape `(n,)`.
        class_names: one name per class; labels index into it.
        sample_weight: optional non-negative weights, shape `(n,)`.
            Defaults to `None` (every example counts once).

    Returns:
        A `ClassificationReport`.

    Raises:
        ValueError: shapes differ, nothing to evaluate, a label is
            outside `range(len(class_names))`, or the weights are not one
            finite non-negative number per example with a positive sum.

    Example:

    >>> report = kfinetune.evaluation.classification_report(
    ...     [0, 1, 1], [0, 1, 0], ["negative", "positive"])
    >>> round(report.accuracy, 3)
    0.667
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    class_names = tuple(str(n) for n in class_names)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "`y_true` and `y_pred` must have the same length. Received: "
            f"len(y_true)={len(y_true)}, len(y_pred)={len(y_pred)}"
        )
    if len(y_true) == 0:
        raise ValueError("Nothing to evaluate. Received: empty y_true")
    k = len(class_names)
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        bad = labels[(labels < 0) | (labels >= k)]
        if len(bad):
            raise ValueError(
                f"`{name}` holds labels outside 0..{k - 1} "
                f"(class_names={list(class_names)}). Received: "
                f"{name} containing {int(bad[0])}"
            )
    if sample_weight is None:
        confusion = np.zeros((k, k), np.int64)
        np.add.at(confusion, (y_true, y_pred), 1)
        as_count = int
    else:
        weights = _check_sample_weight(sample_weight, len(y_true))
        confusion = np.zeros((k, k), np.float64)
        np.add.at(confusion, (y_true, y_pred), weights)
        as_count = float
    hits = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    precision, recall, f1 = _scores(hits, confusion.sum(axis=0), support)
    return ClassificationReport(
        class_names=class_names,
        accuracy=float(hits.sum() / support.sum()),
        precision=tuple(float(v) for v in precision),
        recall=tuple(float(v) for v in recall),
        f1=tuple(float(v) for v in f1),
        support=tuple(as_count(v) for v in support),
        confusion=tuple(tuple(as_count(v) for v in row) for row in confusion),
    )


def _check_threshold(threshold):
    """A multi-label threshold: a probability strictly between 0 and 1."""
    checks.in_range("threshold", threshold, 0, 1, low_closed=False)
    return float(threshold)


def multi_label_report(
    y_true, y_score, class_names, threshold=0.5, sample_weight=None
):
    """Computes per-class and overall scores of multi-label predictions.

    A class is predicted for an example where its score is above
    `threshold`. Per class, precision, recall and F1 are those of that
    class's yes/no decisions (0 where undefined, as scikit-learn's
    `zero_division=0`); micro scores pool every (example, class)
    decision; macro F1 is the mean of the per-class F1; subset accuracy
    counts the examples whose predicted classes are exactly their labels.
    With `sample_weight`, each example counts with its weight.

    Args:
        y_true: the multi-hot labels, 0 or 1, shape `(n, num_classes)`.
        y_score: per-class probabilities in `[0, 1]` (a sigmoid's outputs),
            or 0/1 predictions, shape `(n, num_classes)`.
        class_names: one name per class (column).
        threshold: the score above which a class is predicted, in
            `(0, 1)`. Defaults to `0.5`.
        sample_weight: optional non-negative weights, shape `(n,)`.
            Defaults to `None` (every example counts once).

    Returns:
        A `MultiLabelReport`.

    Raises:
        ValueError: the shapes differ or do not have one column per class
            name, nothing to evaluate, `y_true` holds something other than
            0 and 1, `y_score` is outside `[0, 1]` (logits: apply a sigmoid
            first), `threshold` is not in `(0, 1)`, or the weights are not
            one finite non-negative number per example with a positive sum.

    Example:

    >>> report = kfinetune.evaluation.multi_label_report(
    ...     [[1, 0], [1, 1]], [[0.9, 0.2], [0.6, 0.4]], ["sports", "politics"])
    >>> report.micro_f1, report.subset_accuracy
    (0.8, 0.5)
    """
    threshold = _check_threshold(threshold)
    class_names = tuple(str(n) for n in class_names)
    y_true = np.asarray(y_true, dtype=np.float64)
    y_score = np.asarray(y_score, dtype=np.float64)
    k = len(class_names)
    for name, values in (("y_true", y_true), ("y_score", y_score)):
        if values.ndim != 2 or values.shape[1] != k:
            raise ValueError(
                f"`{name}` must have one row per example and one column per "
                f"class name ({k}). Received: {name} of shape {values.shape}"
            )
    if y_true.shape != y_score.shape:
        raise ValueError(
            "`y_true` and `y_score` must have the same shape. Received: "
            f"y_true of shape {y_true.shape}, y_score of shape {y_score.shape}"
        )
    if not len(y_true):
        raise ValueError("Nothing to evaluate. Received: empty y_true")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(
            "`y_true` must be multi-hot: 0 or 1. Received: y_true containing "
            f"{y_true[~np.isin(y_true, (0, 1))][0]}"
        )
    outside = ~((y_score >= 0) & (y_score <= 1))
    if outside.any():
        raise ValueError(
            "`y_score` must be probabilities in [0, 1] (apply a sigmoid to "
            f"logits). Received: y_score containing {y_score[outside][0]}"
        )
    if sample_weight is None:
        weights, as_count = np.ones(len(y_true)), int
    else:
        weights = _check_sample_weight(sample_weight, len(y_true))
        as_count = float
    predicted = (y_score > threshold).astype(np.float64)
    weighted = weights[:, None]
    hits = (weighted * y_true * predicted).sum(axis=0)
    chosen = (weighted * predicted).sum(axis=0)
    support = (weighted * y_true).sum(axis=0)
    precision, recall, f1 = _scores(hits, chosen, support)
    micro = _scores(hits.sum(), chosen.sum(), support.sum())
    exact = np.all(predicted == y_true, axis=1)
    return MultiLabelReport(
        class_names=class_names,
        threshold=threshold,
        precision=tuple(float(v) for v in precision),
        recall=tuple(float(v) for v in recall),
        f1=tuple(float(v) for v in f1),
        support=tuple(as_count(v) for v in support),
        micro_precision=float(micro[0]),
        micro_recall=float(micro[1]),
        micro_f1=float(micro[2]),
        subset_accuracy=float(weights[exact].sum() / weights.sum()),
    )


def _inputs(x, y=None, sample_weight=None):
    # A named function, not a lambda: AutoGraph cannot read the source of a
    # lambda inside a call and warns. A 1-tuple, so that `predict` reads a
    # sentence pair `(a, b)` as one input and not as inputs and labels.
    return (x,)


def _activation(model):
    return getattr(model.layers[-1], "activation", None)


def _binary_threshold(model, threshold):
    """The score above which a one-output model predicts class 1."""
    if threshold is not None:
        return float(threshold)
    activation = _activation(model)
    if activation is keras.activations.sigmoid:
        return 0.5
    if activation in (None, keras.activations.linear):
        return 0.0
    raise ValueError(
        "The model has one output per example, and its last layer's "
        f"activation ({getattr(activation, '__name__', activation)}) says "
        "neither probabilities (sigmoid) nor logits (linear): pass "
        "`threshold=`, the score above which class 1 is predicted. "
        "Received: threshold=None"
    )


def _probabilities(model, scores):
    """Per-class probabilities of a multi-label model's outputs: a sigmoid
    of logits, or the outputs of a sigmoid."""
    activation = _activation(model)
    if activation is keras.activations.sigmoid:
        return scores
    if activation in (None, keras.activations.linear):
        return 1 / (1 + np.exp(-scores.astype(np.float64)))
    raise ValueError(
        "Multi-label labels need a score per class that is a logit or a "
        "sigmoid's probability, and the model's last layer's activation is "
        f"{getattr(activation, '__name__', activation)}. Received: model="
        f"{model.name!r}"
    )


def _label_kind(spec, class_names):
    """`(multi_label, batched)` from the labels' `TensorSpec`: integer
    labels are class indices, floating-point ones multi-hot rows."""
    rank = spec.shape.rank
    if not spec.dtype.is_floating or rank == 0:
        return False, rank != 0
    k = len(class_names)
    if spec.shape[-1] != k:
        raise ValueError(
            "Floating-point labels are read as multi-hot rows, one entry per "
            f"class name ({k}); class indices must be integers (cast them). "
            f"Received: labels of shape {spec.shape} and dtype "
            f"{spec.dtype.name}"
        )
    return True, rank == 2


def evaluate_classifier(
    model, dataset, class_names, batch_size=64, threshold=None
):
    """Predicts on a labelled dataset and reports accuracy and F1.

    What the labels are decides the report:

    - integer class indices: one class per example, a
      `ClassificationReport`. A model with one output per example is a
      binary classifier: class 1 is predicted where the output is above
      `threshold` (class 0 elsewhere). With several outputs the
      top-scoring class is predicted.
    - floating-point multi-hot rows (multi-label, as
      `LabelledTexts.as_dataset` yields them): a `MultiLabelReport`. The
      model's outputs are per-class logits (a sigmoid turns them into
      probabilities) or a sigmoid's probabilities, and a class is
      predicted where its probability is above `threshold`.

    Inputs may be texts, sentence pairs `(a, b)` (for a keras-hub text
    classifier, whose preprocessor packs them), or whatever the model
    takes.

    Args:
        model: a classifier whose outputs are per-class scores, or one
            score per example.
        dataset: a `tf.data.Dataset` of `(inputs, label)` or `(inputs,
            label, sample_weight)`, batched or not; sample weights weight
            every count of the report.
        class_names: one name per class (two for a one-output model).
        batch_size: used when `dataset` is unbatched. Defaults to `64`.
        threshold: for a one-output model, the score above which class 1 is
            predicted; defaults to `0.5` when the model's last layer has a
            sigmoid activation (probabilities), `0.0` when it has none
            (logits). For multi-label labels, a probability in `(0, 1)`;
            defaults to `0.5`. Not for single-label models with several
            outputs. Defaults to `None`.

    Returns:
        A `ClassificationReport`, or a `MultiLabelReport` for multi-hot
        labels.

    Raises:
        ValueError: `threshold` is given for a single-label model with
            several outputs, or is not a number (for multi-label, not in
            `(0, 1)`); a one-output model's activation says neither
            probabilities nor logits and no `threshold` is given, or
            `class_names` does not hold two names for it; floating-point
            labels do not have one entry per class name; or a multi-label
            model's activation is neither a sigmoid nor linear.

    Example:

    ```python
    report = kfinetune.evaluation.evaluate_classifier(
        model, data.test, data.class_names)
    print(report.accuracy, report.macro_f1)  # multi-label: report.micro_f1
    ```
    """
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
    ):
        raise ValueError(
            f"`threshold` must be a number. Received: threshold={threshold!r}"
        )
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ValueError(
            "`dataset` must yield `(inputs, label)` or `(inputs, label, "
            f"sample_weight)`. Received: element_spec={spec}"
        )
    multi_label, batched = _label_kind(spec[1], class_names)
    if multi_label:
        threshold = _check_threshold(0.5 if threshold is None else threshold)
    if not batched:
        dataset = dataset.batch(batch_size)
    # Labels and predictions take two passes; the cache makes the second
    # pass replay the first, even when the dataset reshuffles every pass.
    dataset = dataset.cache()
    batches = list(dataset.map(_targets).as_numpy_iterator())
    labels = np.concatenate([batch[0] for batch in batches])
    weights = None
    if len(spec) == 3:
        weights = np.concatenate([batch[1] for batch in batches])
    scores = preprocessing.predict(model, dataset.map(_inputs), batch_size)
    if multi_label:
        return multi_label_report(
            labels,
            _probabilities(model, scores),
            class_names,
            threshold,
            weights,
        )
    if scores.ndim == 1 or scores.shape[-1] == 1:
        cut = _binary_threshold(model, threshold)
        if len(class_names) != 2:
            raise ValueError(
                "A model with one output per example is a binary "
                "classifier: `class_names` must hold two names. Received: "
                f"class_names={list(class_names)}"
            )
        predicted = (scores.reshape(len(scores), -1)[:, 0] > cut).astype(int)
    else:
        if threshold is not None:
            raise ValueError(
                "`threshold` is for models with one output per example; "
                f"this one has {scores.shape[-1]} per example and predicts "
                f"the top class. Received: threshold={threshold!r}"
            )
        predicted = np.argmax(scores, -1)
    return classification_report(labels, predicted, class_names, weights)


def _targets(x, y, sample_weight=None):
    if sample_weight is None:
        return (y,)
    return y, sample_weight
