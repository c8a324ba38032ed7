"""`token_masking` and `span_cutoff`: augmentations of preprocessed token
ids."""

import tensorflow as tf

from kfinetune.data.augment import augmentation


class TokenAugmentation(augmentation.Augmentation):
    """An `Augmentation` of the token features a preprocessor returns.

    Takes the dict of a keras-hub preprocessor (`token_ids` and
    `padding_mask`, of shape `(sequence_length,)` or
    `(batch, sequence_length)`) and never touches special tokens
    (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`) or padding. Subclasses implement
    `augment_features(features, editable, seed)`.

    Args:
        tokenizer: the model's keras-hub tokenizer (e.g.
            `model.preprocessor.tokenizer`).
        rate: the strength, a number in `[0, 1]`.
        seed: see `Augmentation`. Defaults to `None`.
    """

    def __init__(self, tokenizer, rate, seed=None):
        augmentation.check_rate(rate)
        special = getattr(tokenizer, "special_token_ids", None)
        pad = getattr(tokenizer, "pad_token_id", None)
        if not special or pad is None:
            raise ValueError(
                "`tokenizer` must be a keras-hub tokenizer with special "
                "tokens and a padding token (e.g. "
                "`model.preprocessor.tokenizer`). "
                f"Received: tokenizer={tokenizer!r}"
            )
        super().__init__(seed)
        self.tokenizer = tokenizer
        self.rate = rate
        self.special_token_ids = tuple(sorted(set(special)))
        self.pad_token_id = pad

    def augment(self, inputs):
        if not isinstance(inputs, dict) or not {
            "token_ids",
            "padding_mask",
        } <= set(inputs):
            raise ValueError(
                f"`{type(self).__name__}` augments the features of a "
                "keras-hub preprocessor: a dict with `token_ids` and "
                "`padding_mask`. Map it after the preprocessor. "
                f"Received: inputs={inputs!r}"
            )
        if self.rate == 0:
            return inputs
        token_ids = inputs["token_ids"]
        special = tf.reduce_any(
            tf.equal(
                token_ids[..., None],
                tf.constant(self.special_token_ids, token_ids.dtype),
            ),
            axis=-1,
        )
        editable = tf.logical_and(
            tf.cast(inputs["padding_mask"], tf.bool), tf.logical_not(special)
        )
        seed = self.draw_seeds(1)[0]
        return {**inputs, **self.augment_features(inputs, editable, seed)}

    def augment_features(self, features, editable, seed):
        """Returns the changed entries of `features`."""
        raise NotImplementedError

    def _arguments(self):
        return {"rate": self.rate, "seed": self.seed}


class TokenMasking(TokenAugmentation):
    """Masks word pieces; see `token_masking`."""

    def __init__(self, tokenizer, rate, seed=None):
        mask = getattr(tokenizer, "mask_token_id", None)
        if mask is None:
            raise ValueError(
                "`tokenizer` must have a mask token (`mask_token_id`), as "
                "BERT's has. Received: "
                f"tokenizer={tokenizer!r}"
            )
        super().__init__(tokenizer, rate, seed)
        self.mask_token_id = mask

    def augment_features(self, features, editable, seed):
        token_ids = features["token_ids"]
        scores = tf.random.stateless_uniform(tf.shape(token_ids), seed)
        masked = tf.logical_and(editable, scores < self.rate)
        mask = tf.cast(self.mask_token_id, token_ids.dtype)
        return {"token_ids": tf.where(masked, mask, token_ids)}


def token_masking(tokenizer, rate=0.1, seed=None):
    """Replaces each word piece by `[MASK]` with probability `rate`.

    Maps over the features of a keras-hub preprocessor (after it, in the
    `tf.data` pipeline): special tokens and padding are never masked. A
    masked-language model saw `[MASK]` in pretraining, so this is a light
    form of noise; it is the word-piece masking of the "cutoff" family of
    Shen et al. (2020), done on the input ids.

    Args:
        tokenizer: the model's keras-hub tokenizer (e.g.
            `model.preprocessor.tokenizer`); it gives the `[MASK]` id and
            the special tokens.
        rate: the probability of masking each word piece, in `[0, 1]`.
            Defaults to `0.1`.
        seed: a non-negative integer, or `None` for a non-reproducible
            stream; see `kfinetune.data.augment.Augmentation`. Defaults to
            `None`.

    Returns:
        An `Augmentation` to pass to `tf.data.Dataset.map` over features or
        `(features, label)` pairs, unbatched or batched.

    Example:

    ```python
    preprocessor = model.preprocessor
    mask = kfinetune.data.augment.token_masking(
        preprocessor.tokenizer, rate=0.1, seed=0)
    train = data.train.batch(32).map(preprocessor).map(mask)
    model.fit(train)  # the model without its preprocessor
    ```
    """
    return TokenMasking(tokenizer, rate, seed)


class SpanCutoff(TokenAugmentation):
    """Cuts off a span of word pieces; see `span_cutoff`."""

    def augment_features(self, features, editable, seed):
        token_ids = features["token_ids"]
        count = tf.reduce_sum(tf.cast(editable, tf.int32), axis=-1)
        length = tf.cast(
            tf.round(self.rate * tf.cast(count, tf.float32)), tf.int32
        )
        length = tf.minimum(tf.maximum(length, 1), count)
        # The span starts uniformly among the `count - length + 1` places.
        scores = tf.random.stateless_uniform(tf.shape(count), seed)
        start = tf.cast(
            scores * tf.cast(count - length + 1, tf.float32), tf.int32
        )
        start = tf.minimum(start, tf.maximum(count - length, 0))
        rank = tf.cumsum(tf.cast(editable, tf.int32), axis=-1) - 1
        cut = editable & (rank >= start[..., None])
        cut &= rank < (start + length)[..., None]
        mask = features["padding_mask"]
        return {
            "token_ids": tf.where(
                cut, tf.cast(self.pad_token_id, token_ids.dtype), token_ids
            ),
            "padding_mask": tf.where(cut, tf.zeros_like(mask), mask),
        }


def span_cutoff(tokenizer, rate=0.1, seed=None):
    """Cuts a random contiguous span of word pieces out of each input.

    The span cutoff of Shen et al. (2020), on the input ids: a span of
    `max(1, round(rate · n))` of the `n` word pieces (special tokens and
    padding excluded) is replaced by padding and taken out of the
    `padding_mask`, so attention ignores it; the positions of the other
    tokens do not move. Maps over the features of a keras-hub
    preprocessor, after it in the `tf.data` pipeline.

    Args:
        tokenizer: the model's keras-hub tokenizer (e.g.
            `model.preprocessor.tokenizer`); it gives the padding id and
            the special tokens.
        rate: the span length as a fraction of the word pieces, in
            `[0, 1]`; any positive rate cuts at least one, and 0 leaves the
            inputs unchanged. Defaults to `0.1`.
        seed: a non-negative integer, or `None` for a non-reproducible
            stream; see `kfinetune.data.augment.Augmentation`. Defaults to
            `None`.

    Returns:
        An `Augmentation` to pass to `tf.data.Dataset.map` over features or
        `(features, label)` pairs, unbatched or batched.

    Example:

    ```python
    preprocessor = model.preprocessor
    cutoff = kfinetune.data.augment.span_cutoff(
        preprocessor.tokenizer, rate=0.1, seed=0)
    train = data.train.batch(32).map(preprocessor).map(cutoff)
    ```
    """
    return SpanCutoff(tokenizer, rate, seed)
