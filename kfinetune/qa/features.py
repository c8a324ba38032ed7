"""`QAFeatures` and `prepare_features`: questions and contexts as windows
of encoder inputs with the answer's start and end token.

Each context piece keeps its characters in the context, so that an
answer is exactly its pieces' text. keras-hub's tokenizers report no
offsets; each tokenizer kind gets them its own way:

- WordPiece: the context is tokenized word by word (it splits text on
  whitespace anyway), and inside its word each piece's text (its `##`
  stripped) is found after the piece before it, in the word lower-cased
  as the tokenizer does it (NFKC and case folding).
- SentencePiece: word by word too (it marks every word's start with `▁`
  and never joins words); each piece's text (its `▁` stripped) is found
  in the word normalised as SentencePiece does it (NFKC), case folded on
  both sides. A bare `▁` covers no character, and an unknown piece
  covers the characters between the pieces found around it. The offsets
  are Hugging Face's fast tokenizers', except that no span starts with
  whitespace (DeBERTa-v3's fast tokenizer puts the space before a word
  in its first piece) and a bare `▁` covers nothing (ALBERT's and
  XLM-RoBERTa's give it the next character).
- byte-level BPE: the context is tokenized whole, as running text (the
  first word without a space before it, as Hugging Face tokenizes a
  pair's second text). The pieces spell the context's UTF-8 bytes, so
  each piece's bytes give its characters exactly; a character whose
  bytes are split between pieces belongs to both, and the spaces a piece
  starts or ends with (`Ġ`) are trimmed off its span, as Hugging Face's
  `trim_offsets` does. The offsets are Hugging Face's fast tokenizer's.

`segment_ids` are computed for every family (0 up to the question's
end tokens, 1 on the context and the last end token), though RoBERTa,
DistilBERT, DeBERTa-v3 and XLM-RoBERTa backbones take none: a question
answerer's span head reads them to score context pieces only.
"""

import dataclasses
import functools
import re
import sys
import unicodedata

import numpy as np
import tensorflow as tf

from kfinetune import checks
from kfinetune import encoders
from kfinetune.data import word_pieces

_WORD = re.compile(r"\S+")


@dataclasses.dataclass(frozen=True)
class QAFeatures:
    """Token windows of question answering examples, ready for `fit`.

    Each row is one window `[CLS] question [SEP] context window [SEP]`
    (`<s> question </s></s> context window </s>` for RoBERTa and
    XLM-RoBERTa: the family's start, end and pair separator), padded to
    the sequence length. A context longer than one window gives
    several rows of the same example.

    Args:
        token_ids: int32 array `(rows, sequence_length)`.
        segment_ids: int32 array, 0 for the start token, the question and
            the end tokens after it, 1 for the context window and the last
            end token, 0 for padding (computed for every family: the span
            head masks non-context tokens with them).
        padding_mask: int32 array, 1 on real tokens.
        start_positions: int32 array `(rows,)`: the answer's first token,
            or 0 (`[CLS]`) when the answer is not inside this window or the
            question is unanswerable.
        end_positions: int32 array `(rows,)`: the answer's last token, or 0.
        example_index: int32 array `(rows,)`: the row's example, as an
            index into the examples passed to `prepare_features`.
        offsets: int32 array `(rows, sequence_length, 2)`: the character
            span `[start, end)` of each context token in the context, `-1`
            on every other token.
        examples: the examples, in the order they were passed.

    Example:

    ```python
    features = kfinetune.qa.prepare_features(examples, tokenizer)
    model.fit(features.dataset().batch(16))
    ```
    """

    token_ids: np.ndarray
    segment_ids: np.ndarray
    padding_mask: np.ndarray
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    offsets: np.ndarray
    examples: tuple

    def inputs(self):
        """The model inputs: a dict of `token_ids`, `segment_ids` and
        `padding_mask` arrays, the inputs of
        `kfinetune.qa.question_answerer` on every encoder family (its span
        head reads `segment_ids` even where the backbone does not)."""
        return {
            "token_ids": self.token_ids,
            "segment_ids": self.segment_ids,
            "padding_mask": self.padding_mask,
        }

    def targets(self):
        """The targets of `kfinetune.presets.question_answerer`: a dict of
        `start` and `end` token positions."""
        return {"start": self.start_positions, "end": self.end_positions}

    def dataset(self):
        """A `tf.data.Dataset` of `(inputs, targets)` rows, unbatched."""
        return tf.data.Dataset.from_tensor_slices(
            (self.inputs(), self.targets())
        )


