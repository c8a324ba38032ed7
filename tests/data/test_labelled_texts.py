import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune.data import LabelledTexts
from kfinetune.data import TextClassificationData
from kfinetune.data import labelled_texts

CLASS_NAMES = ("negative", "neutral", "positive")


def make_texts(counts=(60, 30, 10)):
    """Unique texts `"<class> <i>"`, grouped by class."""
    texts, labels = [], []
    for label, count in enumerate(counts):
        texts += [f"{CLASS_NAMES[label]} {i}" for i in range(count)]
        labels += [label] * count
    return LabelledTexts(texts, labels, CLASS_NAMES, source="memory")


def elements(dataset):
    return [(t.decode(), int(y)) for t, y in dataset.as_numpy_iterator()]


def split_texts(data):
    return {name: set(split.texts) for name, split in data.splits.items()}


def test_stores_read_only_arrays_of_the_documented_types():
    texts = LabelledTexts(["a", "b"], [1, 0], ["x", "y"], source="s.csv")
    assert texts.texts.dtype == object
    assert texts.labels.dtype == np.int32
    assert texts.class_names == ("x", "y")
    assert texts.source == "s.csv"
    assert len(texts) == 2
    with pytest.raises(ValueError, match="read-only"):
        texts.labels[0] = 1


def test_copies_its_inputs():
    labels = np.array([0, 1])
    texts = LabelledTexts(["a", "b"], labels, ("x", "y"))
    labels[0] = 1
    assert texts.labels.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"texts": ["a", "b"], "labels": [0]},
            r"same length. Received: len\(texts\)=2, len\(labels\)=1",
        ),
        (
            {"texts": ["a", "b", "c"], "labels": [0, 1, 2]},
            r"in \[0, 2\).*Received: labels\[2\]=2",
        ),
        ({"texts": ["a"], "labels": [-1]}, r"Received: labels\[0\]=-1"),
        (
            {"texts": ["a", 3], "labels": [0, 1]},
            r"texts\[1\] is a int. Received: 3",
        ),
        (
            {"texts": [["a"], ["b"]], "labels": [0, 1]},
            r"strings, or `\(a, b\)` pairs of strings for sentence-pair "
            r"tasks. Received: texts with shape \(2, 1\)",
        ),
        (
            {"texts": [("a", 1)], "labels": [0]},
            r"texts\[0\]\[1\] is a int. Received: 1",
        ),
        (
            {"texts": ["a"], "labels": [[0]]},
            r"one column per class name \(2\). Received: labels with shape "
            r"\(1, 1\)",
        ),
        (
            {"texts": ["a"], "labels": [[0, 2]]},
            r"multi-hot matrix of 0 and 1 .*Received: labels with shape "
            r"\(1, 2\)",
        ),
        (
            {"texts": ["a"], "labels": [[[0]]]},
            r"2-D multi-hot matrix .*Received: labels with shape \(1, 1, 1\)",
        ),
        (
            {"texts": ["a"], "labels": [0.5]},
            "integer class indices. Received: labels with dtype float64",
        ),
        (
            {"texts": ["a"], "labels": [0], "class_names": ("x", "x")},
            r"duplicates. Received: class_names=\('x', 'x'\)",
        ),
        (
            {"texts": [], "labels": [], "class_names": ()},
            r"non-empty sequence of strings. Received: class_names=\(\)",
        ),
    ],
)
def test_rejects_inconsistent_fields(kwargs, match):
    kwargs = {"class_names": ("x", "y"), **kwargs}
    with pytest.raises(ValueError, match=match):
        LabelledTexts(**kwargs)


def test_class_counts_subset_and_repr():
    texts = make_texts()
    assert texts.class_counts() == {
        "negative": 60,
        "neutral": 30,
        "positive": 10,
    }
    subset = texts.subset([99, 0, 60])
    assert subset.texts.tolist() == ["positive 9", "negative 0", "neutral 0"]
    assert subset.labels.tolist() == [2, 0, 1]
    assert subset.class_names == CLASS_NAMES
    assert subset.source == "memory"
    assert repr(subset) == (
        "LabelledTexts(3 texts, class_counts={'negative': 1, 'neutral': 1, "
        "'positive': 1}, source='memory')"
    )


