"""`synonym_replacement` and `random_insertion`: word edits that draw from
a `SynonymTable`."""

import tensorflow as tf

from kfinetune.data.augment import augmentation
from kfinetune.data.augment.synonyms import SynonymTable

# Punctuation around a word ("good!", "(great)") is kept around its
# synonym and left out of the lookup.
_EDGE_PUNCTUATION = r"^[[:punct:]]+|[[:punct:]]+$"
_PREFIX = r"^([[:punct:]]*).*$"
_SUFFIX = r"^.*?([[:punct:]]*)$"


class _TensorSynonyms:
    """A `SynonymTable` as TensorFlow lookups, built once on the host."""

    def __init__(self, synonyms):
        if not isinstance(synonyms, SynonymTable):
            if not isinstance(synonyms, dict):
                raise ValueError(
                    "`synonyms` must be a `kfinetune.data.augment."
                    "SynonymTable` (see `embedding_synonyms`) or a dict of "
                    f"word to synonyms. Received: synonyms={synonyms!r}"
                )
            synonyms = SynonymTable(synonyms)
        if not len(synonyms):
            raise ValueError(
                "`synonyms` must hold at least one word. "
                f"Received: synonyms={synonyms!r}"
            )
        self.table = synonyms
        keys = list(synonyms.synonyms)
        rows = list(synonyms.synonyms.values())
        with tf.device("CPU:0"):
            self.index = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(keys), tf.range(len(keys), dtype=tf.int64)
                ),
                default_value=-1,
            )
            self.neighbours = tf.RaggedTensor.from_row_lengths(
                tf.constant([word for row in rows for word in row]),
                tf.constant([len(row) for row in rows], dtype=tf.int64),
            )

    def rows(self, words):
        """Each word's row in the table, -1 for words without synonyms."""
        keys = tf.strings.lower(
            tf.strings.regex_replace(words, _EDGE_PUNCTUATION, ""),
            encoding="utf-8",
        )
        return self.index.lookup(keys)

    def draw(self, rows, seed):
        """One random synonym for each row (rows must be ≥ 0)."""
        starts = tf.gather(self.neighbours.row_splits, rows)
        counts = tf.gather(self.neighbours.row_lengths(), rows)
        scores = tf.random.stateless_uniform(tf.shape(rows), seed)
        picks = tf.cast(scores * tf.cast(counts, tf.float32), tf.int64)
        picks = tf.minimum(picks, counts - 1)
        return tf.gather(self.neighbours.flat_values, starts + picks)


class _SynonymAugmentation(augmentation.TextAugmentation):
    """A text augmentation that draws words from a synonym table."""

    def __init__(self, synonyms, rate, seed=None):
        augmentation.check_rate(rate)
        lookups = _TensorSynonyms(synonyms)
        super().__init__(rate, seed)
        self.synonyms = lookups.table
        self._lookups = lookups

    def _arguments(self):
        return {"synonyms": self.synonyms, **super()._arguments()}


class SynonymReplacement(_SynonymAugmentation):
    """Replaces words by synonyms; see `synonym_replacement`."""

    def augment_text(self, text, seed):
        words = augmentation.split_words(text)
        rows = self._lookups.rows(words)
        seeds = tf.random.experimental.stateless_split(seed, 2)
        count = augmentation.edit_count(self.rate, tf.size(words))
        chosen = augmentation.choose(rows >= 0, count, seeds[0])
        synonyms = self._lookups.draw(tf.maximum(rows, 0), seeds[1])
        replaced = tf.strings.join(
            [
                tf.strings.regex_replace(words, _PREFIX, r"\1"),
                synonyms,
                tf.strings.regex_replace(words, _SUFFIX, r"\1"),
            ]
        )
        return augmentation.join_words(tf.where(chosen, replaced, words))


