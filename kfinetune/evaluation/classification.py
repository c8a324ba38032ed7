"""Classification metrics: accuracy, per-class precision / recall / F1."""

import dataclasses

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
        support: per-class number of true examples.
        confusion: the confusion matrix, a tuple of rows: `confusion[i][j]`
            counts the examples of class `i` predicted as `j`. Defaults to
            `None` (a report built without one).
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
                f"{name:{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {s:7d}"
            )
        total = sum(self.support)
        lines.append(
            f"{'accuracy':{width}}  {'':9}  {'':6}  "
            f"{self.accuracy:5.3f}  {total:7d}"
        )
        lines.append(
            f"{'macro F1':{width}}  {'':9}  {'':6}  "
            f"{self.macro_f1:5.3f}  {total:7d}"
        )
        return "\n".join(lines)


def classification_report(y_true, y_pred, class_names):
    """Computes accuracy and per-class precision, recall and F1.

    A class that is never predicted has precision 0; a class with no true
    examples has recall 0 (and F1 0), as scikit-learn does with
    `zero_division=0`.

    Args:
        y_true: integer labels, shape `(n,)`.
        y_pred: predicted integer labels, shape `(n,)`.
        class_names: one name per class; labels index into it.

    Returns:
        A `ClassificationReport`.

    Raises:
        ValueError: shapes differ, nothing to evaluate, or a label is
            outside `range(len(class_names))`.

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
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
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
        accuracy=float(hits.sum() / len(y_true)),
        precision=tuple(float(v) for v in precision),
        recall=tuple(float(v) for v in recall),
        f1=tuple(float(v) for v in f1),
        support=tuple(int(v) for v in support),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )


def _inputs(x, y):
    # A named function, not a lambda: AutoGraph cannot read the source of a
    # lambda inside a call and warns.
    return x


def evaluate_classifier(model, dataset, class_names, batch_size=64):
    """Predicts on a labelled dataset and reports accuracy and F1.

    Args:
        model: a classifier whose outputs are per-class scores.
        dataset: a `tf.data.Dataset` of `(inputs, label)`, batched or not.
        class_names: one name per class.
        batch_size: used when `dataset` is unbatched. Defaults to `64`.

    Returns:
        A `ClassificationReport`.

    Example:

    ```python
    report = kfinetune.evaluation.evaluate_classifier(
        model, data.test, data.class_names)
    print(report.accuracy, report.macro_f1)
    ```
    """
    if len(dataset.element_spec[1].shape) == 0:
        dataset = dataset.batch(batch_size)
    # Labels and predictions take two passes; the cache makes the second
    # pass replay the first, even when the dataset reshuffles every pass.
    dataset = dataset.cache()
    labels = np.concatenate([y for _, y in dataset.as_numpy_iterator()])
    scores = model.predict(dataset.map(_inputs), verbose=0)
    return classification_report(labels, np.argmax(scores, -1), class_names)