def test_as_dataset_yields_scalar_string_and_int32_pairs_in_order():
    texts = make_texts((2, 1, 1))
    dataset = texts.as_dataset(shuffle=False)
    assert dataset.element_spec == (
        tf.TensorSpec(shape=(), dtype=tf.string),
        tf.TensorSpec(shape=(), dtype=tf.int32),
    )
    assert elements(dataset) == [
        ("negative 0", 0),
        ("negative 1", 0),
        ("neutral 0", 1),
        ("positive 0", 2),
    ]


def test_as_dataset_of_no_texts_is_empty():
    empty = make_texts().subset([])
    assert elements(empty.as_dataset()) == []


def test_as_dataset_shuffle_is_seeded_and_reshuffles_every_epoch():
    texts = make_texts()
    dataset = texts.as_dataset(seed=3)
    first, second = elements(dataset), elements(dataset)
    assert sorted(first) == sorted(elements(texts.as_dataset(shuffle=False)))
    assert first != second
    again = texts.as_dataset(seed=3)
    assert elements(again) == first
    assert elements(again) == second
    assert elements(texts.as_dataset(seed=4)) != first


def test_split_fractions_are_stratified_disjoint_and_complete():
    texts = make_texts()
    data = texts.split(validation=0.1, test=0.2, seed=0)
    assert isinstance(data, TextClassificationData)
    assert data.class_names == CLASS_NAMES
    assert data.splits["validation"].class_counts() == {
        "negative": 6,
        "neutral": 3,
        "positive": 1,
    }
    assert data.splits["test"].class_counts() == {
        "negative": 12,
        "neutral": 6,
        "positive": 2,
    }
    assert len(data.splits["train"]) == 70
    parts = split_texts(data)
    assert not parts["train"] & parts["validation"]
    assert not parts["train"] & parts["test"]
    assert not parts["validation"] & parts["test"]
    assert parts["train"] | parts["validation"] | parts["test"] == set(
        texts.texts
    )
    for split in data.splits.values():
        for text, label in zip(split.texts, split.labels, strict=True):
            assert text.startswith(CLASS_NAMES[label])


def test_split_uses_largest_remainder_rounding():
    # 7 held-out texts of 100 have exact quotas 4.2, 2.1 and 0.7: the unit
    # left after the floors goes to the largest remainder, positive.
    data = make_texts().split(validation=7, test=0)
    assert data.splits["validation"].class_counts() == {
        "negative": 4,
        "neutral": 2,
        "positive": 1,
    }


def test_split_counts_and_no_stratification():
    data = make_texts().split(validation=5, test=0.25, stratify=False)
    assert [len(data.splits[name]) for name in ("train", "validation")] == [
        70,
        5,
    ]
    assert len(data.splits["test"]) == 25


def test_split_is_deterministic_for_a_seed():
    texts = make_texts()
    first = texts.split(seed=5)
    second = texts.split(seed=5)
    for name in ("train", "validation", "test"):
        assert first.splits[name].texts.tolist() == (
            second.splits[name].texts.tolist()
        )
    other = texts.split(seed=6)
    assert split_texts(other)["test"] != split_texts(first)["test"]


def test_split_orders_validation_and_test_randomly():
    data = make_texts().split(validation=0.3, test=0.3)
    for name in ("validation", "test"):
        labels = data.splits[name].labels
        # Grouped by class, the labels would be sorted.
        assert (np.diff(labels) < 0).any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"validation": 1.5}, r"fraction in \[0, 1\).*validation=1.5"),
        ({"test": -0.1}, r"fraction in \[0, 1\).*test=-0.1"),
        ({"validation": -3}, "must not be negative. Received: validation=-3"),
        ({"test": "10%"}, "Received: test='10%'"),
        ({"validation": True}, "Received: validation=True"),
        (
            {"validation": 0.5, "test": 0.5},
            "less than 1. Received: validation=0.5, test=0.5",
        ),
        (
            {"validation": 60, "test": 40},
            "60 \\+ 40 of the 100 texts and leave none for training",
        ),
        ({"seed": -1}, "non-negative integer. Received: seed=-1"),
    ],
)
def test_split_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_texts().split(**kwargs)


