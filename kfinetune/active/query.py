"""`query`: the pool items a model would learn most from, with their scores."""

import dataclasses

import numpy as np

from kfinetune import checks
from kfinetune.active import pool as pool_lib
from kfinetune.active import predictions
from kfinetune.active import strategies
from kfinetune.active.kcenter import kcenter_greedy

# Monte-Carlo dropout passes of "bald" when `passes` is not given.
DEFAULT_PASSES = 10


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """The items a query picked, most useful first.

    Attributes:
        indices: a 1-D int64 array of positions in the pool's order.
        scores: a 1-D float64 array, the score of each picked item (higher
            is more useful; see `query` for each strategy's score).
        strategy: the strategy's name.

    Example:

    ```python
    result = kfinetune.active.query(model, texts, n=10)
    for index, score in zip(result.indices, result.scores):
        print(f"{score:.3f} {texts[index]}")
    ```
    """

    indices: np.ndarray
    scores: np.ndarray
    strategy: str

    def __len__(self):
        return len(self.indices)


def _check_labelled(labelled, pool_size):
    if labelled is None:
        return np.zeros(0, dtype=np.int64)
    values = np.asarray(labelled)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            "`labelled` must be a 1-D sequence of integer pool indices. "
            f"Received: labelled={labelled!r}"
        )
    outside = values[(values < 0) | (values >= pool_size)]
    if outside.size:
        raise ValueError(
            f"`labelled` holds indices outside the pool of {pool_size} "
            f"items, e.g. {int(outside[0])}. Received: labelled={labelled!r}"
        )
    return np.unique(values.astype(np.int64))


def check_strategy_options(strategy, passes, embed):
    """Checks `strategy` and the options only some strategies use.

    Returns:
        The number of Monte-Carlo dropout passes: `passes`, or 10 for
        `"bald"` when `passes` is `None`.

    Raises:
        ValueError: `strategy` is unknown, `passes` is given for a strategy
            other than `"bald"` or is below 2, or `embed` is given for a
            strategy other than `"kcenter"` or is not callable.
    """
    checks.one_of("strategy", strategy, strategies.STRATEGIES)
    if passes is not None and strategy != "bald":
        raise ValueError(
            "`passes` sets the Monte-Carlo dropout passes of "
            f"strategy='bald' only; strategy={strategy!r} makes none. "
            f"Received: passes={passes!r}"
        )
    if strategy == "bald":
        passes = DEFAULT_PASSES if passes is None else passes
        checks.at_least("passes", passes, 2, integer=True)
    if embed is not None:
        if strategy != "kcenter":
            raise ValueError(
                "`embed` gives strategy='kcenter' its embeddings; "
                f"strategy={strategy!r} uses none. Received: embed={embed!r}"
            )
        if not callable(embed):
            raise ValueError(
                f"`embed` must be a callable or None. Received: embed={embed!r}"
            )
    return passes


