"""Words as word pieces, the way each encoder family's tokenizer reads
them in running text, and the special tokens the family packs them with.

`kfinetune.data.align_tags` (and the sentences it splits into words)
tokenizes every word on its own, then packs the pieces between the
family's start and end tokens. A word on its own must give the pieces it
gives in running text, which each tokenizer kind reaches differently
(as Hugging Face's `is_split_into_words=True` does):

- WordPiece (BERT, ELECTRA, DistilBERT) splits text on whitespace and
  punctuation before it looks for pieces: a word alone tokenizes as in
  running text (`playing` -> `play ##ing`).
- SentencePiece (ALBERT, DeBERTa-v3, XLM-RoBERTa) marks the start of
  every word with `▁`, the first word of a text included: a word alone
  gets its `▁` as in running text (`▁play ing`, or a bare `▁` before
  pieces of its own, `▁ « quote »`).
- Byte-level BPE (RoBERTa) reads the space before a word as part of the
  word (`Ġplay`) and gives the first word of a text, which has none,
  other pieces: every word is tokenized after a space, the first
  included (Hugging Face's `add_prefix_space=True`).

The tag of a word goes on its first piece (Hugging Face's convention:
the first token of the word), a bare `▁` included.
"""

import tensorflow as tf

from kfinetune import encoders

# SentencePiece's unknown piece (its default `unk_piece`, in every
# keras-hub SentencePiece family's vocabulary; an absent piece maps to the
# unknown id anyway).
SENTENCEPIECE_UNKNOWN = "<unk>"


def special_token_ids(tokenizer):
    """The family's start, end and padding token ids of `tokenizer`.

    Args:
        tokenizer: a keras-hub tokenizer of a supported family
            (`kfinetune.encoders.family_of_tokenizer`), or a preprocessor
            holding one.

    Returns:
        A tuple `(start, end, pad)` of ints: `[CLS]`, `[SEP]`, `[PAD]` for
        BERT; `<s>`, `</s>`, `<pad>` for RoBERTa; ...

    Raises:
        ValueError: `tokenizer` is not of a supported family.

    Example:

    >>> tokenizer = kfinetune.testing.small_tokenizer("roberta")
    >>> kfinetune.data.word_pieces.special_token_ids(tokenizer)
    (0, 2, 1)
    """
    encoders.family_of_tokenizer(tokenizer)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    return (
        int(tokenizer.start_token_id),
        int(tokenizer.end_token_id),
        int(tokenizer.pad_token_id),
    )


def unknown_token_id(tokenizer):
    """The id of `tokenizer`'s unknown token: WordPiece's `oov_token`,
    SentencePiece's `<unk>`; `None` for byte-level BPE, which spells
    every byte and never needs one.

    Args:
        tokenizer: a keras-hub tokenizer of a supported family, or a
            preprocessor holding one.

    Returns:
        An int, or `None`.

    Raises:
        ValueError: `tokenizer` is not of a supported family.
    """
    family = encoders.family_of_tokenizer(tokenizer)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    if family.tokenizer == encoders.WORDPIECE:
        return int(tokenizer.token_to_id(tokenizer.oov_token))
    if family.tokenizer == encoders.SENTENCEPIECE:
        return int(tokenizer.token_to_id(SENTENCEPIECE_UNKNOWN))
    return None


def token_ids(tokenizer, texts):
    """The token ids of each of `texts`, as lists of ints, in one
    tokenizer call."""
    if not texts:
        return []
    ids = tokenizer(tf.constant(list(texts), tf.string))
    # keras-hub tokenizers return a ragged tensor in graphs and nested
    # lists in eager mode.
    if isinstance(ids, tf.RaggedTensor):
        ids = ids.to_list()
    return [[int(i) for i in row] for row in ids]


def word_token_ids(tokenizer, words):
    """The pieces of each word as it reads in running text (see the
    module docstring): a word after a space for byte-level BPE, the word
    alone otherwise. A word the tokenizer erases (e.g. only control
    characters) gets the unknown token, so that it still has a first
    piece to carry its tag.

    Args:
        tokenizer: a keras-hub tokenizer of a supported family, or a
            preprocessor holding one.
        words: a sequence of word strings.

    Returns:
        A list (one per word) of lists of token ids.

    Raises:
        ValueError: `tokenizer` is not of a supported family.

    Example:

    ```python
    tokenizer = kfinetune.testing.small_tokenizer("roberta")
    ids = kfinetune.data.word_pieces.word_token_ids(tokenizer, ["movie"])
    tokenizer.id_to_token(ids[0][0])  # 'Ġmovie': the word after a space
    ```
    """
    family = encoders.family_of_tokenizer(tokenizer)
    unknown = unknown_token_id(tokenizer)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    if family.tokenizer == encoders.BYTE_BPE:
        words = [" " + word for word in words]
    return [ids or [unknown] for ids in token_ids(tokenizer, words)]
