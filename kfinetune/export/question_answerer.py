"""`export_question_answerer`: an extractive question answerer as a
SavedModel that reads questions and contexts and returns exact answers."""

import keras
import tensorflow as tf

from kfinetune import checks
from kfinetune import encoders
from kfinetune.export import pieces as pieces_lib
from kfinetune.qa import features as qa_features
from kfinetune.qa import model as qa_model
from kfinetune.qa.postprocess import check_no_answer_options


def _member(values, keys):
    """Whether each of the int32 `values` is in the sorted `keys`, and
    where."""
    keys = tf.constant(keys, tf.int32)
    at = tf.minimum(tf.searchsorted(keys, values), tf.size(keys) - 1)
    return tf.equal(tf.gather(keys, at), values), at


def _context_words(contexts):
    """The words of each context, its runs of non-whitespace as `\\S+`
    finds them in `prepare_features`: ragged `(contexts, words)` strings
    and their first characters' positions (int64)."""
    codes = tf.strings.unicode_decode(contexts, "UTF-8")
    space, _ = _member(codes.flat_values, qa_features.whitespace())
    position = tf.ragged.range(codes.row_lengths()).flat_values
    last = tf.gather(codes.row_lengths(), codes.value_rowids()) - 1
    word = tf.logical_not(space)
    # A context's first and last characters border on no other character.
    first = word & ((position == 0) | tf.roll(space, 1, 0))
    final = word & ((position == last) | tf.roll(space, -1, 0))
    rows = tf.boolean_mask(codes.value_rowids(), first)
    starts = tf.boolean_mask(position, first)
    words = tf.strings.substr(
        tf.gather(contexts, rows),
        starts,
        tf.boolean_mask(position, final) + 1 - starts,
        unit="UTF8_CHAR",
    )
    nrows = tf.size(contexts, tf.int64)
    return (
        tf.RaggedTensor.from_value_rowids(
            words, rows, nrows=nrows, validate=False
        ),
        tf.RaggedTensor.from_value_rowids(
            starts, rows, nrows=nrows, validate=False
        ),
    )


def _found_pieces(words, pieces, texts):
    """Where each piece's text is found in its word, as
    `kfinetune.qa.features._piece_spans` searches: at its first place in
    the word after the last piece found before it. A flat int64 tensor of
    positions in `words` (the normalised words, in characters), `-1` for a
    piece not found."""
    lengths = tf.cast(tf.strings.length(texts, unit="UTF8_CHAR"), tf.int64)
    word_lengths = tf.cast(tf.strings.length(words, "UTF8_CHAR"), tf.int64)
    word_of = pieces.value_rowids()
    index_in_word = tf.ragged.range(pieces.row_lengths()).flat_values
    # Every place each piece's text occurs in its word, in one pass.
    room = tf.gather(word_lengths, word_of) - lengths + 1
    candidates = tf.ragged.range(tf.where(lengths > 0, tf.nn.relu(room), 0))
    owner = candidates.value_rowids()
    same = tf.equal(
        tf.strings.substr(
            tf.gather(words, tf.gather(word_of, owner)),
            candidates.flat_values,
            tf.gather(lengths, owner),
            unit="UTF8_CHAR",
        ),
        tf.gather(texts, owner),
    )
    place = tf.boolean_mask(candidates.flat_values, same)
    owner = tf.boolean_mask(owner, same)
    owner_word = tf.gather(word_of, owner)
    owner_index = tf.gather(index_in_word, owner)
    num_pieces = tf.size(word_of, tf.int64)
    num_words = tf.size(words, tf.int64)
    nowhere = tf.int64.max

    # The search is sequential within a word: one step per piece index,
    # all words at once.
    def step(k, position, found):
        later = (owner_index == k) & (place >= tf.gather(position, owner_word))
        at = tf.math.unsorted_segment_min(
            tf.where(later, place, nowhere), owner, num_pieces
        )
        hit = (index_in_word == k) & (at < nowhere)
        moved = tf.math.unsorted_segment_max(
            tf.where(hit, at + lengths, -1), word_of, num_words
        )
        return (
            k + 1,
            tf.maximum(position, moved),
            tf.where(hit, at, found),
        )

    last = tf.reduce_max(index_in_word)
    _, _, found = tf.while_loop(
        lambda k, position, found: k <= last,
        step,
        (
            tf.constant(0, tf.int64),
            tf.zeros_like(word_lengths),
            -tf.ones_like(word_of),
        ),
    )
    return found


