"""`Augmentation`: the seeded `tf.data` map every augmentation is."""

import tensorflow as tf

from kfinetune import checks


def check_rate(rate):
    """Checks that `rate` is a number in `[0, 1]`."""
    checks.in_range("rate", rate, 0, 1, high_closed=True)


class Augmentation:
    """A seeded data augmentation to pass to `tf.data.Dataset.map`.

    Called with the elements of a dataset of `inputs`, `(inputs, label)` or
    `(inputs, label, sample_weight)`, it changes `inputs` (texts, or the
    token features of a preprocessor) and returns the rest unchanged, so
    the labels are never touched. It runs in the `tf.data` graph on the
    host, also when the model trains on a TPU.

    Randomness: the augmentation owns a `tf.random.Generator` seeded with
    `seed`. Each call takes fresh seeds from it and draws with stateless
    random ops, so the augmented stream is the same from run to run for a
    given seed, and each epoch (each pass over the dataset) sees different
    augmentations, because the generator moves on. Two consequences:

    - The stream is reproducible when the map runs sequentially (the
      default of `Dataset.map`); with `num_parallel_calls` the same draws
      can go to other elements.
    - The generator is shared by every dataset the augmentation is mapped
      over; build a new augmentation (same seed) to replay a stream from
      the start.

    Subclasses implement `augment(inputs, seeds)`.

    Args:
        seed: a non-negative integer, or `None` for a non-reproducible
            stream. Defaults to `None`.

    Example:

    ```python
    swap = kfinetune.data.augment.random_swap(rate=0.1, seed=0)
    model.fit(data.train.map(swap).batch(32), epochs=3)
    ```
    """

    def __init__(self, seed=None):
        if seed is not None:
            checks.non_negative_integer("seed", seed)
        self.seed = seed
        # On the host, where `tf.data` runs.
        with tf.device("CPU:0"):
            if seed is None:
                self.generator = (
                    tf.random.Generator.from_non_deterministic_state()
                )
            else:
                self.generator = tf.random.Generator.from_seed(seed)

    def __call__(self, inputs, *rest):
        outputs = self.augment(inputs)
        return (outputs, *rest) if rest else outputs

    def augment(self, inputs):
        """Returns the augmented `inputs` (one element, or one batch)."""
        raise NotImplementedError

    def draw_seeds(self, count):
        """`count` fresh stateless seeds, an int64 tensor `(count, 2)`."""
        return tf.transpose(self.generator.make_seeds(count))

    def _arguments(self):
        return {"seed": self.seed}

    def __repr__(self):
        arguments = ", ".join(
            f"{name}={value!r}" for name, value in self._arguments().items()
        )
        return f"{type(self).__name__}({arguments})"


class TextAugmentation(Augmentation):
    """An `Augmentation` of texts, one random draw per text.

    Takes a scalar `tf.string` (an unbatched dataset) or a 1-D batch of
    them; each text gets its own seed. Subclasses implement
    `augment_text(text, seed)` for one scalar text and set `rate`; a rate of
    0 returns the texts unchanged.

    Args:
        rate: the strength, a number in `[0, 1]`.
        seed: see `Augmentation`. Defaults to `None`.
    """

    def __init__(self, rate, seed=None):
        check_rate(rate)
        super().__init__(seed)
        self.rate = rate

    def augment(self, inputs):
        try:
            texts = tf.convert_to_tensor(inputs)
        except (TypeError, ValueError):
            texts = None
        if (
            texts is None
            or texts.dtype != tf.string
            or texts.shape.rank not in (0, 1)
        ):
            raise ValueError(
                f"`{type(self).__name__}` augments texts: a scalar string "
                "or a 1-D batch of strings, as in a dataset of "
                f"`(text, label)`. Received: inputs={inputs!r}"
            )
        if self.rate == 0:
            return texts
        if texts.shape.rank == 0:
            return self.augment_text(texts, self.draw_seeds(1)[0])
        seeds = self.draw_seeds(tf.size(texts))
        return tf.map_fn(
            lambda pair: self.augment_text(pair[0], pair[1]),
            (texts, seeds),
            fn_output_signature=tf.TensorSpec((), tf.string),
        )

    def augment_text(self, text, seed):
        """Returns one augmented scalar text, drawing from `seed`."""
        raise NotImplementedError

    def _arguments(self):
        return {"rate": self.rate, "seed": self.seed}


def split_words(text):
    """The whitespace-separated words of a scalar text, a 1-D tensor."""
    return tf.strings.split(text)


def join_words(words):
    """The words joined by single spaces, a scalar text."""
    return tf.strings.reduce_join(words, separator=" ")


def edit_count(rate, length):
    """How many words an edit changes: `max(1, ⌊rate · length⌋)`, as in
    EDA (Wei and Zou, 2019), for a positive rate."""
    scaled = tf.floor(rate * tf.cast(length, tf.float32))
    return tf.maximum(1, tf.cast(scaled, tf.int32))


def choose(candidates, count, seed):
    """A boolean mask of `min(count, sum(candidates))` positions drawn
    uniformly without replacement among the `True` ones of `candidates`."""
    scores = tf.random.stateless_uniform(tf.shape(candidates), seed)
    scores = tf.where(candidates, scores, -1.0)
    count = tf.minimum(count, tf.reduce_sum(tf.cast(candidates, tf.int32)))
    _, picked = tf.math.top_k(scores, k=count)
    hits = tf.scatter_nd(
        picked[:, None], tf.ones_like(picked), tf.shape(candidates)
    )
    return hits > 0


def uniform_integers(seed, shape, maxval):
    """Integers uniform in `[0, maxval)` (`maxval` ≥ 1; a tensor is fine)."""
    return tf.random.stateless_uniform(
        shape, seed, minval=0, maxval=tf.cast(maxval, tf.int32), dtype=tf.int32
    )