def query(
    model,
    pool,
    n,
    strategy="entropy",
    labelled=None,
    passes=None,
    embed=None,
    from_logits=True,
    batch_size=64,
    seed=0,
    verbose=0,
):
    """Picks the `n` pool items worth labelling next.

    Strategies, each scoring the unlabelled items (higher is better):

    - `"random"`: a uniform draw with `seed` (the score is the uniform
      number each item drew); the baseline every other strategy must beat.
    - `"least_confidence"`: one minus the top class's probability.
    - `"margin"`: one minus the gap between the two top classes.
    - `"entropy"`: the entropy of the predicted distribution. With two
      classes these three rank the items identically.
    - `"bald"`: Bayesian active learning by disagreement with
      Monte-Carlo dropout: `passes` forward passes with `training=True`;
      the entropy of their mean prediction minus the mean of their
      entropies. Needs a model with dropout (keras-hub BERT: 0.1). Costs
      `passes` forward passes per item, run eagerly batch by batch.
    - `"kcenter"`: diversity, not uncertainty: greedy k-center (core-set)
      on embeddings of the whole pool, starting from the labelled items as
      centers; the score is each pick's distance to its nearest center.
      The embeddings are the backbone's pooled output for a keras-hub
      task on an encoder of `kfinetune.encoders` (the first token's
      hidden state for a family without a pooler), or `embed(items)` for
      any other model.

    The uncertainty strategies run the model's `predict` over the
    unlabelled items only; `"kcenter"` embeds every item, labelled ones
    included.

    Args:
        model: a trained Keras classifier, e.g. a keras-hub
            `BertTextClassifier` with its preprocessor (it takes raw
            strings); any Keras model whose outputs are per-class scores
            works with every strategy but `"kcenter"`, which then needs
            `embed`.
        pool: the unlabelled items: a list or 1-D array of strings, a
            `kfinetune.data.LabelledTexts` (labels ignored), a
            `tf.data.Dataset` of strings (read once, in order), or a NumPy
            array or dict of NumPy arrays of model inputs (rows are items).
            The returned indices are positions in this order.
        n: the number of items to pick, at most the number of unlabelled
            items.
        strategy: one of `"random"`, `"least_confidence"`, `"margin"`,
            `"entropy"`, `"bald"`, `"kcenter"`. Defaults to `"entropy"`.
        labelled: pool indices already labelled: never picked, and the
            first centers of `"kcenter"`. Defaults to `None` (none).
        passes: Monte-Carlo dropout passes of `"bald"`, at least 2; refused
            with another strategy. Defaults to `None` (10 for `"bald"`).
        embed: for `"kcenter"` only, a callable mapping the pool's items
            to an array of shape `(items, dimensions)`. Defaults to `None`
            (the backbone's pooled output).
        from_logits: whether the model outputs logits (keras-hub
            classifiers do) rather than probabilities; a single output
            column is read as a binary sigmoid. Defaults to `True`.
        batch_size: items per forward call. Defaults to `64`.
        seed: the seed of `"random"`, of the dropout masks of `"bald"` and
            of the first `"kcenter"` pick when nothing is labelled; the
            same seed gives the same result. Defaults to `0`.
        verbose: `0` for silence, `1` for Keras's progress bar over the
            pool's batches. Defaults to `0`.

    Returns:
        A `QueryResult`, highest score first (ties: lower index first;
        `"kcenter"`: in pick order).

    Raises:
        ValueError: before any prediction, if `strategy` is unknown, `n` is
            not a positive integer or exceeds the unlabelled items,
            `labelled` holds indices outside the pool, `passes` < 2,
            `passes` or `embed` is given for a strategy that does not use
            it, `"bald"` meets a layer that acts in training other than
            dropout (BatchNormalization, `Mixup`), another argument is
            invalid, or the pool is malformed or empty. After prediction, if the
            outputs are not probabilities with `from_logits=False`, BALD's
            passes are identical (no dropout), or `"kcenter"` has neither a
            pooled output nor `embed`.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    # ... fine-tune on the labelled tweets, then:
    result = kfinetune.active.query(
        model, unlabelled_texts, n=50, strategy="entropy", labelled=done)
    to_annotate = [unlabelled_texts[i] for i in result.indices]
    ```
    """
    checks.positive_integer("n", n)
    passes = check_strategy_options(strategy, passes, embed)
    checks.positive_integer("batch_size", batch_size)
    checks.non_negative_integer("seed", seed)
    checks.boolean("from_logits", from_logits)
    checks.one_of("verbose", verbose, (0, 1))
    if strategy == "bald":
        predictions.check_mc_dropout_model(model)
    items = pool_lib.as_items(pool)
    pool_size = pool_lib.size(items)
    labelled = _check_labelled(labelled, pool_size)
    candidates = np.setdiff1d(np.arange(pool_size), labelled)
    if n > len(candidates):
        raise ValueError(
            f"`n` must be at most the number of unlabelled items: the pool "
            f"has {pool_size} items, {len(labelled)} of them labelled, so "
            f"{len(candidates)} can be picked. Received: n={n}"
        )
    if strategy == "kcenter":
        vectors = predictions.embeddings(
            model, items, embed, batch_size, verbose
        )
        indices, scores = kcenter_greedy(
            vectors, n, centers=labelled, candidates=candidates, seed=seed
        )
        return QueryResult(indices, scores, strategy)
    if strategy == "random":
        scores = np.random.default_rng(seed).random(len(candidates))
    elif strategy == "bald":
        scores = strategies.bald(
            predictions.mc_dropout_probabilities(
                model,
                pool_lib.take(items, candidates),
                passes,
                from_logits,
                batch_size,
                seed,
                verbose,
            )
        )
    else:
        scores = strategies.UNCERTAINTY_SCORES[strategy](
            predictions.probabilities(
                model,
                pool_lib.take(items, candidates),
                from_logits,
                batch_size,
                verbose,
            )
        )
    order = np.argsort(-scores, kind="stable")[:n]
    return QueryResult(
        candidates[order].astype(np.int64),
        scores[order].astype(np.float64),
        strategy,
    )
