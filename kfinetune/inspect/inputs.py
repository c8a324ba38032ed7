"""Model inputs and their word pieces, for `attention` and `attributions`.

`texts` are strings when the model has a preprocessor, or the dict of
preprocessed inputs (`token_ids`, `padding_mask`, ...) otherwise; word
pieces are named with `tokenizer.id_to_token`.
"""

import keras
import numpy as np

from kfinetune import walk
from kfinetune.layers import prompt_wrappers

# Markers tokenizers put on word pieces: WordPiece continues a word with
# "##"; SentencePiece and byte-level BPE start a word with "▁" or "Ġ".
_CONTINUATION = "##"
_WORD_STARTS = ("▁", "Ġ")


def backbone_of(model, function):
    """The keras-hub backbone of a task model, or `model` itself."""
    backbone = getattr(model, "backbone", model)
    if getattr(backbone, "token_embedding", None) is None:
        raise ValueError(
            f"`{function}` needs a keras-hub task or backbone (with a "
            "`token_embedding`). Received: "
            f"model={getattr(model, 'name', model)!r}"
        )
    return backbone


def prepare(model, texts, tokenizer, function):
    """Returns `(inputs, tokenizer)`: the preprocessed dict of NumPy arrays
    and the tokenizer naming its ids (or `None`)."""
    preprocessor = getattr(model, "preprocessor", None)
    if tokenizer is None and preprocessor is not None:
        tokenizer = getattr(preprocessor, "tokenizer", None)
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, dict):
        if "token_ids" not in texts or "padding_mask" not in texts:
            raise ValueError(
                f"`{function}` needs preprocessed inputs with `token_ids` "
                "and `padding_mask`. Received: texts with keys "
                f"{sorted(texts)}"
            )
        inputs = {k: np.asarray(v) for k, v in texts.items()}
        if inputs["token_ids"].ndim != 2:
            raise ValueError(
                "Preprocessed `token_ids` must be a 2-D batch. Received: "
                f"texts['token_ids'] of shape {inputs['token_ids'].shape}"
            )
        return inputs, tokenizer
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(
            f"`texts` must be a non-empty list of strings. Received: "
            f"texts={texts!r}"
        )
    if preprocessor is None:
        raise ValueError(
            f"The model has no preprocessor: pass `{function}` the dict of "
            "preprocessed inputs (token_ids, padding_mask, ...) instead of "
            f"strings. Received: texts={texts[:2]!r}"
        )
    x = preprocessor(keras.ops.convert_to_tensor(texts))
    if isinstance(x, tuple):
        x = x[0]
    inputs = {k: keras.ops.convert_to_numpy(v) for k, v in x.items()}
    return inputs, tokenizer


def token_names(token_ids, tokenizer):
    """The word pieces of `token_ids` (their ids as text when there is no
    tokenizer)."""
    if tokenizer is None:
        return [str(int(i)) for i in token_ids]
    return [str(tokenizer.id_to_token(int(i))) for i in token_ids]


def prompt_insertion(model):
    """`(length, position)` of the prompts prompt tuning inserts, or
    `(0, 0)`."""
    for site in walk.sites(model):
        layer = site.layer
        if isinstance(layer, prompt_wrappers.PromptInsertion) and getattr(
            layer, "enabled", True
        ):
            return layer.length, layer.position
    return 0, 0


def special_tokens(tokenizer):
    """The tokenizer's special tokens (`[CLS]`, `[SEP]`, ...), as text."""
    if tokenizer is None:
        return set()
    names = set()
    for attribute in dir(tokenizer):
        if attribute.endswith("_token") and not attribute.startswith("_"):
            value = getattr(tokenizer, attribute, None)
            if isinstance(value, str):
                names.add(value)
    return names


def words(tokens, scores, special=()):
    """Groups word pieces into words and sums their scores.

    Args:
        tokens: the word pieces, in order.
        scores: one score per piece.
        special: pieces that are left out (special tokens).

    Returns:
        A list of `(word, score)` pairs.
    """
    marked = any(t.startswith(_WORD_STARTS) for t in tokens)
    grouped = []
    for token, score in zip(tokens, scores, strict=True):
        if token in special:
            continue
        if token.startswith(_CONTINUATION) and grouped:
            word, total = grouped[-1]
            grouped[-1] = (word + token[len(_CONTINUATION) :], total + score)
        elif marked and not token.startswith(_WORD_STARTS) and grouped:
            word, total = grouped[-1]
            grouped[-1] = (word + token, total + score)
        else:
            grouped.append((token.lstrip("".join(_WORD_STARTS)), score))
    return [(word, float(score)) for word, score in grouped]
