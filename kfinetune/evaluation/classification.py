"""Classification metrics: accuracy, per-class precision / recall / F1."""

import dataclasses
import numbers

import keras
import numpy as np

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
        return zip(
            self.class_names,
            self.precision,
            self.recall,
            self.f1,
            self.support,
            strict=True,
        )

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
            "per_class": {
                name: {"precision": p, "recall": r, "f1": f, "support": s}
                for name, p, r, f, s in self._per_class()
            },
        }

    def __str__(self):
        width = max(8, *(len(n) for n in self.class_names))
        lines = [
            f"{'':{width}}  precision  recall     f1  support",
        ]
        for name, p, r, f, s in self._per_class():
            lines.append(
                f"{name:{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {_count(s)}"
            )
        total = _count(sum(self.support))
        lines.append(
            f"{'accuracy':{width}}  {'':9}  {'':6}  "
            f"{self.accuracy:5.3f}  {total}"
        )
        lines.append(
            f"{'macro F1':{width}}  {'':9}  {'':6}  "
            f"{self.macro_f1:5.3f}  {total}"
        )
        return "\n".join(lines)


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
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros(k), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall,
        denominator,
        out=np.zeros(k),
        where=denominator > 0,
    )
    return ClassificationReport(
        class_names=class_names,
        accuracy=float(hits.sum() / support.sum()),
        precision=tuple(float(v) for v in precision),
        recall=tuple(float(v) for v in recall),
        f1=tuple(float(v) for v in f1),
        support=tuple(as_count(v) for v in support),
        confusion=tuple(tuple(as_count(v) for v in row) for row in confusion),
    )


def _inputs(x, y=None, sample_weight=None):
    # A named function, not a lambda: AutoGraph cannot read the source of a
    # lambda inside a call and warns.
    return x


def _binary_threshold(model, threshold):
    """The score above which a one-output model predicts class 1."""
    if threshold is not None:
        return float(threshold)
    activation = getattr(model.layers[-1], "activation", None)
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


def evaluate_classifier(
    model, dataset, class_names, batch_size=64, threshold=None
):
    """Predicts on a labelled dataset and reports accuracy and F1.

    A model with one output per example is a binary classifier: class 1 is
    predicted where the output is above `threshold` (class 0 elsewhere).
    With several outputs the top-scoring class is predicted.

    Args:
        model: a classifier whose outputs are per-class scores, or one
            score per example.
        dataset: a `tf.data.Dataset` of `(inputs, label)` or `(inputs,
            label, sample_weight)`, batched or not; sample weights weight
            every count of the report.
        class_names: one name per class (two for a one-output model).
        batch_size: used when `dataset` is unbatched. Defaults to `64`.
        threshold: for a one-output model only. Defaults to `None`: `0.5`
            when the model's last layer has a sigmoid activation
            (probabilities), `0.0` when it has none (logits).

    Returns:
        A `ClassificationReport`.

    Raises:
        ValueError: `threshold` is given for a model with several outputs,
            or is not a number; a one-output model's activation says
            neither probabilities nor logits and no `threshold` is given,
            or `class_names` does not hold two names for it.

    Example:

    ```python
    report = kfinetune.evaluation.evaluate_classifier(
        model, data.test, data.class_names)
    print(report.accuracy, report.macro_f1)
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
    if len(spec[1].shape) == 0:
        dataset = dataset.batch(batch_size)
    # Labels and predictions take two passes; the cache makes the second
    # pass replay the first, even when the dataset reshuffles every pass.
    dataset = dataset.cache()
    batches = list(dataset.map(_targets).as_numpy_iterator())
    labels = np.concatenate([batch[0] for batch in batches])
    weights = None
    if len(spec) == 3:
        weights = np.concatenate([batch[1] for batch in batches])
    scores = model.predict(dataset.map(_inputs), verbose=0)
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
