"""`simulate`: an active-learning loop on a labelled pool, and its curve."""

import dataclasses
import numbers
import time

import keras
import numpy as np
import tensorflow as tf

from kfinetune import checks
from kfinetune import evaluation
from kfinetune import plotting
from kfinetune.active.query import check_strategy_options
from kfinetune.active.query import query
from kfinetune.data.labelled_texts import LabelledTexts
from kfinetune.data.labelled_texts import refuse_multi_label
from kfinetune.data.labelled_texts import refuse_pairs

# The default training: `model.fit` over the labels so far.
DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 16


@dataclasses.dataclass(frozen=True)
class LearningCurve:
    """Test metrics of one simulated active-learning run, per label budget.

    Attributes:
        strategy: the query strategy.
        seed: the run's seed.
        budgets: the numbers of labels the model was trained with, one per
            round.
        accuracy: test accuracy after each round.
        macro_f1: test macro-F1 after each round.
        labelled: every pool index labelled, in the order they were
            labelled: the first `budgets[0]` are the random seed set, then
            each round's queried items.
        seconds: wall-clock seconds of each round (query, training and
            evaluation).

    Example:

    ```python
    curve = kfinetune.active.simulate(build, data.splits["train"], data.test)
    for labels, accuracy in zip(curve.budgets, curve.accuracy):
        print(labels, accuracy)
    ```
    """

    strategy: str
    seed: int
    budgets: tuple
    accuracy: tuple
    macro_f1: tuple
    labelled: np.ndarray
    seconds: tuple


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_budgets(budgets, pool_size):
    values = list(budgets) if isinstance(budgets, (list, tuple)) else None
    if (
        not values
        or not all(_is_integer(value) for value in values)
        or values[0] <= 0
        or any(b <= a for a, b in zip(values[:-1], values[1:], strict=True))
    ):
        raise ValueError(
            "`budgets` must be a non-empty list of strictly increasing "
            "positive integers (numbers of labels). "
            f"Received: budgets={budgets!r}"
        )
    if values[-1] > pool_size:
        raise ValueError(
            f"`budgets` must not exceed the pool's {pool_size} items. "
            f"Received: budgets={budgets!r}"
        )
    return tuple(int(value) for value in values)


def _default_train(epochs, batch_size):
    def train(model, labelled, seed):
        model.fit(
            labelled.as_dataset(shuffle=True, seed=seed).batch(batch_size),
            epochs=epochs,
            # The dataset shuffles itself.
            shuffle=False,
            verbose=0,
        )

    return train