def _piece_spans(words, pieces, texts_by_id, lowercase):
    """The character span `[start, end)` of each piece in its word, as
    `kfinetune.qa.features._piece_spans` finds it: flat int64 starts and
    ends, in the order of `pieces.flat_values`."""
    chars = tf.strings.unicode_split(words, "UTF-8")
    folded = chars.flat_values
    if lowercase:
        codes, replacements = qa_features.folded_characters()
        changed, at = _member(
            tf.strings.unicode_decode(words, "UTF-8").flat_values, codes
        )
        folded = tf.where(changed, tf.gather(replacements, at), folded)
    # The word of the folded characters and, for each, its character.
    sizes = tf.strings.length(folded, unit="UTF8_CHAR")
    normalised = tf.strings.reduce_join(chars.with_flat_values(folded), 1)
    origin = tf.repeat(tf.ragged.range(chars.row_lengths()).flat_values, sizes)
    origin_starts = tf.math.cumsum(
        tf.reduce_sum(chars.with_flat_values(tf.cast(sizes, tf.int64)), 1),
        exclusive=True,
    )
    texts = tf.gather(texts_by_id, pieces.flat_values)
    found_at = _found_pieces(normalised, pieces, texts)
    found = found_at >= 0
    length = tf.cast(tf.strings.length(texts, unit="UTF8_CHAR"), tf.int64)
    word_of = pieces.value_rowids()
    base = tf.gather(origin_starts, word_of)
    start = tf.gather(origin, base + tf.where(found, found_at, 0))
    end = tf.gather(origin, base + tf.where(found, found_at + length - 1, 0))
    start = tf.where(found, start, 0)
    end = tf.where(found, end + 1, 0)
    # A piece not found covers the characters between the spans of the
    # pieces found before and after it (its word's ends when there is
    # none); of consecutive such pieces, the first takes them all.
    found_count = tf.cast(found, tf.int64)
    before = tf.math.cumsum(found_count, exclusive=True)
    before_in_word = before - tf.gather(
        before, tf.gather(pieces.row_starts(), word_of)
    )
    in_word = tf.gather(
        tf.reduce_sum(pieces.with_flat_values(found_count), 1), word_of
    )
    # One extra element keeps the gathers in range where nothing is found.
    found_starts = tf.concat([tf.boolean_mask(start, found), [0]], 0)
    found_ends = tf.concat([tf.boolean_mask(end, found), [0]], 0)
    left = tf.where(
        before_in_word > 0,
        tf.gather(found_ends, tf.maximum(before - 1, 0)),
        0,
    )
    right = tf.where(
        before_in_word + found_count < in_word,
        tf.gather(found_starts, before + found_count),
        tf.gather(chars.row_lengths(), word_of),
    )
    index_in_word = tf.ragged.range(pieces.row_lengths()).flat_values
    after_missing = (index_in_word > 0) & tf.logical_not(tf.roll(found, 1, 0))
    left = tf.where(after_missing, tf.maximum(left, right), left)
    start = tf.where(found, start, left)
    end = tf.where(found, end, tf.maximum(left, right))
    return start, end


def _qa_pieces(tokenizer, questions, contexts, texts_by_id, lowercase):
    """The pieces of each question, and the pieces of each context with
    their character spans in it, as `kfinetune.qa.prepare_features` finds
    them: ragged `(rows, pieces)` int32 question ids and context ids, and
    int64 context starts and ends."""
    words, word_starts = _context_words(contexts)
    # One tokenizer call: each call adds the tokenizer's ops to the graph.
    ids = pieces_lib.token_ids(
        tokenizer, tf.concat([questions, words.flat_values], 0)
    )
    pieces = ids[tf.size(questions) :]
    start, end = _piece_spans(words.flat_values, pieces, texts_by_id, lowercase)
    shift = tf.gather(word_starts.flat_values, pieces.value_rowids())
    by_context = tf.RaggedTensor.from_row_lengths(
        pieces, words.row_lengths(), validate=False
    ).merge_dims(1, 2)
    return (
        ids[: tf.size(questions)],
        by_context,
        by_context.with_flat_values(start + shift),
        by_context.with_flat_values(end + shift),
    )