def _folded(char):
    # What `tf_text.case_fold_utf8` does: NFKC, then case folding.
    return unicodedata.normalize("NFKC", char).casefold()


def _normalised(word, lowercase):
    """The word as the tokenizer reads it, and for each of its characters
    the index of the word's character it came from."""
    chars, origin = [], []
    for index, char in enumerate(word):
        if lowercase:
            char = _folded(char)
        chars.append(char)
        origin.extend([index] * len(char))
    return "".join(chars), origin


def _piece_spans(word, pieces, lowercase):
    """The character span `[start, end)` in `word` of each of its pieces.

    Each piece's text (without its `##` or `▁`) is found in the word after
    the piece before it. A piece that is not found (the unknown token, or
    a character the tokenizer normalised away) covers the characters
    between its found neighbours; an empty piece (a bare `▁`) covers none.
    """
    text, origin = _normalised(word, lowercase)
    found = [None] * len(pieces)
    position = 0
    for k, piece in enumerate(pieces):
        at = text.find(piece, position) if piece else -1
        if at >= 0:
            found[k] = (origin[at], origin[at + len(piece) - 1] + 1)
            position = at + len(piece)
    spans, left = [], 0
    for k, span in enumerate(found):
        if span is None and pieces[k] == "":
            span = (left, left)
        elif span is None:
            right = next((s[0] for s in found[k + 1 :] if s), len(word))
            span = (left, max(left, right))
        spans.append(span)
        left = span[1]
    return spans


@functools.cache
def _byte_values():
    """GPT-2's byte-level symbols (`Ġ` for a space, ...) to the bytes they
    stand for: printable bytes stand for themselves, the others for
    characters from U+0100 on, in byte order."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    return {
        chr(b) if b in printable else chr(next(extra)): b for b in range(256)
    }


def _byte_pair_tokens(tokenizer, context):
    """The context's byte-level BPE pieces, tokenized whole, and each
    piece's character span (see the module docstring)."""
    ids = word_pieces.token_ids(tokenizer, [context])[0]
    values = _byte_values()
    encoded = context.encode("utf-8")
    # The character of every byte of the context.
    char_of = [
        index
        for index, char in enumerate(context)
        for _ in char.encode("utf-8")
    ]
    spans, position = [], 0
    for i in ids:
        token = tokenizer.id_to_token(i)
        piece = bytes(values[c] for c in token if c in values)
        if len(piece) != len(token) or not encoded.startswith(piece, position):
            raise ValueError(
                "The byte-level tokenizer's pieces do not spell the context "
                f"back (piece {token!r} at byte {position}): is its "
                f"vocabulary missing byte symbols? Received: "
                f"context={context!r}"
            )
        if not piece:
            spans.append((len(context), len(context)))
            continue
        start = char_of[position]
        end = char_of[position + len(piece) - 1] + 1
        position += len(piece)
        # Spaces only, as Hugging Face trims (a tab piece keeps its tab).
        while start < end and context[start] == " ":
            start += 1
        while end > start and context[end - 1] == " ":
            end -= 1
        spans.append((start, end))
    return ids, spans


@functools.cache
def folded_characters():
    """The characters that lower-casing changes in `_normalised`: their
    code points, sorted, and the text each becomes.

    `kfinetune.export.export_question_answerer` matches pieces in a
    TensorFlow graph with this table, so that it reads words as
    `prepare_features` does.
    """
    codes, texts = [], []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue  # Surrogates: never in a word, nor in decoded UTF-8.
        folded = _folded(chr(code))
        if folded != chr(code):
            codes.append(code)
            texts.append(folded)
    return tuple(codes), tuple(texts)