def test_data_datasets_shuffle_train_only():
    data = make_texts().split(validation=0.2, test=0.2, seed=1)
    for dataset in (data.train, data.validation, data.test):
        assert dataset.element_spec == (
            tf.TensorSpec(shape=(), dtype=tf.string),
            tf.TensorSpec(shape=(), dtype=tf.int32),
        )
    train = data.train
    assert elements(train) != elements(train)
    assert sorted(elements(train)) == sorted(
        elements(data.splits["train"].as_dataset(shuffle=False))
    )
    for name in ("validation", "test"):
        dataset = getattr(data, name)
        expected = list(
            zip(
                data.splits[name].texts.tolist(),
                data.splits[name].labels.tolist(),
                strict=True,
            )
        )
        assert elements(dataset) == expected
        assert elements(dataset) == expected


def test_data_repr_shows_counts_per_split():
    data = make_texts().split(validation=0.1, test=0.2)
    assert repr(data).splitlines() == [
        "TextClassificationData(class_names=('negative', 'neutral', "
        "'positive'), seed=0)",
        "  train:      70 (negative: 42, neutral: 21, positive: 7)",
        "  validation: 10 (negative: 6, neutral: 3, positive: 1)",
        "  test:       20 (negative: 12, neutral: 6, positive: 2)",
    ]


def test_data_rejects_missing_splits_and_other_class_names():
    texts = make_texts()
    with pytest.raises(ValueError, match=r"Received: splits with keys \["):
        TextClassificationData({"train": texts}, CLASS_NAMES)
    with pytest.raises(
        ValueError,
        match=r"`splits\['validation'\]` must be a `LabelledTexts`. "
        "Received: list",
    ):
        TextClassificationData(
            {"train": texts, "validation": [], "test": texts}, CLASS_NAMES
        )
    other = LabelledTexts(["a"], [0], ("a", "b"))
    with pytest.raises(ValueError, match=r"`splits\['test'\]` has class"):
        TextClassificationData(
            {"train": texts, "validation": texts, "test": other},
            CLASS_NAMES,
        )