def _best_spans(start_logits, end_logits, first, count, max_answer_length):
    """The best span of every row, as `kfinetune.qa.postprocess` picks it:
    float64 scores (`-inf` for a row without context) and the span's first
    and last positions, among the `count` context pieces from position
    `first`."""
    length = start_logits.shape[1]
    width = min(max_answer_length, length)
    positions = tf.range(length, dtype=tf.int64)
    # Spans by first position and number of further pieces: in the order
    # of postprocess's arg-max, which keeps the first of equal scores.
    last = positions[:, None] + tf.range(width, dtype=tf.int64)
    inside = last < length
    last = tf.minimum(last, length - 1)
    context = (positions >= first[:, None]) & (
        positions < (first + count)[:, None]
    )
    valid = context[:, :, None] & tf.gather(context, last, axis=1) & inside
    scores = tf.where(
        valid,
        start_logits[:, :, None] + tf.gather(end_logits, last, axis=1),
        float("-inf"),
    )
    scores = tf.reshape(scores, [-1, length * width])
    best = tf.reduce_max(scores, axis=1)
    index = tf.reduce_min(
        tf.where(
            scores == best[:, None],
            tf.range(length * width, dtype=tf.int64),
            length * width,
        ),
        axis=1,
    )
    return best, index // width, index // width + index % width


def _require_wordpiece(tokenizer):
    """Refuses a tokenizer of a family whose pieces are not WordPiece:
    the graph finds each piece's characters by matching WordPiece texts
    in their word."""
    family = encoders.family_of_tokenizer(tokenizer)
    if family.tokenizer != encoders.WORDPIECE:
        raise ValueError(
            "`export_question_answerer` finds each piece's characters "
            "inside the TensorFlow graph by matching WordPiece pieces, so "
            "it needs a WordPiece tokenizer (BERT, ELECTRA or DistilBERT). "
            f"The {family.name} family's tokenizer is {family.tokenizer}: "
            "answer in Python with `kfinetune.qa.prepare_features`, "
            "`model.predict` and `kfinetune.qa.postprocess` instead. "
            "Received: tokenizer="
            f"{type(getattr(tokenizer, 'tokenizer', tokenizer)).__name__}"
        )


