"""Word pieces in a serving graph: the token ids of strings, and the
pieces of words as `kfinetune.data.align_tags` gives them."""

import tensorflow as tf

from kfinetune import encoders
from kfinetune.data import word_pieces as word_pieces_lib


def built(tokenizer):
    """`tokenizer`, built: a keras-hub tokenizer loaded and never called is
    not, and `keras.export.ExportArchive` refuses to track an unbuilt
    layer. Calling it once on an empty string builds it."""
    if not tokenizer.built:
        tokenizer(tf.constant([""]))
    return tokenizer


def token_ids(tokenizer, texts):
    """Ragged int32 `(texts, tokens)` ids of a flat string tensor."""
    ids = tokenizer(texts)
    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(ids)
    return tf.cast(ids, tf.int32)


def word_pieces(tokenizer, words, room):
    """Ragged `(words, pieces)` ids of a flat string tensor of words, as
    `kfinetune.data.align_tags` tokenizes them
    (`kfinetune.data.word_pieces.word_token_ids`: a byte-level BPE word
    after a space): at most `room` pieces a word, and the unknown id for a
    word the tokenizer erases."""
    family = encoders.family_of_tokenizer(tokenizer)
    if family.tokenizer == encoders.BYTE_BPE:
        words = tf.strings.join([tf.fill(tf.shape(words), " "), words])
    pieces = token_ids(tokenizer, words)[:, :room]
    unknown = word_pieces_lib.unknown_token_id(tokenizer)
    if unknown is None:
        # Byte-level BPE spells a space before every word: never empty.
        return pieces
    lengths = pieces.row_lengths()
    filler = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.size(lengths)], tf.constant(unknown, tf.int32)),
        tf.ones_like(lengths),
    )
    padded = tf.concat([pieces, filler], axis=1)
    keep = tf.ragged.range(padded.row_lengths()) < tf.expand_dims(
        tf.maximum(lengths, 1), 1
    )
    return tf.ragged.boolean_mask(padded, keep)