@functools.cache
def whitespace():
    """The code points that separate the words of a context (`_WORD`
    matches runs of anything else: `re` follows `str.isspace`), sorted."""
    return tuple(c for c in range(sys.maxunicode + 1) if chr(c).isspace())


def piece_texts(tokenizer):
    """Each token id's text as it appears in a word of a WordPiece
    tokenizer (`##` stripped, `None` for the unknown token and the
    special tokens)."""
    suffix = getattr(tokenizer, "suffix_indicator", "##")
    special = {
        getattr(tokenizer, name, None)
        for name in ("oov_token", "cls_token", "sep_token", "pad_token")
    }
    texts = []
    for token in tokenizer.get_vocabulary():
        if token in special:
            texts.append(None)
        else:
            texts.append(
                token[len(suffix) :] if token.startswith(suffix) else token
            )
    return texts


def _sentencepiece_texts(tokenizer, pieces):
    """Each SentencePiece piece's text as found in its word: its `▁`
    stripped, case folded (`_normalised` folds the word), `None` for the
    unknown piece."""
    unknown = word_pieces.unknown_token_id(tokenizer)
    texts = []
    for i in pieces:
        token = tokenizer.id_to_token(i)
        if i == unknown:
            texts.append(None)
        else:
            texts.append(_folded(token.removeprefix("▁")))
    return texts


def _context_tokens(tokenizer, family, texts_by_id, context, cache):
    """The context's pieces with the character span of each piece (see
    the module docstring): byte-level BPE tokenizes the context whole;
    WordPiece and SentencePiece word by word, each piece's text matched
    to its word's characters (`_piece_spans`)."""
    if family.tokenizer == encoders.BYTE_BPE:
        if context not in cache:
            cache[context] = _byte_pair_tokens(tokenizer, context)
        return cache[context]
    words = [(m.start(), m.end()) for m in _WORD.finditer(context)]
    missing = sorted({context[a:b] for a, b in words} - cache.keys())
    sentencepiece = family.tokenizer == encoders.SENTENCEPIECE
    lowercase = sentencepiece or bool(getattr(tokenizer, "lowercase", False))
    for word, pieces in zip(
        missing, word_pieces.token_ids(tokenizer, missing), strict=True
    ):
        if sentencepiece:
            texts = _sentencepiece_texts(tokenizer, pieces)
        else:
            texts = [texts_by_id[i] for i in pieces]
        cache[word] = (pieces, _piece_spans(word, texts, lowercase))
    ids, spans = [], []
    for a, b in words:
        pieces, relative = cache[context[a:b]]
        ids.extend(pieces)
        spans.extend((a + start, a + end) for start, end in relative)
    return ids, spans


def _answer_tokens(spans, example):
    """First and last context token of the first answer, or `None`."""
    if example.is_impossible or not example.answers:
        return None
    first = example.answer_starts[0]
    last = first + len(example.answers[0])
    tokens = [i for i, (a, b) in enumerate(spans) if a < last and b > first]
    if not tokens:
        raise ValueError(
            f"The answer of question {example.id!r} covers no context token "
            f"(is it only whitespace?). Received: "
            f"answer={example.answers[0]!r}"
        )
    return tokens[0], tokens[-1]


