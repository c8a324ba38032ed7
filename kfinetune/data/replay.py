"""`replay`: new training data with a share of old examples mixed in."""

import numpy as np
import tensorflow as tf

from kfinetune import checks
from kfinetune.data.labelled_texts import check_seed


def _size(name, dataset):
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            f"`{name}` must be an unbatched `tf.data.Dataset`. "
            f"Received: {name}={dataset!r}"
        )
    size = int(dataset.cardinality())
    if size == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"`{name}` must be finite: its size sets the mix. "
            f"Received: {name}.cardinality()=INFINITE"
        )
    if size == tf.data.UNKNOWN_CARDINALITY:
        raise ValueError(
            f"The size of `{name}` is unknown (after `filter`, for example), "
            "but it sets the mix: state it with "
            "`dataset.apply(tf.data.experimental.assert_cardinality(n))`. "
            f"Received: {name}.cardinality()=UNKNOWN"
        )
    if size == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.cardinality()=0")
    return size


def _same_elements(new, old):
    new_spec, old_spec = new.element_spec, old.element_spec
    try:
        tf.nest.assert_same_structure(new_spec, old_spec)
        same = all(
            a.dtype == b.dtype and a.shape.is_compatible_with(b.shape)
            for a, b in zip(
                tf.nest.flatten(new_spec),
                tf.nest.flatten(old_spec),
                strict=True,
            )
        )
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(
            "`new` and `old` must yield elements of the same structure, "
            f"dtypes and shapes. Received: new.element_spec={new_spec}, "
            f"old.element_spec={old_spec}"
        )


def replay(new, old, ratio=0.2, seed=0):
    """Mixes a share of old training examples into new training data.

    Experience replay against forgetting: fine-tuning only on new data (new
    examples, or examples of new classes) makes a model forget what it
    learnt from the old data; training on a mix keeps the old task in the
    loss. Each pass over the result holds every element of `new` once and
    `round(len(new) * ratio / (1 - ratio))` elements of `old`, so that
    `ratio` of the result is old, at random positions. The old elements
    are drawn without replacement within a pass (cycling through `old` when
    more are needed) and a different draw is made every pass; for a given
    `seed` the sequence of passes is the same from run to run. `new` keeps
    its own order (shuffle it first, as `TextClassificationData.train`
    does). Batch the result for `fit`.

    Unlike `kfinetune.data.mix`, which labels each element with its task
    for a multi-task model, the elements keep the structure of `new` and
    `old`: one model, one loss, old and new examples alike.

    Args:
        new: an unbatched, finite `tf.data.Dataset`, e.g. of
            `(text, label)`.
        old: an unbatched, finite `tf.data.Dataset` with the same element
            structure, dtypes and shapes as `new`.
        ratio: the share of old elements in the result, in `[0, 1)`.
            Defaults to `0.2`.
        seed: seed of the draw of old elements and of their positions.
            Defaults to `0`.

    Returns:
        An unbatched `tf.data.Dataset` of known size.

    Raises:
        ValueError: `ratio` is not in `[0, 1)`, `seed` is not a
            non-negative integer, a dataset is not a finite non-empty
            `tf.data.Dataset` of known size, or the two yield different
            elements.

    Example:

    ```python
    old = kfinetune.data.tweet_sentiment(classes=2, seed=0)
    train = kfinetune.data.replay(new_texts.as_dataset(), old.train, 0.3)
    model.fit(train.batch(32), epochs=1)
    ```
    """
    checks.in_range("ratio", ratio, 0, 1)
    seed = check_seed(seed)
    new_size = _size("new", new)
    old_size = _size("old", old)
    _same_elements(new, old)
    replayed = int(round(new_size * ratio / (1 - ratio)))
    total = new_size + replayed
    # 0 takes the next element of `new`, 1 the next old one.
    choices = np.concatenate(
        [np.zeros(new_size, "int64"), np.ones(replayed, "int64")]
    )
    positions = tf.data.Dataset.from_tensor_slices(choices).shuffle(
        total, seed=seed, reshuffle_each_iteration=True
    )
    old_stream = old.shuffle(
        old_size, seed=seed + 1, reshuffle_each_iteration=True
    ).repeat()
    return tf.data.Dataset.choose_from_datasets(
        [new, old_stream], positions
    ).apply(tf.data.experimental.assert_cardinality(total))
