"""`LabelledTexts` and `TextClassificationData`: texts (or pairs of
texts), their labels (one class each, or any number of classes each), and
splits."""

import dataclasses
import numbers
import re

import numpy as np
import tensorflow as tf

from kfinetune import checks
from kfinetune.data.iterative_stratification import iterative_partition

SPLITS = ("train", "validation", "test")

_INTEGER = re.compile(r"-?[0-9]+")


def check_seed(seed):
    """Checks that `seed` is a non-negative integer and returns it as `int`.

    Args:
        seed: the value to check.

    Returns:
        `seed` as a Python `int`.

    Raises:
        ValueError: if `seed` is not a non-negative integer.

    Example:

    ```python
    seed = kfinetune.data.labelled_texts.check_seed(42)
    ```
    """
    checks.non_negative_integer("seed", seed)
    return int(seed)


def infer_class_names(labels):
    """Sorted unique label strings, numerically when all are integers.

    `"2"` sorts before `"10"` when every label is an integer string, so the
    class index of an integer label is its rank rather than a lexical
    accident; any other set of labels sorts lexicographically.

    Args:
        labels: an iterable of label strings.

    Returns:
        A tuple of the unique labels, sorted.

    Example:

    ```python
    kfinetune.data.labelled_texts.infer_class_names(["10", "2", "2"])
    # ("2", "10")
    ```
    """
    unique = set(labels)
    if all(_INTEGER.fullmatch(label) for label in unique):
        return tuple(sorted(unique, key=lambda label: (int(label), label)))
    return tuple(sorted(unique))


def proportional_counts(total, weights):
    """Splits `total` into integers proportional to `weights`.

    Uses largest-remainder rounding: every share is the floor of its exact
    quota, and the units still missing go to the largest fractional parts
    (ties to the lower index), so the shares always add up to `total`.

    Args:
        total: a non-negative integer.
        weights: non-negative numbers, not all zero.

    Returns:
        A 1-D int64 array of the shares, in the order of `weights`.

    Raises:
        ValueError: if `total` is positive and every weight is zero.

    Example:

    ```python
    kfinetune.data.labelled_texts.proportional_counts(10, [2, 1])
    # array([7, 3])
    ```
    """
    weights = np.asarray(weights, dtype=np.float64)
    if total == 0:
        return np.zeros(len(weights), dtype=np.int64)
    if not weights.sum() > 0:
        raise ValueError(
            "`weights` must not all be zero when `total` is positive. "
            f"Received: total={total}, weights={weights.tolist()}"
        )
    quotas = total * weights / weights.sum()
    counts = np.floor(quotas).astype(np.int64)
    missing = total - int(counts.sum())
    # A stable sort on the negated remainder gives the lower index on ties.
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[:missing]] += 1
    return counts


def partition(labels, counts, seed):
    """Draws disjoint random parts with a given number of each class.

    Each class's indices are permuted once; the parts take consecutive runs
    of that permutation in order, and each part is shuffled at the end.
    A part's membership therefore depends only on the seed and on the
    counts of the parts before it, never on the parts after it.

    Args:
        labels: a 1-D integer array of class indices.
        counts: an integer array of shape `(num_parts, num_classes)`: how
            many examples of each class go to each part.
        seed: a non-negative integer.

    Returns:
        A list of `num_parts` 1-D arrays of indices into `labels`, each in
        a seeded random order.

    Raises:
        ValueError: if the parts need more examples of a class than there
            are.

    Example:

    ```python
    test, train = kfinetune.data.labelled_texts.partition(
        labels, [[5, 5], [20, 20]], seed=0)
    ```
    """
    counts = np.asarray(counts, dtype=np.int64)
    rng = np.random.default_rng(seed)
    chunks = [[] for _ in counts]
    for index in range(counts.shape[1]):
        members = rng.permutation(np.flatnonzero(labels == index))
        bounds = np.cumsum(counts[:, index])
        if bounds[-1] > len(members):
            raise ValueError(
                f"The parts need {bounds[-1]} examples of class {index} but "
                f"there are only {len(members)}. "
                f"Received: counts={counts.tolist()}"
            )
        for part, run in enumerate(np.split(members, bounds)[:-1]):
            chunks[part].append(run)
    return [rng.permutation(np.concatenate(runs)) for runs in chunks]


