"""`random_deletion` and `random_swap`: word edits that need no synonyms."""

import tensorflow as tf

from kfinetune.data.augment import augmentation


class RandomDeletion(augmentation.TextAugmentation):
    """Deletes each word with probability `rate`; see `random_deletion`."""

    def augment_text(self, text, seed):
        words = augmentation.split_words(text)
        scores = tf.random.stateless_uniform(tf.shape(words), seed)
        keep = scores >= self.rate
        # EDA keeps one random word rather than return an empty text: the
        # one with the highest score (the extra entry makes an empty text
        # work).
        best = tf.argmax(tf.concat([scores, [-1.0]], 0), output_type=tf.int32)
        lone = tf.logical_and(
            tf.logical_not(tf.reduce_any(keep)),
            tf.equal(tf.range(tf.size(words)), best),
        )
        return augmentation.join_words(
            tf.boolean_mask(words, tf.logical_or(keep, lone))
        )


def random_deletion(rate=0.1, seed=None):
    """Deletes each word of a text with probability `rate`.

    The random deletion of EDA (Wei and Zou, 2019). Words are split on
    whitespace and joined with single spaces; a text never loses all its
    words (one random word is kept).

    Args:
        rate: the probability of deleting each word, in `[0, 1]`.
            Defaults to `0.1`.
        seed: a non-negative integer, or `None` for a non-reproducible
            stream; see `kfinetune.data.augment.Augmentation`. Defaults to
            `None`.

    Returns:
        An `Augmentation` to pass to `tf.data.Dataset.map` over texts or
        `(text, label)` pairs.

    Example:

    ```python
    delete = kfinetune.data.augment.random_deletion(rate=0.1, seed=0)
    train = data.train.map(delete).batch(32)
    ```
    """
    return RandomDeletion(rate, seed)


class RandomSwap(augmentation.TextAugmentation):
    """Swaps pairs of words; see `random_swap`."""

    def augment_text(self, text, seed):
        words = augmentation.split_words(text)
        length = tf.size(words)
        seeds = tf.random.experimental.stateless_split(seed, 2)
        count = tf.where(
            length >= 2, augmentation.edit_count(self.rate, length), 0
        )
        first = augmentation.uniform_integers(
            seeds[0], [count], tf.maximum(length, 1)
        )
        # A second position among the others: never a swap with itself.
        second = augmentation.uniform_integers(
            seeds[1], [count], tf.maximum(length - 1, 1)
        )
        second += tf.cast(second >= first, tf.int32)

        def swap(step, order):
            i, j = first[step], second[step]
            order = tf.tensor_scatter_nd_update(
                order, [[i], [j]], tf.stack([order[j], order[i]])
            )
            return step + 1, order

        _, order = tf.while_loop(
            lambda step, _: step < count, swap, (0, tf.range(length))
        )
        return augmentation.join_words(tf.gather(words, order))


def random_swap(rate=0.1, seed=None):
    """Swaps two random words of a text, `max(1, ⌊rate · n⌋)` times.

    The random swap of EDA (Wei and Zou, 2019), for a text of `n` words:
    each swap exchanges two different random positions (the same pair can
    come up twice and undo itself). Texts of one word are unchanged; words
    are split on whitespace and joined with single spaces.

    Args:
        rate: the number of swaps as a fraction of the words, in `[0, 1]`;
            any positive rate swaps at least once, and 0 leaves the texts
            unchanged. Defaults to `0.1`.
        seed: a non-negative integer, or `None` for a non-reproducible
            stream; see `kfinetune.data.augment.Augmentation`. Defaults to
            `None`.

    Returns:
        An `Augmentation` to pass to `tf.data.Dataset.map` over texts or
        `(text, label)` pairs.

    Example:

    ```python
    swap = kfinetune.data.augment.random_swap(rate=0.1, seed=0)
    train = data.train.map(swap).batch(32)
    ```
    """
    return RandomSwap(rate, seed)
