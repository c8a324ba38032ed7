"""`few_shot`: k labelled examples per class, stratified and nested."""

import tensorflow as tf

from kfinetune import checks
from kfinetune.data.labelled_texts import LabelledTexts
from kfinetune.data.labelled_texts import TextClassificationData
from kfinetune.data.labelled_texts import check_seed
from kfinetune.data.labelled_texts import partition
from kfinetune.data.labelled_texts import refuse_multi_label


def _texts_from_dataset(dataset):
    spec = dataset.element_spec
    valid = (
        isinstance(spec, tuple)
        and len(spec) == 2
        and all(isinstance(part, tf.TensorSpec) for part in spec)
        and spec[0].dtype == tf.string
        and spec[1].dtype.is_integer
        and spec[0].shape.rank == spec[1].shape.rank
        and spec[1].shape.rank in (0, 1)
    )
    if not valid:
        raise ValueError(
            "`dataset` must be a tf.data.Dataset of `(text, label)` pairs: "
            "a string text and an integer label, unbatched or batched. "
            f"Received: dataset with element_spec={spec!r}"
        )
    if int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "`dataset` must be finite: every example is read once to draw "
            f"the sample. Received: dataset={dataset!r} (repeated forever)"
        )
    if spec[1].shape.rank == 1:
        dataset = dataset.unbatch()
    texts, labels = [], []
    for text, label in dataset.as_numpy_iterator():
        texts.append(text.decode("utf-8"))
        labels.append(int(label))
    if not labels:
        raise ValueError(
            f"`dataset` must hold at least one example. Received: "
            f"dataset={dataset!r} (empty)"
        )
    if min(labels) < 0:
        raise ValueError(
            "`dataset` labels must be class indices of at least 0. "
            f"Received: a label of {min(labels)}"
        )
    # A canonical order (by text, then label) makes the sample independent
    # of the order the dataset yields, e.g. a train split that reshuffles
    # every pass.
    order = sorted(range(len(texts)), key=lambda i: (texts[i], labels[i]))
    return LabelledTexts(
        texts=[texts[i] for i in order],
        labels=[labels[i] for i in order],
        class_names=tuple(str(i) for i in range(max(labels) + 1)),
    )


def _sample(texts, k, seed):
    refuse_multi_label(texts, "dataset", "a draw of `k` examples per class")
    counts = texts.class_counts()
    short = {name: n for name, n in counts.items() if n < k}
    if short:
        raise ValueError(
            f"`k` must be at most the number of examples of every class, "
            f"but these classes have fewer than {k}: {short} (all: "
            f"{counts}). Received: k={k}"
        )
    num_classes = len(texts.class_names)
    (indices,) = partition(texts.labels, [[k] * num_classes], seed)
    return texts.subset(indices)


def few_shot(dataset, k, seed=0):
    """Draws `k` labelled examples of every class: a few-shot train set.

    The draw is stratified (exactly `k` of each class), deterministic for
    a `seed`, and nested: each class's examples are put in one seeded
    random order that does not depend on `k`, and the sample takes the
    first `k` of it. So for the same `seed` the `k=8` sample is a subset
    of the `k=16` sample, and a learning curve over `k` measures the
    effect of more data rather than of a different draw. The sample comes
    back in a seeded random order.

    What `dataset` may be, and what comes back:

    - a `kfinetune.data.TextClassificationData`: its train split is
      sampled and its validation and test splits are kept as they are, so
      the sample is disjoint from them whenever the splits are (the
      loaders' splits always are). Returns a `TextClassificationData`
      whose train split is the sample, reshuffled every epoch with `seed`.
    - a `kfinetune.data.LabelledTexts`: returns a `LabelledTexts`.
    - a finite `tf.data.Dataset` of `(text, label)` pairs, unbatched or
      batched, e.g. `data.train`: it is read once into memory and put in
      a canonical order (by text, then label) before drawing, so a
      dataset that reshuffles every pass still gives the same sample. The
      classes are `0 .. max(label)`. Returns an unbatched
      `tf.data.Dataset` of `(text, label)` (string, int32), reshuffled
      every epoch with `seed`.

    Args:
        dataset: a `TextClassificationData`, a `LabelledTexts` or a
            `tf.data.Dataset` of `(text, label)` pairs.
        k: examples per class, a positive integer.
        seed: the seed of the draw (and of the shuffle of the returned
            train data). Defaults to `0`.

    Returns:
        The sample, of the kind described above.

    Raises:
        ValueError: if `k` is not a positive integer, `seed` is not a
            non-negative integer, `dataset` is none of the kinds above (or
            an empty or infinite dataset), is multi-label, or a class has
            fewer than `k` examples.

    Example:

    ```python
    data = kfinetune.data.tweet_sentiment(classes=2)
    few = kfinetune.data.few_shot(data, k=16, seed=0)
    print(few)  # 32 train tweets; validation and test unchanged
    model.fit(few.train.batch(16), epochs=20)
    ```
    """
    checks.positive_integer("k", k)
    seed = check_seed(seed)
    if isinstance(dataset, TextClassificationData):
        return TextClassificationData(
            splits={
                **dataset.splits,
                "train": _sample(dataset.splits["train"], k, seed),
            },
            class_names=dataset.class_names,
            seed=seed,
        )
    if isinstance(dataset, LabelledTexts):
        return _sample(dataset, k, seed)
    if isinstance(dataset, tf.data.Dataset):
        sample = _sample(_texts_from_dataset(dataset), k, seed)
        return sample.as_dataset(shuffle=True, seed=seed)
    raise ValueError(
        "`dataset` must be a `kfinetune.data.TextClassificationData`, a "
        "`kfinetune.data.LabelledTexts` or a tf.data.Dataset of "
        f"`(text, label)` pairs. Received: dataset={dataset!r}"
    )