def split_by_counts(texts, counts, seed, labels=None):
    """Splits `texts` into train, validation and test with `partition`.

    Args:
        texts: a `LabelledTexts`.
        counts: three rows of per-class counts, in draw order: test,
            validation, train.
        seed: a non-negative integer.
        labels: the labels to stratify by. Defaults to `texts.labels`.

    Returns:
        A `TextClassificationData` seeded with `seed`.
    """
    labels = texts.labels if labels is None else labels
    test, validation, train = partition(labels, counts, seed)
    return TextClassificationData(
        splits={
            "train": texts.subset(train),
            "validation": texts.subset(validation),
            "test": texts.subset(test),
        },
        class_names=texts.class_names,
        seed=seed,
    )


def _resolve_size(name, value, total):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"`{name}` must be a fraction in [0, 1) or an integer number of "
            f"examples. Received: {name}={value!r}"
        )
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise ValueError(
                f"`{name}` must not be negative. Received: {name}={value!r}"
            )
        return int(value)
    if not 0 <= value < 1:
        raise ValueError(
            f"`{name}` must be a fraction in [0, 1) or an integer number of "
            f"examples. Received: {name}={value!r}"
        )
    return int(round(value * total))


def refuse_pairs(texts, name, purpose, hint=""):
    """Raises when the `LabelledTexts` `texts` holds sentence pairs, which
    `purpose` (e.g. `"masked language modelling"`) cannot take; `hint`
    says what to do instead.

    Args:
        texts: the value received; anything but a `LabelledTexts` of
            pairs passes.
        name: the argument's name, for the message.
        purpose: what takes single texts only, for the message.
        hint: what to do instead. Defaults to `""`.

    Raises:
        ValueError: if `texts` is a `LabelledTexts` of sentence pairs.

    Example:

    ```python
    kfinetune.data.labelled_texts.refuse_pairs(pool, "pool", "a query")
    ```
    """
    if isinstance(texts, LabelledTexts) and texts.pairs:
        raise ValueError(
            f"`{name}` holds sentence pairs, and {purpose} takes single "
            f"texts.{' ' + hint if hint else ''} Received: {name}={texts!r}"
        )


def refuse_multi_label(texts, name, purpose):
    """Raises when the `LabelledTexts` `texts` is multi-label, which
    `purpose` (e.g. `"a draw of k examples per class"`) cannot take.

    Args:
        texts: the value received; anything but a multi-label
            `LabelledTexts` passes.
        name: the argument's name, for the message.
        purpose: what needs one class a text, for the message.

    Raises:
        ValueError: if `texts` is a multi-label `LabelledTexts`.

    Example:

    ```python
    kfinetune.data.labelled_texts.refuse_multi_label(
        texts, "dataset", "a draw of `k` examples per class")
    ```
    """
    if isinstance(texts, LabelledTexts) and texts.multi_label:
        raise ValueError(
            f"`{name}` is multi-label (a text may have several classes or "
            f"none), and {purpose} needs one class per text. "
            f"Received: {name}={texts!r}"
        )


def _check_texts(given):
    texts = np.array(given, dtype=object)
    if texts.ndim not in (1, 2) or (texts.ndim == 2 and texts.shape[1] != 2):
        raise ValueError(
            "`texts` must hold strings, or `(a, b)` pairs of strings for "
            f"sentence-pair tasks. Received: texts with shape {texts.shape}"
        )
    for index, text in np.ndenumerate(texts):
        if not isinstance(text, str):
            at = "][".join(str(i) for i in index)
            raise ValueError(
                f"`texts` must hold strings; texts[{at}] is a "
                f"{type(text).__name__}. Received: {text!r}"
            )
    return texts