def synonym_replacement(synonyms, rate=0.1, seed=None):
    """Replaces `max(1, ⌊rate · n⌋)` words of a text by a synonym.

    The synonym replacement of EDA (Wei and Zou, 2019), for a text of `n`
    words: distinct random words that have synonyms in the table are each
    replaced by one of their synonyms, drawn uniformly (fewer when fewer
    words have synonyms). Words are looked up lowercased and without the
    punctuation around them, which stays around the synonym (`"Good!"`
    becomes `"great!"`); words are split on whitespace and joined with
    single spaces.

    Args:
        synonyms: a `SynonymTable` (e.g. from `embedding_synonyms`) or a
            dict of word to synonyms.
        rate: the fraction of the words replaced, in `[0, 1]`; any positive
            rate replaces at least one word when one has synonyms, and 0
            leaves the texts unchanged. Defaults to `0.1`.
        seed: a non-negative integer, or `None` for a non-reproducible
            stream; see `kfinetune.data.augment.Augmentation`. Defaults to
            `None`.

    Returns:
        An `Augmentation` to pass to `tf.data.Dataset.map` over texts or
        `(text, label)` pairs.

    Example:

    ```python
    synonyms = kfinetune.data.augment.embedding_synonyms(model)
    replace = kfinetune.data.augment.synonym_replacement(
        synonyms, rate=0.1, seed=0)
    train = data.train.map(replace).batch(32)
    ```
    """
    return SynonymReplacement(synonyms, rate, seed)


class RandomInsertion(_SynonymAugmentation):
    """Inserts synonyms of words; see `random_insertion`."""

    def augment_text(self, text, seed):
        words = augmentation.split_words(text)
        rows = self._lookups.rows(words)
        sources = tf.boolean_mask(rows, rows >= 0)
        available = tf.size(sources)
        count = tf.where(
            available > 0, augmentation.edit_count(self.rate, tf.size(words)), 0
        )
        seeds = tf.random.experimental.stateless_split(seed, 3)
        picks = augmentation.uniform_integers(
            seeds[0], [count], tf.maximum(available, 1)
        )
        inserted = self._lookups.draw(tf.gather(sources, picks), seeds[1])
        # Where the new words land: `count` random slots of the longer text,
        # the original words filling the others in order.
        total = tf.size(words) + count
        slots = augmentation.choose(tf.ones([total], tf.bool), count, seeds[2])
        new_rank = tf.maximum(tf.cumsum(tf.cast(slots, tf.int32)) - 1, 0)
        old_rank = tf.maximum(tf.cumsum(tf.cast(~slots, tf.int32)) - 1, 0)
        # `tf.where` gathers both sides everywhere: the extra empty entry
        # keeps the side that is not taken in range.
        merged = tf.where(
            slots,
            tf.gather(tf.concat([inserted, [""]], 0), new_rank),
            tf.gather(tf.concat([words, [""]], 0), old_rank),
        )
        return augmentation.join_words(merged)


def random_insertion(synonyms, rate=0.1, seed=None):
    """Inserts a synonym of a random word at a random place, several times.

    The random insertion of EDA (Wei and Zou, 2019), for a text of `n`
    words: `max(1, ⌊rate · n⌋)` times, a synonym of a random word of the
    text (one that has synonyms) is inserted at a random position. Texts
    without any word in the table are unchanged; words are split on
    whitespace and joined with single spaces.

    Args:
        synonyms: a `SynonymTable` (e.g. from `embedding_synonyms`) or a
            dict of word to synonyms.
        rate: the number of insertions as a fraction of the words, in
            `[0, 1]`; any positive rate inserts at least one word, and 0
            leaves the texts unchanged. Defaults to `0.1`.
        seed: a non-negative integer, or `None` for a non-reproducible
            stream; see `kfinetune.data.augment.Augmentation`. Defaults to
            `None`.

    Returns:
        An `Augmentation` to pass to `tf.data.Dataset.map` over texts or
        `(text, label)` pairs.

    Example:

    ```python
    insert = kfinetune.data.augment.random_insertion(
        synonyms, rate=0.1, seed=0)
    train = data.train.map(insert).batch(32)
    ```
    """
    return RandomInsertion(synonyms, rate, seed)