def simulate(
    build,
    pool,
    test,
    budgets=(50, 100, 200, 400),
    strategy="entropy",
    warm_start=False,
    epochs=None,
    batch_size=None,
    train=None,
    passes=None,
    embed=None,
    from_logits=True,
    query_batch_size=64,
    seed=0,
    plot=None,
    verbose=1,
):
    """Simulates active learning on a labelled pool: labels → test accuracy.

    The pool's labels are hidden. Round 0 labels `budgets[0]` items drawn
    uniformly at random with `seed` (a model that has seen no labels has no
    useful uncertainty, so every strategy starts from the same random seed
    set, as in most active-learning studies); each later round queries
    `budgets[i] - budgets[i - 1]` more items with `strategy`, using the
    model of the round before, and "annotates" them by revealing their
    labels. After each round the model is trained on every label so far
    and evaluated on `test`: the learning curve is test accuracy against
    the number of labels.

    Retraining starts from the pretrained weights every round (`build()` is
    called again), unless `warm_start=True`, which keeps training the same
    model. Starting again costs a rebuild but makes each point of the
    curve the model you would get from that many labels; warm starting is
    cheaper and sees the early items more often.

    Reproducible for a seed: Keras's global generators are seeded with
    `keras.utils.set_random_seed(seed)` before every `build()` (same head
    initialisation and dropout stream), round `i`'s training shuffle and
    query use `seed + i`, and MC-dropout passes are seeded by `query`.

    Args:
        build: a zero-argument callable returning a fresh compiled Keras
            classifier that reads the pool's texts, e.g. a
            `kfinetune.presets.text_classifier` after `compile`.
        pool: a `kfinetune.data.LabelledTexts`, the pool to label.
        test: the test split: a `LabelledTexts` or a `tf.data.Dataset` of
            `(text, label)`, with the pool's classes.
        budgets: strictly increasing numbers of labels, one per round.
            Defaults to `(50, 100, 200, 400)`.
        strategy: a `kfinetune.active.query` strategy. Defaults to
            `"entropy"`.
        warm_start: keep training one model instead of rebuilding it each
            round. Defaults to `False`.
        epochs: epochs of the default training; refused with `train`.
            Defaults to `None` (10).
        batch_size: batch size of the default training; refused with
            `train`. Defaults to `None` (16).
        train: `None`, or `train(model, labelled, seed)` to train a model
            yourself on `labelled` (a `LabelledTexts` of the labels so far)
            instead of `model.fit(labelled.as_dataset(seed=seed)
            .batch(batch_size), epochs=epochs)`. Defaults to `None`.
        passes: MC-dropout passes of `"bald"` (only). Defaults to `None`
            (`query`'s default, 10).
        embed: passed to `query` for `"kcenter"` (only). Defaults to
            `None`.
        from_logits: whether the model outputs logits. Defaults to `True`.
        query_batch_size: batch size of the query's predictions. Defaults
            to `64`.
        seed: the run's seed. Defaults to `0`.
        plot: a PNG path to draw the curve to, or `None`. Defaults to
            `None`.
        verbose: `0` silent, `1` one line per round, `2` also the query's
            progress bar. Defaults to `1`.

    Returns:
        A `LearningCurve`.

    Raises:
        ValueError: before anything is built or trained, if `pool` is not
            a non-empty `LabelledTexts` of single texts with one class
            each, `test` has other classes, `budgets`
            are not increasing positive integers within the pool, or
            another argument is invalid.

    Example:

    ```python
    data = kfinetune.data.tweet_sentiment(classes=2)

    def build():
        model = kfinetune.presets.text_classifier(num_classes=2)
        model.compile(
            optimizer=keras.optimizers.AdamW(5e-5),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    curve = kfinetune.active.simulate(
        build, data.splits["train"], data.splits["test"],
        budgets=[50, 100, 200], strategy="entropy", plot="curve.png")
    ```
    """
    if not callable(build):
        raise ValueError(
            "`build` must be a zero-argument callable returning a compiled "
            f"model. Received: build={build!r}"
        )
    if not isinstance(pool, LabelledTexts) or not len(pool):
        raise ValueError(
            "`pool` must be a non-empty `kfinetune.data.LabelledTexts`: the "
            f"simulation reveals its labels. Received: pool={pool!r}"
        )
    refuse_pairs(pool, "pool", "an active-learning simulation")
    # Its scores are accuracy and macro-F1 of one class a text.
    refuse_multi_label(pool, "pool", "an active-learning simulation")
    budgets = _check_budgets(budgets, len(pool))
    passes = check_strategy_options(strategy, passes, embed)
    checks.boolean("warm_start", warm_start)
    if train is not None:
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if value is not None:
                raise ValueError(
                    f"`{name}` sets the default training, which a `train` "
                    "function replaces: pass it to your own training "
                    f"instead. Received: {name}={value!r} with train={train!r}"
                )
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    checks.positive_integer("epochs", epochs)
    checks.positive_integer("batch_size", batch_size)
    checks.positive_integer("query_batch_size", query_batch_size)
    checks.non_negative_integer("seed", seed)
    checks.one_of("verbose", verbose, (0, 1, 2))
    if train is not None and not callable(train):
        raise ValueError(
            f"`train` must be a callable or None. Received: train={train!r}"
        )
    if isinstance(test, LabelledTexts):
        if test.class_names != pool.class_names:
            raise ValueError(
                f"`test` must have the pool's classes {pool.class_names}. "
                f"Received: test with class_names={test.class_names}"
            )
        test = test.as_dataset(shuffle=False)
    elif not isinstance(test, tf.data.Dataset):
        raise ValueError(
            "`test` must be a `LabelledTexts` or a tf.data.Dataset of "
            f"(text, label). Received: test={test!r}"
        )
    own_train = train is None
    train = train or _default_train(epochs, batch_size)

    labelled = np.random.default_rng(seed).choice(
        len(pool), budgets[0], replace=False
    )
    model = None
    accuracy, macro_f1, seconds = [], [], []
    for round_index, budget in enumerate(budgets):
        start = time.perf_counter()
        if round_index:
            picked = query(
                model,
                pool.texts,
                budget - len(labelled),
                strategy=strategy,
                labelled=labelled,
                passes=passes,
                embed=embed,
                from_logits=from_logits,
                batch_size=query_batch_size,
                seed=seed + round_index,
                verbose=int(verbose == 2),
            )
            labelled = np.concatenate([labelled, picked.indices])
        if model is None or not warm_start:
            keras.utils.set_random_seed(seed)
            model = build()
            if not isinstance(model, keras.Model):
                raise ValueError(
                    "`build` must return a Keras model. Received: build "
                    f"returning {model!r}"
                )
            optimizer = getattr(model, "optimizer", None)
            unbuilt = optimizer is not None and not optimizer.built
            if own_train and model.built and unbuilt:
                # Keras would build it inside the first trace of the train
                # function, which TensorFlow then traces a second time.
                optimizer.build(model.trainable_variables)
        train(model, pool.subset(labelled), seed + round_index)
        report = evaluation.evaluate_classifier(model, test, pool.class_names)
        accuracy.append(report.accuracy)
        macro_f1.append(report.macro_f1)
        seconds.append(time.perf_counter() - start)
        if verbose:
            print(
                f"{strategy} seed {seed} round {round_index + 1}/"
                f"{len(budgets)}: {budget} labels, test accuracy "
                f"{report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f} "
                f"({seconds[-1]:.0f} s)",
                flush=True,
            )
    curve = LearningCurve(
        strategy=strategy,
        seed=seed,
        budgets=budgets,
        accuracy=tuple(accuracy),
        macro_f1=tuple(macro_f1),
        labelled=labelled.astype(np.int64),
        seconds=tuple(seconds),
    )
    if plot is not None:
        save_learning_curves(plot, [curve])
    return curve


