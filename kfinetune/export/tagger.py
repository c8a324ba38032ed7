"""`export_tagger`: a token classifier as a SavedModel that reads raw text
and returns one tag per word."""

import keras
import tensorflow as tf

from kfinetune import encoders
from kfinetune.data import word_pieces as word_pieces_lib
from kfinetune.export import pieces as pieces_lib


def _windows(sentence_ids, counts, room):
    """The window of every word (a flat int64 tensor, in word order): a
    new window at each sentence and wherever the next word's `counts`
    pieces no longer fit in `room`."""

    def step(state, word):
        window, sentence, used = state
        word_sentence, count = word
        new = tf.logical_or(
            tf.not_equal(word_sentence, sentence), used + count > room
        )
        window = tf.where(new, window + 1, window)
        used = tf.where(new, count, used + count)
        return window, word_sentence, used

    start = (
        tf.constant(-1, tf.int64),
        tf.constant(-1, tf.int64),
        tf.constant(0, tf.int64),
    )
    windows, _, _ = tf.scan(step, (sentence_ids, counts), initializer=start)
    return windows


def export_tagger(
    model, tokenizer, tag_names, filepath, sequence_length=None, verbose=True
):
    """Exports a tagger that reads raw text and returns one tag per word.

    The SavedModel's `serve` endpoint (also its `serving_default`
    signature) takes a 1-D `tf.string` tensor of sentences, splits each
    on whitespace into words, aligns the words to word pieces as
    `kfinetune.data.align_tags` does, runs `model` and returns a dict,
    one row per sentence, padded to the longest sentence of the batch:

    - `words`: the words, `""` at padding;
    - `tags`: each word's tag, read from its first piece, `""` at padding;
    - `tag_ids`: the tags' indices in `tag_names`, `-1` at padding;
    - `num_words`: the number of words of each sentence.

    Every family's tokenizer works: the words become pieces in the graph
    as `align_tags` tokenizes them (a byte-level BPE word after a space,
    a SentencePiece word with its `▁`), between the family's start and
    end tokens.

    A sentence whose pieces do not fit in one row of `sequence_length`
    (with the start and end tokens) is split into consecutive windows of whole
    words, each tagged on its own; unlike `align_tags`, consecutive
    windows do not overlap. A word with more pieces than a row holds keeps
    its first pieces. Nothing is dropped: every word gets a tag.

    Works for `kfinetune.presets.token_classifier` models (softmax logits,
    of which the arg-max is taken, or a CRF's tags; a model with a
    `word_mask` input gets it).

    Load it with `load_text_classifier` (it registers the tokenizer's
    TensorFlow Text ops).

    Args:
        model: a tagger over `token_ids` and `padding_mask` (and
            optionally `segment_ids`, which it gets all 0, and
            `word_mask`) of a fixed length, returning per-piece logits
            `(batch, length, num_tags)` or tags `(batch, length)`.
        tokenizer: the keras-hub tokenizer the model was trained with, of
            a supported encoder family (WordPiece, SentencePiece or
            byte-level BPE: `kfinetune.encoders.family_of_tokenizer`), or
            a preprocessor holding one.
        tag_names: the tag vocabulary in label order (e.g.
            `TaggedSentences.tag_names`).
        filepath: the folder to write.
        sequence_length: the row length; must equal the model's input
            length. Defaults to that length.
        verbose: print the endpoint summary. Defaults to `True`.

    Raises:
        ValueError: a tokenizer of no supported family, a model without
            the inputs above or without a fixed
            input length, a `sequence_length` that differs from it, or
            `tag_names` that do not match the model's number of tags.

    Example:

    ```python
    kfinetune.export.export_tagger(model, tokenizer, data.tag_names, "tagger/")
    tagger = kfinetune.export.load_text_classifier("tagger/")
    tagger.serve(tf.constant(["John lives in Paris"]))["tags"]
    # [[b"B-PER", b"O", b"O", b"B-LOC"]]
    ```
    """
    # Refuses a tokenizer of no supported family before anything else.
    encoders.family_of_tokenizer(tokenizer)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    inputs = model.input if isinstance(model.input, dict) else {}
    needed = {"token_ids", "padding_mask"}
    optional = {"segment_ids", "word_mask"}
    if not needed <= set(inputs) or set(inputs) - needed - optional:
        raise ValueError(
            "`model` must take a dict of `token_ids`, `padding_mask` and "
            "optionally `segment_ids` and `word_mask` (a "
            "`kfinetune.presets.token_classifier`). Received: model inputs "
            f"{sorted(inputs) if inputs else model.input!r}"
        )
    length = inputs["token_ids"].shape[1]
    output = model.output
    if length is None or len(output.shape) not in (2, 3):
        raise ValueError(
            "`model` must take inputs of a fixed length and return per-piece "
            "logits or tags (a `kfinetune.presets.token_classifier`). "
            f"Received: input shape {tuple(inputs['token_ids'].shape)}, "
            f"output shape {tuple(output.shape)}"
        )
    if sequence_length is None:
        sequence_length = length
    if (
        not isinstance(sequence_length, int)
        or isinstance(sequence_length, bool)
        or sequence_length != length
        or output.shape[1] != length
    ):
        raise ValueError(
            "`sequence_length` must equal the model's input length "
            f"({length}), and the model must return one output per piece. "
            f"Received: sequence_length={sequence_length!r}, output shape "
            f"{tuple(output.shape)}"
        )
    num_tags = output.shape[-1] if len(output.shape) == 3 else None
    tag_names = [str(name) for name in tag_names]
    if num_tags is not None and len(tag_names) != num_tags:
        raise ValueError(
            f"`tag_names` must hold one name per model output ({num_tags}). "
            f"Received: tag_names={tag_names!r}"
        )
    names = tf.constant(tag_names)
    room = sequence_length - 2
    cls, sep, pad = word_pieces_lib.special_token_ids(tokenizer)
    wants_word_mask = "word_mask" in inputs
    wants_segment_ids = "segment_ids" in inputs

    def serve(texts):
        words = tf.strings.split(texts)
        flat_words = words.flat_values
        pieces = pieces_lib.word_pieces(tokenizer, flat_words, room)
        counts = pieces.row_lengths()
        windows = _windows(words.value_rowids(), counts, room)
        num_windows = tf.reduce_max(tf.concat([[-1], windows], 0)) + 1
        # Rows of pieces, and 1 on each word's first piece.
        first = tf.ragged.range(counts) < 1
        piece_windows = tf.repeat(windows, counts)
        row_pieces = tf.RaggedTensor.from_value_rowids(
            pieces.flat_values, piece_windows, nrows=num_windows
        )
        row_first = tf.RaggedTensor.from_value_rowids(
            tf.cast(first.flat_values, tf.int32),
            piece_windows,
            nrows=num_windows,
        )
        edges = tf.fill([num_windows, 1], 1)
        token_ids = tf.concat(
            [edges * cls, row_pieces, edges * sep], axis=1
        ).to_tensor(pad, shape=[None, sequence_length])
        padding_mask = tf.concat(
            [edges, tf.ones_like(row_pieces), edges], axis=1
        ).to_tensor(0, shape=[None, sequence_length])
        word_mask = tf.concat(
            [edges * 0, row_first, edges * 0], axis=1
        ).to_tensor(0, shape=[None, sequence_length])
        features = {"token_ids": token_ids, "padding_mask": padding_mask}
        if wants_segment_ids:
            features["segment_ids"] = tf.zeros_like(token_ids)
        if wants_word_mask:
            features["word_mask"] = word_mask
        outputs = model(features, training=False)
        if len(outputs.shape) == 3:
            outputs = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        row_tags = tf.ragged.boolean_mask(
            tf.cast(outputs, tf.int32), word_mask > 0
        )
        word_tags = tf.RaggedTensor.from_row_lengths(
            row_tags.flat_values, words.row_lengths()
        )
        return {
            "words": words.to_tensor(""),
            "tags": tf.gather(names, word_tags).to_tensor(""),
            "tag_ids": word_tags.to_tensor(-1),
            "num_words": tf.cast(words.row_lengths(), tf.int32),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(pieces_lib.built(tokenizer))
    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    archive.write_out(str(filepath), verbose=verbose)
