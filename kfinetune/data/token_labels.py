"""`align_tags`: word-level tags onto word pieces, and predictions back.

A tagged sentence has one tag per word; a BERT-family model sees word
pieces. `align_tags` tokenizes every word, packs `[CLS] pieces... [SEP]`
padded to a fixed length, and gives every piece a label:

- the first piece of a word carries the word's tag, with sample weight 1;
- a word's other pieces carry its *continuation tag* (`I-X` for a word
  tagged `B-X` or `I-X` when `I-X` is a known tag, else the word's own
  tag), and `[CLS]` / `[SEP]` carry `O` (or tag 0), all with sample weight
  0: a softmax head is trained and scored on first pieces only;
- padding carries `-1` and sample weight 0.

A `kfinetune.layers.CRF` scores every unpadded position as one chain (its
mask must be left-aligned: tokens, then padding), so it learns from the
continuation and special-token labels too: they are real tags that keep the
chain consistent (`B-PER I-PER` inside one word reads as one entity).
Either way, `TokenLabels.to_words` reads each word's tag from its first
piece only.

Truncation: a word whose pieces do not all fit before `[SEP]` is dropped
with every word after it; `to_words` predicts `O` for dropped words, so an
evaluation against the full gold tags counts their entities as missed.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from kfinetune import checks

INPUTS = ("token_ids", "segment_ids", "padding_mask")
PADDING_LABEL = -1


@dataclasses.dataclass(frozen=True)
class TokenLabels:
    """Word pieces with aligned labels, and the way back to words.

    Attributes:
        inputs: a dict of int32 arrays `(sentences, sequence_length)`:
            `token_ids`, `segment_ids`, `padding_mask` (a BERT backbone's
            inputs).
        labels: int32 `(sentences, sequence_length)` piece labels (indices
            into `tag_names`; `-1` at padding).
        sample_weight: float32 `(sentences, sequence_length)`, 1 on the
            first piece of every kept word, else 0.
        word_starts: per sentence, the piece position of each kept word.
        num_words: per sentence, the number of words before truncation.
        tag_names: the tag vocabulary; label `i` is `tag_names[i]`.

    Example:

    ```python
    aligned = kfinetune.data.from_conll("train.txt").align(tokenizer)
    model.fit(aligned.dataset().batch(16))
    words = aligned.to_words(model.predict(aligned.inputs))
    ```
    """

    inputs: dict
    labels: np.ndarray
    sample_weight: np.ndarray
    word_starts: tuple
    num_words: tuple
    tag_names: tuple

    def dataset(self, sample_weights=True):
        """A `tf.data.Dataset` of `(inputs, labels[, sample_weight])` rows.

        Args:
            sample_weights: include the sample weights, which a softmax
                head's loss needs to ignore all but first pieces; the
                padding labels are then 0 instead of `-1` (TensorFlow's
                sparse cross-entropy rejects negative labels). Pass
                `False` for a CRF head (`kfinetune.layers.CRFLoss` ignores
                the `-1` labels at padding and scores the rest). Defaults
                to `True`.

        Returns:
            An unbatched `tf.data.Dataset`.

        Example:

        ```python
        model.fit(aligned.dataset().shuffle(1000).batch(16), epochs=3)
        ```
        """
        checks.boolean("sample_weights", sample_weights)
        if not sample_weights:
            return tf.data.Dataset.from_tensor_slices(
                (self.inputs, self.labels)
            )
        # TensorFlow's sparse cross-entropy rejects -1 even at weight 0.
        labels = np.maximum(self.labels, 0)
        return tf.data.Dataset.from_tensor_slices(
            (self.inputs, labels, self.sample_weight)
        )

    def to_words(self, predictions):
        """Maps per-piece predictions back to one tag string per word.

        Args:
            predictions: `model.predict` output for `inputs`: logits or
                probabilities `(sentences, sequence_length, num_tags)`
                (argmax is taken), or integer tags
                `(sentences, sequence_length)` (a CRF's Viterbi path).

        Returns:
            A list (one per sentence) of lists of tag strings, one per word
            of the original sentence; words dropped by truncation get `O`.

        Raises:
            ValueError: if `predictions` does not have the shape of
                `labels` (plus a tag axis).

        Example:

        ```python
        words = aligned.to_words(model.predict(aligned.inputs))
        kfinetune.evaluation.sequence_labelling_report(data.tags, words)
        ```
        """
        predictions = np.asarray(predictions)
        expected = self.labels.shape
        if predictions.shape[:2] != expected or predictions.ndim not in (2, 3):
            raise ValueError(
                "`predictions` must have shape (sentences, sequence_length) "
                f"or (sentences, sequence_length, num_tags) with "
                f"(sentences, sequence_length) = {expected}. "
                f"Received: predictions.shape={predictions.shape}"
            )
        if predictions.ndim == 3:
            predictions = np.argmax(predictions, axis=-1)
        # A CRF's tags can come back from `predict` as floats.
        predictions = predictions.astype("int64")
        outside = "O" if "O" in self.tag_names else self.tag_names[0]
        words = []
        for row, (starts, total) in enumerate(
            zip(self.word_starts, self.num_words, strict=True)
        ):
            tags = [self.tag_names[predictions[row, s]] for s in starts]
            words.append(tags + [outside] * (total - len(tags)))
        return words


def _continuation(tag, index):
    prefix, _, kind = tag.partition("-")
    if kind and prefix in ("B", "I") and f"I-{kind}" in index:
        return index[f"I-{kind}"]
    return index[tag]


def _tokenizer_of(tokenizer):
    # A keras-hub preprocessor holds its tokenizer; accept either.
    return getattr(tokenizer, "tokenizer", tokenizer)


def align_tags(sentences, tags, tokenizer, tag_names, sequence_length=64):
    """Tokenizes tagged words and aligns their tags to word pieces.

    See the module docstring for the labels each piece gets and how
    truncation works.

    Args:
        sentences: a sequence of sentences, each a sequence of word strings.
        tags: the tag strings of every word, shaped like `sentences`.
        tokenizer: a keras-hub BERT-family word-piece tokenizer (with
            `cls_token_id`, `sep_token_id`, `pad_token_id` and
            `oov_token`), or a preprocessor holding one as `tokenizer`. A
            word it turns into no piece at all gets the `oov_token`.
        tag_names: the tag vocabulary, in label order.
        sequence_length: the padded length, `[CLS]` and `[SEP]` included.
            Defaults to `64`.

    Returns:
        A `TokenLabels`.

    Raises:
        ValueError: if `sequence_length` is below 2, a sentence's words and
            tags differ in number, or a tag is not in `tag_names`.

    Example:

    ```python
    tokenizer = keras_hub.models.BertTokenizer.from_preset(
        str(kfinetune.presets.minilm_path()))
    aligned = kfinetune.data.align_tags(
        [["John", "lives", "here"]], [["B-PER", "O", "O"]], tokenizer,
        tag_names=("O", "B-PER", "I-PER"))
    ```
    """
    checks.at_least("sequence_length", sequence_length, 2, integer=True)
    tag_names = tuple(tag_names)
    index = {name: i for i, name in enumerate(tag_names)}
    if len(sentences) != len(tags):
        raise ValueError(
            "`sentences` and `tags` must have the same length. Received: "
            f"len(sentences)={len(sentences)}, len(tags)={len(tags)}"
        )
    for number, (words, word_tags) in enumerate(
        zip(sentences, tags, strict=True)
    ):
        if len(words) != len(word_tags):
            raise ValueError(
                f"Sentence {number} has {len(words)} words but "
                f"{len(word_tags)} tags. Received: words={list(words)!r}, "
                f"tags={list(word_tags)!r}"
            )
        for tag in word_tags:
            if tag not in index:
                raise ValueError(
                    f"Sentence {number}: unknown tag {tag!r}, not in "
                    f"`tag_names`. Received: tag_names={tag_names!r}"
                )
    tokenizer = _tokenizer_of(tokenizer)
    flat = [word for words in sentences for word in words]
    pieces = tokenizer(tf.constant(flat, tf.string)) if flat else []
    # keras-hub tokenizers return a ragged tensor in graphs and nested
    # lists in eager mode.
    if isinstance(pieces, tf.RaggedTensor):
        pieces = pieces.to_list()
    # A word the tokenizer erases (e.g. only control characters) still
    # needs a piece to carry its tag.
    unknown = tokenizer.token_to_id(tokenizer.oov_token)
    pieces = [[int(piece) for piece in word] or [unknown] for word in pieces]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    outside = index.get("O", 0)
    rows = len(sentences)
    token_ids = np.full((rows, sequence_length), tokenizer.pad_token_id)
    labels = np.full((rows, sequence_length), PADDING_LABEL, "int32")
    weight = np.zeros((rows, sequence_length), "float32")
    word_starts, cursor = [], 0
    for row, (words, word_tags) in enumerate(zip(sentences, tags, strict=True)):
        ids, piece_labels, starts = [cls], [outside], []
        sentence_pieces = pieces[cursor : cursor + len(words)]
        for tag, word_pieces in zip(word_tags, sentence_pieces, strict=True):
            # Leave room for [SEP]; a word that does not fit is dropped
            # whole, with every word after it.
            if len(ids) + len(word_pieces) > sequence_length - 1:
                break
            starts.append(len(ids))
            ids += word_pieces
            piece_labels += [index[tag]] + [_continuation(tag, index)] * (
                len(word_pieces) - 1
            )
        cursor += len(words)
        ids.append(sep)
        piece_labels.append(outside)
        token_ids[row, : len(ids)] = ids
        labels[row, : len(ids)] = piece_labels
        weight[row, starts] = 1.0
        word_starts.append(tuple(starts))
    padding = (labels != PADDING_LABEL).astype("int32")
    return TokenLabels(
        inputs={
            "token_ids": token_ids.astype("int32"),
            "segment_ids": np.zeros_like(token_ids, "int32"),
            "padding_mask": padding,
        },
        labels=labels,
        sample_weight=weight,
        word_starts=tuple(word_starts),
        num_words=tuple(len(words) for words in sentences),
        tag_names=tag_names,
    )