def test_keras_model_fits_on_the_splits():
    texts = make_texts((40, 0, 40))
    data = texts.split(validation=0.2, test=0.2)
    vectorize = keras.layers.TextVectorization(max_tokens=50)
    vectorize.adapt(data.splits["train"].texts.tolist())
    model = keras.Sequential(
        [
            keras.Input(shape=(), dtype="string"),
            vectorize,
            keras.layers.Embedding(50, 8),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(
        data.train.batch(16),
        validation_data=data.validation.batch(16),
        epochs=2,
        verbose=0,
    )
    assert len(history.history["val_loss"]) == 2
    assert model.predict(data.test.batch(16), verbose=0).shape == (16, 3)


def test_proportional_counts_always_add_up():
    assert labelled_texts.proportional_counts(10, [2, 1]).tolist() == [7, 3]
    assert labelled_texts.proportional_counts(3, [1, 1, 1, 0]).tolist() == [
        1,
        1,
        1,
        0,
    ]
    # Equal remainders: the lower index wins.
    assert labelled_texts.proportional_counts(1, [1, 1]).tolist() == [1, 0]
    assert labelled_texts.proportional_counts(0, [0, 0]).tolist() == [0, 0]
    with pytest.raises(ValueError, match="total=2, weights=\\[0.0, 0.0\\]"):
        labelled_texts.proportional_counts(2, [0, 0])


def test_partition_draws_disjoint_parts_with_the_given_counts():
    labels = np.array([0] * 10 + [1] * 5)
    first, second = labelled_texts.partition(labels, [[2, 1], [3, 4]], 0)
    assert np.bincount(labels[first], minlength=2).tolist() == [2, 1]
    assert np.bincount(labels[second], minlength=2).tolist() == [3, 4]
    assert not set(first) & set(second)
    # Later parts do not change earlier ones.
    (alone,) = labelled_texts.partition(labels, [[2, 1]], 0)
    assert alone.tolist() == first.tolist()
    with pytest.raises(ValueError, match="need 6 examples of class 1"):
        labelled_texts.partition(labels, [[0, 3], [0, 3]], 0)


def test_infer_class_names_sorts_integers_numerically():
    infer = labelled_texts.infer_class_names
    assert infer(["10", "2", "1", "2"]) == ("1", "2", "10")
    assert infer(["-1", "1", "0"]) == ("-1", "0", "1")
    assert infer(["10", "2", "b"]) == ("10", "2", "b")
    assert infer(["pos", "neg"]) == ("neg", "pos")


TOPICS = ("arts", "music", "sport")


def topics(count=60):
    """`count` multi-label texts: "sport" is common, "arts" rare, some
    texts have no topic and some two."""
    labels = np.zeros((count, 3), np.int32)
    labels[::2, 2] = 1
    labels[::3, 1] = 1
    labels[::10, 0] = 1
    return LabelledTexts([f"text {i}" for i in range(count)], labels, TOPICS)


def test_pairs_and_multi_label_texts():
    texts = LabelledTexts(
        [("a man sleeps", "a person rests"), ("it rains", "it is dry")],
        [[1, 1, 0], [0, 0, 0]],
        TOPICS,
        source="nli.csv",
    )
    assert texts.pairs and texts.multi_label
    assert texts.texts.shape == (2, 2) and texts.labels.dtype == np.int32
    assert texts.class_counts() == {"arts": 1, "music": 1, "sport": 0}
    assert repr(texts) == (
        "LabelledTexts(2 text pairs, class_counts={'arts': 1, 'music': 1, "
        "'sport': 0}, multi_label=True, source='nli.csv')"
    )
    subset = texts.subset([1])
    assert subset.texts.tolist() == [["it rains", "it is dry"]]
    (pair, label), *_ = subset.as_dataset().as_numpy_iterator()
    assert pair == (b"it rains", b"it is dry")
    assert label.dtype == np.float32 and label.tolist() == [0, 0, 0]
    # An empty subset keeps its kind, so splits of it agree.
    empty = texts.subset([])
    assert empty.pairs and empty.multi_label
    spec = empty.as_dataset().element_spec
    assert spec[1].shape == (3,) and len(spec[0]) == 2


def test_multi_label_split_is_stratified_exact_and_deterministic():
    texts = topics()
    data = texts.split(validation=0.2, test=0.2, seed=1)
    assert data.multi_label and not data.pairs
    sizes = {name: len(split) for name, split in data.splits.items()}
    assert sizes == {"train": 36, "validation": 12, "test": 12}
    parts = [set(split.texts) for split in data.splits.values()]
    assert set.union(*parts) == set(texts.texts)
    assert sum(len(part) for part in parts) == len(texts)
    # Each class's share within one text of its quota in every split.
    totals = np.array(list(texts.class_counts().values()))
    for name, split in data.splits.items():
        counts = np.array(list(split.class_counts().values()))
        quota = totals * len(split) / len(texts)
        assert np.all(np.abs(counts - quota) <= 1), (name, counts, quota)
    again = texts.split(validation=0.2, test=0.2, seed=1)
    for name in data.splits:
        assert data.splits[name].texts.tolist() == (
            again.splits[name].texts.tolist()
        )
    other = texts.split(validation=0.2, test=0.2, seed=2)
    assert other.splits["test"].texts.tolist() != (
        data.splits["test"].texts.tolist()
    )
    unstratified = texts.split(validation=5, test=5, stratify=False)
    assert len(unstratified.splits["test"]) == 5
    assert repr(data).splitlines()[0].endswith("seed=1, multi_label=True)")


def test_iterative_partition_refuses_sizes_that_do_not_add_up():
    from kfinetune.data import iterative_stratification

    with pytest.raises(ValueError, match=r"Received: sizes=\[1, 1\]"):
        iterative_stratification.iterative_partition(
            topics(4).labels, [1, 1], seed=0
        )


def test_data_refuses_splits_of_different_kinds():
    texts = topics(4)
    single = LabelledTexts(["a"], [0], TOPICS)
    with pytest.raises(
        ValueError,
        match=r"`splits\['test'\]` has multi_label=False and the train split "
        "multi_label=True",
    ):
        TextClassificationData(
            {"train": texts, "validation": texts, "test": single}, TOPICS
        )


def test_what_needs_one_class_or_single_texts_refuses_the_others():
    from kfinetune import active
    from kfinetune import data
    from kfinetune.active import pool as pool_lib

    with pytest.raises(ValueError, match="is multi-label .* needs one class"):
        data.few_shot(topics(), k=1)
    pairs = LabelledTexts([("a", "b")], [0], TOPICS)
    with pytest.raises(ValueError, match="`pool` holds sentence pairs"):
        pool_lib.as_items(pairs)
    with pytest.raises(ValueError, match="`pool` is multi-label"):
        active.simulate(lambda: None, topics(), topics(), budgets=[10])
