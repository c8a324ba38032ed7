"""Tokenizer helpers shared by the language-model data builders."""

import keras_hub
import numpy as np
import tensorflow as tf


def tokenizer_of(tokenizer):
    """The tokenizer itself, or the `tokenizer` a keras-hub preprocessor
    holds.

    Args:
        tokenizer: a keras-hub tokenizer or preprocessor.

    Returns:
        A keras-hub tokenizer.

    Raises:
        ValueError: if `tokenizer` is neither.

    Example:

    ```python
    tokenizer = kfinetune.data.tokenizing.tokenizer_of(model.preprocessor)
    ```
    """
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    if not isinstance(tokenizer, keras_hub.tokenizers.Tokenizer):
        raise ValueError(
            "`tokenizer` must be a keras-hub tokenizer or a preprocessor "
            "holding one (e.g. `keras_hub.models.GPT2Tokenizer` or "
            f"`model.preprocessor`). Received: tokenizer={tokenizer!r}"
        )
    return tokenizer


def token_id(tokenizer, name):
    """`tokenizer.<name>_id` (`"start_token"`, `"end_token"`, ...), or
    `None` when the tokenizer has no such token."""
    value = getattr(tokenizer, f"{name}_id", None)
    return None if value is None else int(value)


def tokenize(tokenizer, texts):
    """Token ids of every text, tokenized in one call.

    Args:
        tokenizer: a keras-hub tokenizer.
        texts: a list of strings.

    Returns:
        A list (one per text) of lists of Python `int` ids; an empty text
        gives `[]`.

    Example:

    ```python
    kfinetune.data.tokenizing.tokenize(tokenizer, ["the movie", ""])
    # [[5, 14], []]
    ```
    """
    unique = sorted({text for text in texts if text})
    if not unique:
        return [[] for _ in texts]
    pieces = tokenizer(tf.constant(unique, tf.string))
    # keras-hub tokenizers return a ragged tensor in graphs and nested
    # lists (or a dense tensor, for a fixed `sequence_length`) eagerly.
    if isinstance(pieces, tf.RaggedTensor):
        pieces = pieces.to_list()
    elif tf.is_tensor(pieces) or isinstance(pieces, np.ndarray):
        pieces = np.asarray(pieces).tolist()
    ids = {
        text: [int(piece) for piece in row]
        for text, row in zip(unique, pieces, strict=True)
    }
    return [ids[text] if text else [] for text in texts]