def save_learning_curves(path, curves, metric="accuracy", title=None):
    """Draws learning curves to a PNG, one line per strategy.

    Curves of the same strategy (different seeds) are averaged: the line is
    the mean and the band ± one standard deviation (no band for one seed).

    Args:
        path: the PNG file to write.
        curves: `LearningCurve`s; those of one strategy must share
            `budgets`.
        metric: `"accuracy"` or `"macro_f1"`. Defaults to `"accuracy"`.
        title: the figure title. Defaults to `None`.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: if `curves` is empty, `metric` is unknown, or the
            curves of a strategy have different budgets.

    Example:

    ```python
    curves = [
        kfinetune.active.simulate(build, pool, test, strategy=s, seed=seed)
        for s in ("random", "entropy") for seed in (0, 1, 2)
    ]
    kfinetune.active.save_learning_curves("curves.png", curves)
    ```
    """
    checks.one_of("metric", metric, ("accuracy", "macro_f1"))
    curves = list(curves)
    if not curves or not all(isinstance(c, LearningCurve) for c in curves):
        raise ValueError(
            "`curves` must be a non-empty list of `LearningCurve`s. "
            f"Received: curves={curves!r}"
        )
    by_strategy = {}
    for curve in curves:
        by_strategy.setdefault(curve.strategy, []).append(curve)
    budgets = curves[0].budgets
    lines = {}
    for strategy, group in by_strategy.items():
        if any(curve.budgets != budgets for curve in group):
            raise ValueError(
                "Every curve must have the same `budgets`. Received: "
                f"{strategy!r} curves with budgets "
                f"{[curve.budgets for curve in group]}, not {budgets}"
            )
        values = np.array([getattr(curve, metric) for curve in group])
        stds = values.std(axis=0, ddof=1) if len(group) > 1 else None
        lines[strategy] = (values.mean(axis=0), stds)
    return plotting.save_curves(
        path,
        budgets,
        lines,
        xlabel="labelled examples",
        ylabel=f"test {metric.replace('_', '-')}",
        title=title,
    )
