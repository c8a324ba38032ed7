"""`as_items`: what a pool of unlabelled items is, and how to index it.

A pool is read once into memory so that the indices a query returns refer
to a fixed order: the order of the texts or rows the user passed.
"""

import numpy as np
import tensorflow as tf

from kfinetune.data.labelled_texts import LabelledTexts
from kfinetune.data.labelled_texts import refuse_pairs

POOL_KINDS = (
    "a list or 1-D array of strings, a `kfinetune.data.LabelledTexts` (its "
    "labels are ignored), a tf.data.Dataset of strings (unbatched or "
    "batched), or a NumPy array or dict of NumPy arrays of model inputs "
    "(one item per row)"
)


def _texts_from_dataset(dataset):
    spec = dataset.element_spec
    if (
        not isinstance(spec, tf.TensorSpec)
        or spec.dtype != tf.string
        or spec.shape.rank not in (0, 1)
    ):
        raise ValueError(
            "A tf.data pool must hold strings only (not `(text, label)` "
            "pairs), unbatched or batched. "
            f"Received: pool with element_spec={spec!r}"
        )
    if spec.shape.rank == 1:
        dataset = dataset.unbatch()
    return [text.decode("utf-8") for text in dataset.as_numpy_iterator()]


def _check_texts(texts):
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"Every text of the pool must be a string; pool[{index}] is "
                f"a {type(text).__name__}. Received: pool[{index}]={text!r}"
            )
    return np.array(texts, dtype=object)


def as_items(pool):
    """Reads a pool into an indexable form, in the pool's order.

    Args:
        pool: a list or 1-D array of strings, a
            `kfinetune.data.LabelledTexts` (its labels are ignored), a
            `tf.data.Dataset` of strings (unbatched or batched: it is read
            once, in its iteration order), or, for models that take other
            inputs, a NumPy array or a dict of NumPy arrays whose rows are
            the items.

    Returns:
        A 1-D object array of texts, a NumPy array, or a dict of NumPy
        arrays, with at least one item.

    Raises:
        ValueError: if `pool` is of none of these kinds, holds a non-string
            text or sentence pairs, has arrays of different lengths, or is
            empty.

    Example:

    ```python
    items = kfinetune.active.pool.as_items(["so good", "so bad"])
    ```
    """
    if isinstance(pool, LabelledTexts):
        # A query scores single texts; a pair's two texts are no item.
        refuse_pairs(pool, "pool", "an active-learning pool")
        items = np.array(pool.texts, dtype=object)
    elif isinstance(pool, tf.data.Dataset):
        items = _check_texts(_texts_from_dataset(pool))
    elif isinstance(pool, dict):
        if not pool:
            raise ValueError(
                "A dict pool must hold at least one array. "
                f"Received: pool={pool!r}"
            )
        items = {key: np.asarray(value) for key, value in pool.items()}
        lengths = {
            key: (len(value) if value.ndim else None)
            for key, value in items.items()
        }
        if None in lengths.values() or len(set(lengths.values())) != 1:
            raise ValueError(
                "Every array of a dict pool must have one row per item, the "
                f"same number in each. Received: pool with lengths {lengths}"
            )
    elif isinstance(pool, np.ndarray) and pool.dtype.kind not in "OUS":
        if pool.ndim == 0:
            raise ValueError(
                f"The pool must be {POOL_KINDS}. Received: pool={pool!r}"
            )
        items = pool
    elif isinstance(pool, (list, tuple, np.ndarray)):
        if isinstance(pool, np.ndarray) and pool.ndim != 1:
            raise ValueError(
                "A pool of texts must be 1-D. "
                f"Received: pool with shape {pool.shape}"
            )
        items = _check_texts(list(pool))
    else:
        raise ValueError(
            f"The pool must be {POOL_KINDS}. Received: pool={pool!r}"
        )
    if size(items) == 0:
        raise ValueError(
            f"The pool must hold at least one item. Received: pool={pool!r}"
        )
    return items


def size(items):
    """The number of items of a pool read by `as_items`."""
    if isinstance(items, dict):
        return len(next(iter(items.values())))
    return len(items)


def take(items, indices):
    """The items at `indices`, in that order, in the same form."""
    if isinstance(items, dict):
        return {key: value[indices] for key, value in items.items()}
    return items[indices]


def dataset(items, batch_size):
    """A batched `tf.data.Dataset` of the items, in order."""
    if isinstance(items, np.ndarray) and items.dtype == object:
        items = tf.constant(items.tolist(), dtype=tf.string)
    return tf.data.Dataset.from_tensor_slices(items).batch(batch_size)