def prepare_features(
    examples,
    tokenizer,
    sequence_length=384,
    document_stride=128,
    max_question_length=64,
):
    """Turns question answering examples into windows of encoder inputs.

    Each example becomes `[CLS] question [SEP] context [SEP]`, or
    `<s> question </s></s> context </s>` for RoBERTa and XLM-RoBERTa (the
    family's start and end tokens and pair separator,
    `kfinetune.encoders.EncoderFamily.pair_separator`). A context
    too long for one window is split into windows that start
    `document_stride` context tokens apart, so consecutive windows overlap
    and an answer cut by one window's edge lies whole in another. The
    answer's first and last tokens are the target of every window that
    holds the whole answer; every other window (and every window of an
    unanswerable question) targets `[CLS]`, position 0.

    Each context token remembers its own characters in the context (the
    tokenizer reports none: see the module docstring for how each
    tokenizer kind gets them), so a predicted answer is exactly the
    tokens' text: "German" inside "German-speaking", "Denver" without the
    full stop after it, "café" whole when its "é" is split between two
    byte-level pieces. The SQuAD reference implementation tightens its
    answers to the pieces the same way.

    Args:
        examples: a list of `kfinetune.data.QAExample`s (e.g. from
            `kfinetune.data.from_squad`).
        tokenizer: the keras-hub tokenizer of a supported encoder family
            (`kfinetune.encoders.family_of_tokenizer`: WordPiece,
            SentencePiece or byte-level BPE), or a preprocessor holding
            one.
        sequence_length: the length of every window. Defaults to `384`.
        document_stride: context tokens between the starts of consecutive
            windows. When it exceeds the context room of a window, the room
            is used instead, so no context token is skipped. Defaults to
            `128`.
        max_question_length: questions are cut to this many tokens.
            Defaults to `64`.

    Returns:
        A `QAFeatures`.

    Raises:
        ValueError: an argument is out of range, `examples` is empty,
            `tokenizer` is not of a supported family, or a window has no
            room for context tokens.

    Example:

    ```python
    preprocessor = kfinetune.presets.text_classifier_preprocessor()
    features = kfinetune.qa.prepare_features(
        kfinetune.data.from_squad("train.json"),
        preprocessor.tokenizer,
        sequence_length=256,
    )
    features.token_ids.shape  # (windows, 256)
    ```
    """
    checks.at_least("sequence_length", sequence_length, 4, integer=True)
    checks.positive_integer("document_stride", document_stride)
    checks.positive_integer("max_question_length", max_question_length)
    examples = tuple(examples)
    if not examples:
        raise ValueError(
            "`examples` must hold at least one example. "
            f"Received: examples={examples!r}"
        )
    family = encoders.family_of_tokenizer(tokenizer)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    cls, sep, pad = word_pieces.special_token_ids(tokenizer)
    # The end tokens between the question and the context.
    separator = [sep] * family.pair_separator
    questions = word_pieces.token_ids(tokenizer, [e.question for e in examples])
    rows, cache = [], {}
    texts_by_id = (
        piece_texts(tokenizer)
        if family.tokenizer == encoders.WORDPIECE
        else None
    )
    for index, example in enumerate(examples):
        question = questions[index][:max_question_length]
        room = sequence_length - len(question) - len(separator) - 2
        if room < 1:
            raise ValueError(
                f"Question {example.id!r} leaves no room for its context in "
                f"a window of {sequence_length} tokens. Raise "
                "`sequence_length` or lower `max_question_length`. "
                f"Received: max_question_length={max_question_length}"
            )
        ids, spans = _context_tokens(
            tokenizer, family, texts_by_id, example.context, cache
        )
        answer = _answer_tokens(spans, example)
        step = min(document_stride, room)
        start = 0
        while True:
            stop = min(start + room, len(ids))
            target = (0, 0)
            if answer and start <= answer[0] and answer[1] < stop:
                shift = len(question) + len(separator) + 1 - start
                target = (answer[0] + shift, answer[1] + shift)
            rows.append(
                (index, question, ids[start:stop], spans[start:stop], target)
            )
            if stop >= len(ids):
                break
            start += step
    shape = (len(rows), sequence_length)
    token_ids = np.full(shape, pad, "int32")
    segment_ids = np.zeros(shape, "int32")
    padding_mask = np.zeros(shape, "int32")
    offsets = np.full((*shape, 2), -1, "int32")
    for row, (_, question, ids, spans, _) in enumerate(rows):
        first = len(question) + len(separator) + 1
        length = first + len(ids) + 1
        token_ids[row, :length] = [cls, *question, *separator, *ids, sep]
        segment_ids[row, first:length] = 1
        padding_mask[row, :length] = 1
        if spans:
            offsets[row, first : first + len(spans)] = spans
    targets = np.array([row[4] for row in rows], "int32").reshape(-1, 2)
    return QAFeatures(
        token_ids=token_ids,
        segment_ids=segment_ids,
        padding_mask=padding_mask,
        start_positions=targets[:, 0],
        end_positions=targets[:, 1],
        example_index=np.array([row[0] for row in rows], "int32"),
        offsets=offsets,
        examples=examples,
    )