def _check_labels(given, num_classes):
    labels = np.array(given)
    if labels.ndim == 2:
        if labels.shape[1] != num_classes or (
            labels.size and not np.isin(labels, (0, 1)).all()
        ):
            raise ValueError(
                "Multi-label `labels` must be a multi-hot matrix of 0 and 1 "
                f"with one column per class name ({num_classes}). Received: "
                f"labels with shape {labels.shape}"
            )
        return labels.astype(np.int32)
    if labels.ndim != 1:
        raise ValueError(
            "`labels` must be 1-D class indices, or a 2-D multi-hot matrix "
            f"for multi-label texts. Received: labels with shape {labels.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "`labels` must be integer class indices. "
            f"Received: labels with dtype {labels.dtype}"
        )
    outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if outside.size:
        first = outside[0]
        raise ValueError(
            f"`labels` must be in [0, {num_classes}) for {num_classes} class "
            f"names; labels[{first}] is not. "
            f"Received: labels[{first}]={labels[first]}"
        )
    return labels.astype(np.int32)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LabelledTexts:
    """Texts, or pairs of texts, with their class labels.

    Single texts or sentence pairs (`[CLS] a [SEP] b [SEP]`: natural
    language inference, paraphrase), each with one class, or with any
    number of classes (multi-label: a sigmoid per class). Which it is
    follows from the shapes of `texts` and `labels`; `pairs` and
    `multi_label` say it.

    The arrays are copied and made read-only, so a `LabelledTexts` can be
    shared (the loaders cache them) without one user changing another's.

    Args:
        texts: a sequence of Python strings, stored as a 1-D object array;
            or of `(a, b)` string pairs, stored as an `(n, 2)` object array.
        labels: a 1-D sequence of class indices into `class_names`, one
            class per text; or a multi-hot matrix of 0 and 1, one row per
            text and one column per class name (multi-label: a row may
            have several ones, or none). Stored as int32.
        class_names: the class names, in label order.
        source: where the texts came from, e.g. a file path. Defaults to
            `""`.

    Raises:
        ValueError: if `texts` holds something other than strings or pairs
            of strings, the lengths of `texts` and `labels` differ, a label
            is not an integer in `[0, len(class_names))` (or a multi-hot row
            is not 0s and 1s, one per class), or `class_names` is empty or
            has duplicates.

    Example:

    ```python
    texts = kfinetune.data.LabelledTexts(
        texts=["great", "awful", "fine"],
        labels=[1, 0, 1],
        class_names=("negative", "positive"),
    )
    data = texts.split(validation=1, test=1)
    model.fit(data.train.batch(32), validation_data=data.validation.batch(32))

    pairs = kfinetune.data.LabelledTexts(
        texts=[("a man sleeps", "a person rests"), ("it rains", "it is dry")],
        labels=[[1, 0], [0, 1]],  # multi-hot: one column per class
        class_names=("entailment", "contradiction"),
    )
    ```
    """

    texts: np.ndarray
    labels: np.ndarray
    class_names: tuple
    source: str = ""

    def __post_init__(self):
        class_names = tuple(self.class_names)
        if not class_names or not all(
            isinstance(name, str) for name in class_names
        ):
            raise ValueError(
                "`class_names` must be a non-empty sequence of strings. "
                f"Received: class_names={self.class_names!r}"
            )
        if len(set(class_names)) != len(class_names):
            raise ValueError(
                "`class_names` must not contain duplicates. "
                f"Received: class_names={self.class_names!r}"
            )
        texts = _check_texts(self.texts)
        labels = _check_labels(self.labels, len(class_names))
        if len(labels) != len(texts):
            raise ValueError(
                "`texts` and `labels` must have the same length. "
                f"Received: len(texts)={len(texts)}, "
                f"len(labels)={len(labels)}"
            )
        texts.flags.writeable = False
        labels.flags.writeable = False
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "source", str(self.source))

    @property
    def pairs(self):
        """Whether the texts are `(a, b)` sentence pairs."""
        return self.texts.ndim == 2

    @property
    def multi_label(self):
        """Whether the labels are multi-hot rows (any number of classes a
        text) rather than one class index a text."""
        return self.labels.ndim == 2

    def __len__(self):
        return len(self.texts)

    def __repr__(self):
        source = f", source={self.source!r}" if self.source else ""
        kind = "text pairs" if self.pairs else "texts"
        multi = ", multi_label=True" if self.multi_label else ""
        return (
            f"LabelledTexts({len(self)} {kind}, "
            f"class_counts={self.class_counts()}{multi}{source})"
        )

    def class_counts(self):
        """The number of texts of each class (multi-label: the number of
        texts that have it, so the counts may add up to more or fewer than
        the texts).

        Returns:
            A dict mapping each class name, in label order, to its count.

        Example:

        ```python
        texts.class_counts()  # {"negative": 1, "positive": 2}
        ```
        """
        if self.multi_label:
            counts = self.labels.sum(axis=0)
        else:
            counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {
            name: int(count)
            for name, count in zip(self.class_names, counts, strict=True)
        }

    def subset(self, indices):
        """The texts at `indices`, in that order.

        Args:
            indices: a 1-D sequence of integer indices.

        Returns:
            A `LabelledTexts` with the same `class_names` and `source`.

        Example:

        ```python
        first_ten = texts.subset(range(10))
        ```
        """
        indices = np.asarray(indices, dtype=np.int64)
        return LabelledTexts(
            texts=self.texts[indices],
            labels=self.labels[indices],
            class_names=self.class_names,
            source=self.source,
        )

    def as_dataset(self, shuffle=True, seed=0):
        """An unbatched `tf.data.Dataset` of `(text, label)` elements.

        Sentence pairs come as `((a, b), label)`: keras-hub's text
        classifier preprocessors pack a tuple of two string tensors as
        `[CLS] a [SEP] b [SEP]`, so `fit` takes the batches as they are.
        Multi-label targets come as float32 multi-hot vectors, what
        `keras.losses.BinaryCrossentropy` takes.

        Args:
            shuffle: whether to shuffle. The buffer holds every example, so
                the shuffle is uniform, and the order changes every epoch
                while staying the same from run to run for a given `seed`.
                Defaults to `True`.
            seed: the shuffle seed. Defaults to `0`.

        Returns:
            A `tf.data.Dataset` whose elements are a scalar `tf.string` text
            (for pairs, a tuple of two) and a scalar `tf.int32` label (for
            multi-label texts, a `(num_classes,)` `tf.float32` vector).

        Example:

        ```python
        model.fit(texts.as_dataset(seed=1).batch(32), epochs=3)
        ```
        """
        seed = check_seed(seed)
        if self.pairs:
            texts = tuple(
                tf.constant(self.texts[:, i].tolist(), dtype=tf.string)
                for i in range(2)
            )
        else:
            texts = tf.constant(self.texts.tolist(), dtype=tf.string)
        dtype = tf.float32 if self.multi_label else tf.int32
        labels = tf.constant(self.labels, dtype=dtype)
        dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
        if shuffle:
            dataset = dataset.shuffle(
                max(len(self), 1), seed=seed, reshuffle_each_iteration=True
            )
        return dataset

    def split(self, validation=0.1, test=0.1, stratify=True, seed=0):
        """Splits the texts into disjoint train, validation and test sets.

        A float is a fraction of all texts (rounded to the nearest integer),
        an integer an absolute number of texts; train gets the rest. With
        `stratify=True` every split has the class proportions of the whole,
        rounded by largest remainder so the split sizes are exact.
        Multi-label texts are stratified by iterative stratification
        (`kfinetune.data.iterative_stratification.iterative_partition`):
        each class's share is kept as nearly as the texts' other classes
        allow, rare classes first, and the split sizes are exact too.

        Args:
            validation: the validation size, a fraction in `[0, 1)` or a
                number of texts. Defaults to `0.1`.
            test: the test size, a fraction in `[0, 1)` or a number of
                texts. Defaults to `0.1`.
            stratify: whether to keep the class proportions in each split.
                Defaults to `True`.
            seed: the seed of the split and of the train shuffle. The same
                seed gives the same splits. Defaults to `0`.

        Returns:
            A `TextClassificationData`.

        Raises:
            ValueError: if a size is negative, a fraction is not below 1,
                the fractions add up to 1 or more, or the sizes leave no
                texts for training.

        Example:

        ```python
        data = kfinetune.data.from_csv("reviews.csv", "text", "label").split(
            validation=0.1, test=0.2, seed=1)
        print(data)
        ```
        """
        seed = check_seed(seed)
        total = len(self)
        num_validation = _resolve_size("validation", validation, total)
        num_test = _resolve_size("test", test, total)
        fractions = [
            v for v in (validation, test) if not isinstance(v, numbers.Integral)
        ]
        if sum(fractions) >= 1:
            raise ValueError(
                "`validation` and `test` fractions must add up to less than "
                f"1. Received: validation={validation!r}, test={test!r}"
            )
        if num_validation + num_test >= total:
            raise ValueError(
                f"`validation` and `test` take {num_validation} + {num_test} "
                f"of the {total} texts and leave none for training. "
                f"Received: validation={validation!r}, test={test!r}"
            )
        if stratify and self.multi_label:
            test, validation, train = iterative_partition(
                self.labels,
                [num_test, num_validation, total - num_test - num_validation],
                seed,
            )
            return TextClassificationData(
                splits={
                    "train": self.subset(train),
                    "validation": self.subset(validation),
                    "test": self.subset(test),
                },
                class_names=self.class_names,
                seed=seed,
            )
        if stratify:
            labels = self.labels
            class_sizes = np.bincount(labels, minlength=len(self.class_names))
        else:
            labels = np.zeros(total, dtype=np.int32)
            class_sizes = np.array([total])
        held_out = proportional_counts(num_validation + num_test, class_sizes)
        test_counts = proportional_counts(num_test, held_out)
        return split_by_counts(
            self,
            [test_counts, held_out - test_counts, class_sizes - held_out],
            seed,
            labels=labels,
        )


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class TextClassificationData:
    """Train, validation and test splits for text classification.

    `train` reshuffles every epoch (seeded); `validation` and `test` keep
    their order, which is already a seeded random order.

    Args:
        splits: a dict mapping `"train"`, `"validation"` and `"test"` to
            `LabelledTexts` that share `class_names`, and are all single
            texts or all pairs, all single-label or all multi-label.
        class_names: the class names, in label order.
        seed: the seed of the train shuffle. Defaults to `0`.

    Raises:
        ValueError: if a split is missing or unknown, is not a
            `LabelledTexts`, has other class names, or differs from the
            train split in `pairs` or `multi_label`.

    Example:

    ```python
    data = kfinetune.data.tweet_sentiment(classes=2)
    print(data)
    model.fit(data.train.batch(32), validation_data=data.validation.batch(32))
    ```
    """

    splits: dict
    class_names: tuple
    seed: int = 0

    def __post_init__(self):
        if set(self.splits) != set(SPLITS):
            raise ValueError(
                f"`splits` must have exactly the keys {list(SPLITS)}. "
                f"Received: splits with keys {list(self.splits)}"
            )
        class_names = tuple(self.class_names)
        for name in SPLITS:
            split = self.splits[name]
            if not isinstance(split, LabelledTexts):
                raise ValueError(
                    f"`splits[{name!r}]` must be a `LabelledTexts`. "
                    f"Received: {type(split).__name__}"
                )
            if split.class_names != class_names:
                raise ValueError(
                    f"`splits[{name!r}]` has class names "
                    f"{split.class_names}, not {class_names}. "
                    f"Received: class_names={self.class_names!r}"
                )
            train = self.splits["train"]
            for kind in ("pairs", "multi_label"):
                if getattr(split, kind) != getattr(train, kind):
                    raise ValueError(
                        f"`splits[{name!r}]` has {kind}="
                        f"{getattr(split, kind)} and the train split "
                        f"{kind}={getattr(train, kind)}: every split must be "
                        f"of one kind. Received: splits[{name!r}]={split!r}"
                    )
        object.__setattr__(
            self, "splits", {name: self.splits[name] for name in SPLITS}
        )
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "seed", check_seed(self.seed))

    @property
    def pairs(self):
        """Whether the texts are `(a, b)` sentence pairs."""
        return self.splits["train"].pairs

    @property
    def multi_label(self):
        """Whether the labels are multi-hot (any number of classes a text)."""
        return self.splits["train"].multi_label

    @property
    def train(self):
        """The train split, reshuffled every epoch, as a `tf.data.Dataset`."""
        return self.splits["train"].as_dataset(shuffle=True, seed=self.seed)

    @property
    def validation(self):
        """The validation split, in a fixed order, as a `tf.data.Dataset`."""
        return self.splits["validation"].as_dataset(shuffle=False)

    @property
    def test(self):
        """The test split, in a fixed order, as a `tf.data.Dataset`."""
        return self.splits["test"].as_dataset(shuffle=False)

    def __repr__(self):
        width = max(len(name) for name in SPLITS) + 1
        digits = max(len(str(len(split))) for split in self.splits.values())
        kinds = "".join(
            f", {kind}=True"
            for kind in ("pairs", "multi_label")
            if getattr(self, kind)
        )
        lines = [
            f"TextClassificationData(class_names={self.class_names}, "
            f"seed={self.seed}{kinds})"
        ]
        for name, split in self.splits.items():
            counts = ", ".join(
                f"{label}: {count}"
                for label, count in split.class_counts().items()
            )
            lines.append(
                f"  {name + ':':{width}} {len(split):{digits}} ({counts})"
            )
        return "\n".join(lines)
