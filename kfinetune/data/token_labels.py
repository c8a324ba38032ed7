"""`align_tags`: word-level tags onto word pieces, and predictions back.

A tagged sentence has one tag per word; an encoder sees word pieces.
`align_tags` tokenizes every word as it reads in running text (see
`kfinetune.data.word_pieces`: a byte-level BPE word after a space, a
SentencePiece word with its `▁`), packs the pieces between the family's
start and end tokens (`[CLS] pieces... [SEP]` for BERT, `<s> pieces...
</s>` for RoBERTa) padded to a fixed length, and gives every piece a
label:

- the first piece of a word carries the word's tag, with sample weight 1;
- a word's other pieces carry its *continuation tag* (`I-X` for a word
  tagged `B-X` or `I-X` when `I-X` is a known tag, else the word's own
  tag), and the start and end tokens carry `O` (or tag 0), all with
  sample weight 0: a softmax head is trained and scored on first pieces
  only (a SentencePiece word's first piece may be a bare `▁`: it carries
  the tag, as in Hugging Face's alignment);
- padding carries `-1` and sample weight 0.

`word_mask` marks the first piece of every word (1) and nothing else. A
word-level `kfinetune.layers.CRF` (`chain_mask=word_mask`, as in
`kfinetune.presets.token_classifier(crf=True)`) links those positions
only, so continuation pieces and special tokens stay out of its chain as
they stay out of a softmax head's loss; it takes `word_inputs` (the
inputs and `word_mask`) and `dataset(word_mask=True)`. A CRF over every
unpadded piece instead learns the continuation and special-token labels
too. Either way, `TokenLabels.to_words` reads each word's tag from its
first piece only.

Long sentences: a sentence whose pieces do not fit in one row of
`sequence_length` (with the start and end tokens) is split into overlapping
windows of whole words, one row each; consecutive windows share `overlap`
words. `to_words` reads each word from the window where it has the most
context on its tighter side (the "maximum context" rule of BERT's SQuAD
code), so no word is dropped. Only a single word with more pieces than a
row holds loses its last pieces (its first piece, which carries its tag,
stays).

Without tags (`tags=None`), the rows are for prediction only: `to_words`
works, `dataset` refuses.

Inputs: `TokenLabels.inputs` holds the inputs the tokenizer's family's
backbone takes (`kfinetune.encoders.input_names`): `token_ids`,
`segment_ids` (all 0: one segment) for BERT, ELECTRA and ALBERT, and
`padding_mask`. `TokenLabels.inputs_for(model)` gives a model exactly
the inputs it has, whichever family's inputs it was built with.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from kfinetune import checks
from kfinetune import encoders
from kfinetune.data import word_pieces

PADDING_LABEL = -1


@dataclasses.dataclass(frozen=True)
class TokenLabels:
    """Word pieces with aligned labels, and the way back to words.

    A row is a sentence, or a window of a sentence too long for one row
    (see the module docstring).

    Attributes:
        inputs: a dict of int32 arrays `(rows, sequence_length)`: the
            inputs of the tokenizer's family's backbone, `token_ids`,
            `segment_ids` (all 0) when the family takes them, and
            `padding_mask`.
        labels: int32 `(rows, sequence_length)` piece labels (indices into
            `tag_names`; `-1` at padding, and everywhere without tags).
        sample_weight: float32 `(rows, sequence_length)`, 1 on the first
            piece of every word, else 0 (0 everywhere without tags).
        word_starts: per row, the piece position of each of its words.
        num_words: per sentence, its number of words.
        tag_names: the tag vocabulary; label `i` is `tag_names[i]`.
        sentence_index: per row, the sentence it holds words of. Defaults
            to one row per sentence.
        first_word: per row, the index in its sentence of its first word.
            Defaults to 0 for every row.
        has_tags: whether the labels come from tags. Defaults to `True`.

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
    sentence_index: tuple = None
    first_word: tuple = None
    has_tags: bool = True

    def __post_init__(self):
        rows = len(self.word_starts)
        if self.sentence_index is None:
            object.__setattr__(self, "sentence_index", tuple(range(rows)))
        if self.first_word is None:
            object.__setattr__(self, "first_word", (0,) * rows)

    @property
    def word_mask(self):
        """int32 `(rows, sequence_length)`: 1 on the first piece of every
        word (the positions in `word_starts`), else 0, with or without
        tags."""
        word_mask = np.zeros(self.labels.shape, "int32")
        for row, starts in enumerate(self.word_starts):
            word_mask[row, list(starts)] = 1
        return word_mask

    @property
    def word_inputs(self):
        """`inputs` and `word_mask`: the inputs of a word-level CRF tagger
        (`kfinetune.presets.token_classifier(crf=True)`).

        Example:

        ```python
        words = aligned.to_words(model.predict(aligned.word_inputs))
        ```
        """
        return {**self.inputs, "word_mask": self.word_mask}

    def inputs_for(self, model):
        """The inputs `model` takes, from `word_inputs`: `word_mask` only
        for a model with that input (a word-level CRF tagger),
        `segment_ids` (all 0: one segment) only for a model with that
        input, whether or not `inputs` holds them.

        Args:
            model: a Keras model with named inputs.

        Returns:
            A dict of arrays for `model.predict`.

        Raises:
            ValueError: `model` has a named input these rows cannot give.

        Example:

        ```python
        words = aligned.to_words(model.predict(aligned.inputs_for(model)))
        ```
        """
        names = {
            getattr(tensor, "name", None)
            for tensor in keras.tree.flatten(model.input)
        }
        if isinstance(model.input, dict):
            names.update(model.input)
        names.discard(None)
        available = dict(self.word_inputs)
        available.setdefault(
            "segment_ids", np.zeros_like(self.inputs["token_ids"])
        )
        if not names & available.keys():
            # Inputs named otherwise (or not at all): the model takes the
            # rows' inputs in order.
            return self.inputs
        missing = sorted(names - available.keys())
        if missing:
            raise ValueError(
                f"`model` takes inputs these rows do not hold: {missing}; "
                f"they hold {sorted(available)}. Received: model inputs "
                f"{sorted(names)}"
            )
        return {name: available[name] for name in available if name in names}

    def dataset(self, sample_weights=True, word_mask=None, model=None):
        """A `tf.data.Dataset` of `(inputs, labels[, sample_weight])` rows.

        Args:
            sample_weights: include the sample weights, which a softmax
                head's loss needs to ignore all but first pieces; the
                padding labels are then 0 instead of `-1` (TensorFlow's
                sparse cross-entropy rejects negative labels). Pass
                `False` for a CRF head (`kfinetune.layers.CRFLoss` ignores
                the `-1` labels at padding and scores the rest). Defaults
                to `True`.
            word_mask: give `word_inputs` (with `word_mask`) instead of
                `inputs`, for a word-level CRF tagger. Defaults to `None`:
                as `model` takes, or `False` without a model.
            model: the model to train, whose inputs the rows then hold
                exactly (`inputs_for(model)`): a backbone of a family
                without segment embeddings (RoBERTa, ...) takes no
                `segment_ids`. Defaults to `None` (`inputs` or
                `word_inputs`, as `word_mask` says).

        Returns:
            An unbatched `tf.data.Dataset`.

        Raises:
            ValueError: the rows have no tags, `model` takes an input they
                lack, or `word_mask` contradicts `model`.

        Example:

        ```python
        rows = aligned.dataset(model=model)
        model.fit(rows.shuffle(1000).batch(16), epochs=3)
        ```
        """
        checks.boolean("sample_weights", sample_weights)
        if word_mask is not None:
            checks.boolean("word_mask", word_mask)
        if model is None:
            inputs = self.word_inputs if word_mask else self.inputs
        else:
            inputs = self.inputs_for(model)
            if word_mask is not None and word_mask != ("word_mask" in inputs):
                raise ValueError(
                    f"`word_mask={word_mask}` contradicts the model, which "
                    f"takes {sorted(inputs)}. Received: "
                    f"word_mask={word_mask}, model={model.name!r}"
                )
        if not self.has_tags:
            raise ValueError(
                "These rows were aligned without tags (for prediction): "
                "there is nothing to train on. Align tagged sentences "
                "(`align_tags(sentences, tags, ...)`) for `fit`. "
                "Received: tags=None"
            )
        if not sample_weights:
            return tf.data.Dataset.from_tensor_slices((inputs, self.labels))
        # TensorFlow's sparse cross-entropy rejects -1 even at weight 0.
        labels = np.maximum(self.labels, 0)
        return tf.data.Dataset.from_tensor_slices(
            (inputs, labels, self.sample_weight)
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
            of the sentence. A word in several windows is read from the
            one where it has the most context on its tighter side.

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
        words = [[outside] * total for total in self.num_words]
        context = [[-1] * total for total in self.num_words]
        for row, starts in enumerate(self.word_starts):
            sentence = self.sentence_index[row]
            first = self.first_word[row]
            total = self.num_words[sentence]
            for k, position in enumerate(starts):
                # Words of context on each side inside this window; a
                # window edge at the sentence's edge costs nothing.
                left = k if first > 0 else total
                right = (
                    len(starts) - 1 - k
                    if first + len(starts) < total
                    else total
                )
                word = first + k
                if min(left, right) > context[sentence][word]:
                    context[sentence][word] = min(left, right)
                    words[sentence][word] = self.tag_names[
                        predictions[row, position]
                    ]
        return words


def _continuation(tag, index):
    prefix, _, kind = tag.partition("-")
    if kind and prefix in ("B", "I") and f"I-{kind}" in index:
        return index[f"I-{kind}"]
    return index[tag]


def _family_inputs(family, **inputs):
    """The entries of `inputs` that `family`'s backbone takes, in
    `kfinetune.encoders.input_names`' order."""
    if not family.segment_ids:
        del inputs["segment_ids"]
    return inputs


def _windows(counts, room, overlap):
    """`(start, stop)` word ranges of the windows of one sentence whose
    words have `counts` pieces (each at most `room`): as many whole words
    as fit in `room` pieces, the next window starting `overlap` words
    before the last one's end (and at least one word after its start)."""
    windows, start = [], 0
    while True:
        stop, used = start, 0
        while stop < len(counts) and used + counts[stop] <= room:
            used += counts[stop]
            stop += 1
        windows.append((start, stop))
        if stop >= len(counts):
            return windows
        start = max(start + 1, stop - overlap)


def align_tags(
    sentences, tags, tokenizer, tag_names, sequence_length=64, overlap=8
):
    """Tokenizes tagged words and aligns their tags to word pieces.

    See the module docstring for the labels each piece gets and how long
    sentences are split into windows.

    Args:
        sentences: a sequence of sentences, each a sequence of word strings.
        tags: the tag strings of every word, shaped like `sentences`, or
            `None` to align words for prediction only.
        tokenizer: the keras-hub tokenizer of a supported encoder family
            (`kfinetune.encoders.family_of_tokenizer`: WordPiece,
            SentencePiece or byte-level BPE), or a preprocessor holding
            one. A word it turns into no piece at all gets its unknown
            token.
        tag_names: the tag vocabulary, in label order.
        sequence_length: the padded length, the start and end tokens
            included.
            Defaults to `64`.
        overlap: the words that consecutive windows of a long sentence
            share. Defaults to `8`.

    Returns:
        A `TokenLabels`.

    Raises:
        ValueError: if `sequence_length` is below 3, `overlap` is negative,
            a sentence's words and tags differ in number, a tag is not
            in `tag_names`, or `tokenizer` is not of a supported family.

    Example:

    ```python
    tokenizer = keras_hub.models.BertTokenizer.from_preset(
        str(kfinetune.presets.minilm_path()))
    aligned = kfinetune.data.align_tags(
        [["John", "lives", "here"]], [["B-PER", "O", "O"]], tokenizer,
        tag_names=("O", "B-PER", "I-PER"))
    # New text to tag:
    rows = kfinetune.data.align_tags(
        [["Mary", "left"]], None, tokenizer, tag_names=aligned.tag_names)
    rows.to_words(model.predict(rows.inputs))  # [["B-PER", "O"]]
    ```
    """
    checks.at_least("sequence_length", sequence_length, 3, integer=True)
    checks.non_negative_integer("overlap", overlap)
    family = encoders.family_of_tokenizer(tokenizer)
    tag_names = tuple(tag_names)
    index = {name: i for i, name in enumerate(tag_names)}
    has_tags = tags is not None
    if not has_tags:
        tags = [[None] * len(words) for words in sentences]
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
            if has_tags and tag not in index:
                raise ValueError(
                    f"Sentence {number}: unknown tag {tag!r}, not in "
                    f"`tag_names`. Received: tag_names={tag_names!r}"
                )
    flat = [word for words in sentences for word in words]
    # A word longer than a row keeps the pieces that fit, its first among
    # them.
    room = sequence_length - 2
    pieces = [ids[:room] for ids in word_pieces.word_token_ids(tokenizer, flat)]
    cls, sep, pad = word_pieces.special_token_ids(tokenizer)
    outside = index.get("O", 0)
    rows, cursor = [], 0
    for number, (words, word_tags) in enumerate(
        zip(sentences, tags, strict=True)
    ):
        sentence_pieces = pieces[cursor : cursor + len(words)]
        cursor += len(words)
        counts = [len(p) for p in sentence_pieces]
        for start, stop in _windows(counts, room, overlap):
            ids, piece_labels, starts = [cls], [outside], []
            for tag, one_word in zip(
                word_tags[start:stop], sentence_pieces[start:stop], strict=True
            ):
                starts.append(len(ids))
                ids += one_word
                if has_tags:
                    piece_labels += [index[tag]] + [
                        _continuation(tag, index)
                    ] * (len(one_word) - 1)
            ids.append(sep)
            piece_labels.append(outside)
            rows.append((number, start, ids, piece_labels, starts))
    shape = (len(rows), sequence_length)
    token_ids = np.full(shape, pad)
    labels = np.full(shape, PADDING_LABEL, "int32")
    weight = np.zeros(shape, "float32")
    padding = np.zeros(shape, "int32")
    for row, (_, _, ids, piece_labels, starts) in enumerate(rows):
        token_ids[row, : len(ids)] = ids
        padding[row, : len(ids)] = 1
        if has_tags:
            labels[row, : len(ids)] = piece_labels
            weight[row, starts] = 1.0
    return TokenLabels(
        inputs=_family_inputs(
            family,
            token_ids=token_ids.astype("int32"),
            segment_ids=np.zeros_like(token_ids, "int32"),
            padding_mask=padding,
        ),
        labels=labels,
        sample_weight=weight,
        word_starts=tuple(tuple(row[4]) for row in rows),
        num_words=tuple(len(words) for words in sentences),
        tag_names=tag_names,
        sentence_index=tuple(row[0] for row in rows),
        first_word=tuple(row[1] for row in rows),
        has_tags=has_tags,
    )
