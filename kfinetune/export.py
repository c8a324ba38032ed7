"""Export a keras-hub text classifier or a tagger as a SavedModel that
reads raw text.

`model.export` serves the model's own inputs (token ids, padding mask); a
deployed classifier should take strings. This puts the preprocessor (the
tokenizer and packer) into the SavedModel graph.
"""

import keras
import tensorflow as tf


def export_text_classifier(model, filepath, class_names=None, verbose=True):
    """Exports a text classifier with its preprocessor as a SavedModel.

    The SavedModel's `serve` endpoint (also its `serving_default`
    signature) takes a 1-D `tf.string` tensor of texts and returns a dict:
    `outputs` (what `model.predict` returns for those texts: logits unless
    the model has an activation), `class_ids` (the arg-max) and, when
    `class_names` are given, `labels` (the class names as strings).

    The tokenizer uses TensorFlow Text ops: load the SavedModel with
    `load_text_classifier`, which registers them first.

    Args:
        model: a built keras-hub `TextClassifier` with a `preprocessor`.
        filepath: the folder to write.
        class_names: optional class names, one per model output.
        verbose: print the endpoint summary. Defaults to `True`.

    Raises:
        ValueError: the model has no preprocessor, or `class_names` does not
            match the number of outputs.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    kfinetune.export.export_text_classifier(
        model, "exported/", class_names=["negative", "positive"])
    reloaded = kfinetune.export.load_text_classifier("exported/")
    reloaded.serve(tf.constant(["what a great day"]))["labels"]
    ```
    """
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None:
        raise ValueError(
            "`model` has no preprocessor, so the export could not read raw "
            "text. Attach one (`model.preprocessor = ...`) or build the model "
            "with `kfinetune.presets.text_classifier`. "
            f"Received: model={model.name!r} with preprocessor=None"
        )
    num_outputs = model.outputs[0].shape[-1]
    if class_names is not None and len(class_names) != num_outputs:
        raise ValueError(
            f"`class_names` must hold one name per model output "
            f"({num_outputs}). Received: class_names={list(class_names)!r}"
        )
    names = None if class_names is None else tf.constant(list(class_names))

    def serve(texts):
        outputs = model(preprocessor(texts), training=False)
        class_ids = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        result = {"outputs": outputs, "class_ids": class_ids}
        if names is not None:
            result["labels"] = tf.gather(names, class_ids)
        return result

    if not preprocessor.built:
        # The export archive only tracks built layers; a preprocessor
        # builds on its first call.
        preprocessor(tf.constant([""]))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)
    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    archive.write_out(str(filepath), verbose=verbose)


def load_text_classifier(filepath):
    """Loads a SavedModel written by `export_text_classifier`.

    Imports `tensorflow_text` first so that the tokenizer's ops are
    registered (a plain `tf.saved_model.load` fails without it).

    Args:
        filepath: the exported folder.

    Returns:
        The loaded object; call `.serve(tf.constant([...]))`.
    """
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    return tf.saved_model.load(str(filepath))


def _word_pieces(tokenizer, words, room):
    """Ragged `(words, pieces)` ids of a flat string tensor of words: at
    most `room` pieces a word, and the out-of-vocabulary id for a word the
    tokenizer erases (as `kfinetune.data.align_tags` does)."""
    pieces = tokenizer(words)
    if not isinstance(pieces, tf.RaggedTensor):
        pieces = tf.RaggedTensor.from_tensor(pieces)
    pieces = tf.cast(pieces, tf.int32)[:, :room]
    unknown = tokenizer.token_to_id(tokenizer.oov_token)
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

    A sentence whose pieces do not fit in one row of `sequence_length`
    (with `[CLS]` and `[SEP]`) is split into consecutive windows of whole
    words, each tagged on its own; unlike `align_tags`, consecutive
    windows do not overlap. A word with more pieces than a row holds keeps
    its first pieces. Nothing is dropped: every word gets a tag.

    Works for `kfinetune.presets.token_classifier` models (softmax logits,
    of which the arg-max is taken, or a CRF's tags; a model with a
    `word_mask` input gets it).

    Load it with `load_text_classifier` (it registers the tokenizer's
    TensorFlow Text ops).

    Args:
        model: a tagger over `token_ids`, `segment_ids` and `padding_mask`
            (and optionally `word_mask`) of a fixed length, returning
            per-piece logits `(batch, length, num_tags)` or tags
            `(batch, length)`.
        tokenizer: the keras-hub word-piece tokenizer the model was
            trained with (with `cls_token_id`, `sep_token_id`,
            `pad_token_id` and `oov_token`), or a preprocessor holding one.
        tag_names: the tag vocabulary in label order (e.g.
            `TaggedSentences.tag_names`).
        filepath: the folder to write.
        sequence_length: the row length; must equal the model's input
            length. Defaults to that length.
        verbose: print the endpoint summary. Defaults to `True`.

    Raises:
        ValueError: a model without the inputs above or without a fixed
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
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    inputs = model.input if isinstance(model.input, dict) else {}
    needed = {"token_ids", "segment_ids", "padding_mask"}
    if not needed <= set(inputs) or set(inputs) - needed - {"word_mask"}:
        raise ValueError(
            "`model` must take a dict of `token_ids`, `segment_ids`, "
            "`padding_mask` and optionally `word_mask` (a "
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
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    pad = tokenizer.pad_token_id
    wants_word_mask = "word_mask" in inputs

    def serve(texts):
        words = tf.strings.split(texts)
        flat_words = words.flat_values
        pieces = _word_pieces(tokenizer, flat_words, room)
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
        features = {
            "token_ids": token_ids,
            "segment_ids": tf.zeros_like(token_ids),
            "padding_mask": padding_mask,
        }
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
    archive.track(tokenizer)
    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    archive.write_out(str(filepath), verbose=verbose)