def export_question_answerer(
    model,
    tokenizer,
    filepath,
    sequence_length=None,
    document_stride=128,
    max_question_length=64,
    max_answer_length=30,
    allow_no_answer=False,
    null_score_threshold=None,
    verbose=True,
):
    """Exports an extractive question answerer that reads raw text.

    The SavedModel's `serve` endpoint (also its `serving_default`
    signature) takes two 1-D `tf.string` tensors, `questions` and
    `contexts`, one question and its context per row, and returns a dict,
    one row per question:

    - `answers`: the answer, the context's own characters (a substring of
      it), `""` for no answer;
    - `start_char`, `end_char`: the answer's characters `[start, end)` in
      the context (Unicode characters, as Python indexes a `str`), `-1`
      for no answer;
    - `score`: the best span's score (its start plus end logit), also when
      the no-answer score wins; `-inf` for a context without words.

    All of it runs in the TensorFlow graph, in the steps and with the
    results of `kfinetune.qa.prepare_features`, `model.predict` and
    `kfinetune.qa.postprocess`:

    - each context is split into words at whitespace (`str.isspace`) and
      tokenized word by word; each piece's text (its token without `##`)
      is searched in its word, lower-cased as the tokenizer does it, after
      the last piece found before it, and a piece not found (the unknown
      token, a character the tokenizer normalised away) covers the
      characters between its found neighbours. So an answer is exactly its
      pieces' characters: "German" inside "German-speaking", "Denver"
      without the full stop after it;
    - `[CLS] question [SEP] context window [SEP]` rows, the question cut to
      `max_question_length` pieces and the windows `document_stride`
      pieces apart;
    - the best span of every question over all its windows: start plus
      end logit, start <= end, at most `max_answer_length` pieces, context
      pieces only; with `allow_no_answer`, `""` when the lowest `[CLS]`
      score of its windows beats it by more than `null_score_threshold`.

    The exported answers are the Python pipeline's, but for two things
    outside this function: in the graph the keras-hub tokenizer runs its
    TensorFlow ops, where `prepare_features` called eagerly runs its
    Python twin (keras-hub keeps them equal); and lower-casing follows the
    Unicode tables of the Python that exported the model. Contexts must be
    valid UTF-8.

    Load it with `load_text_classifier` (it registers the tokenizer's
    TensorFlow Text ops).

    Args:
        model: a `kfinetune.presets.question_answerer` or
            `kfinetune.qa.question_answerer`: `token_ids`, `segment_ids`
            and `padding_mask` in, `start` and `end` logits out.
        tokenizer: the keras-hub WordPiece tokenizer the model was
            trained with (BERT, ELECTRA or DistilBERT: with `[CLS]`,
            `[SEP]` and `[PAD]` tokens), or a preprocessor holding one.
            SentencePiece and byte-level BPE tokenizers are refused: the
            graph matches WordPiece pieces to find their characters.
        filepath: the folder to write.
        sequence_length: the row length. Defaults to the model's input
            length; required when that is not fixed.
        document_stride: context pieces between the starts of consecutive
            windows (the context room of a row when that is smaller).
            Defaults to `128`.
        max_question_length: questions are cut to this many pieces; a row
            must leave room for context after the longest. Defaults to
            `64`.
        max_answer_length: the longest answer, in pieces. Defaults to
            `30`.
        allow_no_answer: answer `""` when the no-answer score wins (SQuAD
            v2.0), as in `kfinetune.qa.postprocess`. Defaults to `False`.
        null_score_threshold: with `allow_no_answer`, how far the
            no-answer score must beat the best span's. Defaults to `None`
            (0.0); refused without `allow_no_answer`.
        verbose: print the endpoint summary. Defaults to `True`.

    Raises:
        ValueError: a model without the inputs and outputs above, a
            `sequence_length` that differs from the model's input length
            or leaves no room for context after `max_question_length`
            pieces, a tokenizer that is not a supported family's
            WordPiece tokenizer or lacks a vocabulary or special tokens, or
            an argument `kfinetune.qa.prepare_features` or
            `kfinetune.qa.postprocess` would refuse.

    Example:

    ```python
    model = kfinetune.presets.question_answerer(sequence_length=256)
    # ... fit on kfinetune.qa.prepare_features(examples, tokenizer, 256) ...
    kfinetune.export.export_question_answerer(model, tokenizer, "qa/")
    reader = kfinetune.export.load_text_classifier("qa/")
    reader.serve(
        questions=tf.constant(["Where was the game played?"]),
        contexts=tf.constant(["The game was played in Denver. It rained."]),
    )["answers"]
    # [b"Denver"]
    ```
    """
    _require_wordpiece(tokenizer)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    special = ("cls_token_id", "sep_token_id", "pad_token_id")
    if not hasattr(tokenizer, "get_vocabulary") or any(
        getattr(tokenizer, name, None) is None for name in special
    ):
        raise ValueError(
            "`tokenizer` must be a keras-hub word-piece tokenizer with "
            "`[CLS]`, `[SEP]` and `[PAD]` tokens (e.g. a `BertTokenizer`), "
            f"or a preprocessor holding one. Received: tokenizer={tokenizer!r}"
        )
    inputs = model.input if isinstance(model.input, dict) else {}
    outputs = model.output if isinstance(model.output, dict) else {}
    if set(inputs) != set(qa_model.INPUTS) or set(outputs) != {
        "start",
        "end",
    }:
        raise ValueError(
            "`model` must take a dict of `token_ids`, `segment_ids` and "
            "`padding_mask` and return a dict of `start` and `end` logits "
            "(a `kfinetune.presets.question_answerer`). Received: model "
            f"inputs {sorted(inputs) if inputs else model.input!r}, outputs "
            f"{sorted(outputs) if outputs else model.output!r}"
        )
    length = inputs["token_ids"].shape[1]
    if sequence_length is None and length is None:
        raise ValueError(
            "`sequence_length` is needed: the model takes inputs of any "
            "length. Received: sequence_length=None"
        )
    if sequence_length is None:
        sequence_length = length
    checks.at_least("sequence_length", sequence_length, 4, integer=True)
    if length is not None and sequence_length != length:
        raise ValueError(
            f"`sequence_length` must equal the model's input length "
            f"({length}). Received: sequence_length={sequence_length!r}"
        )
    checks.positive_integer("document_stride", document_stride)
    checks.positive_integer("max_question_length", max_question_length)
    if sequence_length - max_question_length - 3 < 1:
        raise ValueError(
            f"A row of {sequence_length} pieces leaves no room for the "
            f"context after a question of `max_question_length` pieces, "
            "`[CLS]` and two `[SEP]`. Raise `sequence_length` or lower "
            f"`max_question_length`. Received: max_question_length="
            f"{max_question_length}, sequence_length={sequence_length}"
        )
    checks.positive_integer("max_answer_length", max_answer_length)
    threshold = check_no_answer_options(allow_no_answer, null_score_threshold)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    pad = tokenizer.pad_token_id
    lowercase = bool(getattr(tokenizer, "lowercase", False))
    texts_by_id = tf.constant(
        [text or "" for text in qa_features.piece_texts(tokenizer)]
    )

    def serve(questions, contexts):
        tf.debugging.assert_equal(
            tf.size(questions),
            tf.size(contexts),
            message="`questions` and `contexts` must have one row each",
        )
        question_ids, ids, starts, ends = _qa_pieces(
            tokenizer, questions, contexts, texts_by_id, lowercase
        )
        question_ids = question_ids[:, :max_question_length]
        # The windows of every question, as prepare_features lays them.
        num_pieces = ids.row_lengths()
        room = sequence_length - question_ids.row_lengths() - 3
        stride = tf.minimum(tf.constant(document_stride, tf.int64), room)
        num_windows = 1 + tf.nn.relu((num_pieces - room + stride - 1) // stride)
        example = tf.repeat(tf.range(tf.size(contexts, tf.int64)), num_windows)
        window = tf.ragged.range(num_windows).flat_values
        begin = tf.gather(stride, example) * window
        stop = tf.minimum(
            begin + tf.gather(room, example), tf.gather(num_pieces, example)
        )
        offset = tf.gather(ids.row_starts(), example)
        window_pieces = tf.ragged.range(offset + begin, offset + stop)
        context = tf.gather(ids.flat_values, window_pieces)
        question = tf.gather(question_ids, example)
        edges = tf.ones([tf.size(example), 1], tf.int32)
        shape = [None, sequence_length]
        features = {
            "token_ids": tf.concat(
                [edges * cls, question, edges * sep, context, edges * sep],
                axis=1,
            ).to_tensor(pad, shape=shape),
            "segment_ids": tf.concat(
                [edges * 0, question * 0, edges * 0, context * 0 + 1, edges],
                axis=1,
            ).to_tensor(0, shape=shape),
            "padding_mask": tf.concat(
                [edges, question * 0 + 1, edges, context * 0 + 1, edges],
                axis=1,
            ).to_tensor(0, shape=shape),
        }
        logits = model(features, training=False)
        start_logits = tf.cast(logits["start"], tf.float64)
        end_logits = tf.cast(logits["end"], tf.float64)
        first = tf.gather(question_ids.row_lengths(), example) + 2
        score, span_first, span_last = _best_spans(
            start_logits, end_logits, first, stop - begin, max_answer_length
        )
        # The best span of each question over its windows: the first
        # window's of equal scores, as in postprocess.
        num_rows = tf.size(example, tf.int64)
        rows = tf.range(num_rows)
        has_context = stop > begin
        score = tf.where(has_context, score, float("-inf"))
        num_examples = tf.size(contexts)
        best = tf.math.unsorted_segment_max(score, example, num_examples)
        winner = tf.math.unsorted_segment_min(
            tf.where(
                has_context & (score == tf.gather(best, example)),
                rows,
                num_rows,
            ),
            example,
            num_examples,
        )
        answered = winner < num_rows
        if allow_no_answer:
            no_answer = tf.math.unsorted_segment_min(
                start_logits[:, 0] + end_logits[:, 0], example, num_examples
            )
            answered &= tf.logical_not(no_answer - best > threshold)
        winner = tf.minimum(winner, num_rows - 1)
        piece = tf.gather(offset + begin - first, winner)
        # One extra element keeps the gathers in range without answers.
        span_starts = tf.concat([starts.flat_values, [0]], 0)
        span_ends = tf.concat([ends.flat_values, [0]], 0)
        start_char = tf.gather(
            span_starts,
            tf.where(answered, piece + tf.gather(span_first, winner), 0),
        )
        end_char = tf.gather(
            span_ends,
            tf.where(answered, piece + tf.gather(span_last, winner), 0),
        )
        start_char = tf.where(answered, start_char, -1)
        end_char = tf.where(answered, end_char, -1)
        return {
            "answers": tf.strings.substr(
                contexts,
                tf.maximum(start_char, 0),
                tf.nn.relu(end_char - start_char),
                unit="UTF8_CHAR",
            ),
            "start_char": tf.cast(start_char, tf.int32),
            "end_char": tf.cast(end_char, tf.int32),
            "score": tf.cast(best, tf.float32),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(pieces_lib.built(tokenizer))
    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec([None], tf.string, name="questions"),
            tf.TensorSpec([None], tf.string, name="contexts"),
        ],
    )
    archive.write_out(str(filepath), verbose=verbose)
