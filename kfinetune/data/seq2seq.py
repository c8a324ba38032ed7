"""`seq2seq`: source and target texts as encoder-decoder LM rows.

Rows have the layout of the model's keras-hub `Seq2SeqLMPreprocessor`, so
a `Seq2SeqLM` built with `preprocessor=None` trains on them as they are:

- the encoder gets `<start> source... <end>`, cut (keeping `<end>`) or
  padded to `encoder_sequence_length`;
- the decoder row is `decoder start tokens, target..., <end>`, cut or
  padded to `decoder_sequence_length + 1` and shifted by one:
  `decoder_token_ids = row[:-1]`, `y = row[1:]`. BART's decoder starts with
  `</s> <s>` (`BartSeq2SeqLMPreprocessor`), so `y` starts with `<s>`;
  other models' start tokens are read from their preprocessor.

`sample_weight` is 1 on every label that is not padding, as keras-hub's
preprocessor gives it; the loss is on the target. A target cut short loses
its end token (unlike keras-hub's preprocessor, which keeps it): the model
should not learn to stop mid-target.
"""

import dataclasses

import keras_hub
import numpy as np

from kfinetune import checks
from kfinetune.data import model_rows
from kfinetune.data import tokenizing
from kfinetune.data.truncation import truncation_report


@dataclasses.dataclass(frozen=True)
class Seq2SeqLMData(model_rows.ModelRows):
    """Encoder-decoder rows of source and target texts.

    Attributes:
        inputs: a dict of int32 arrays: `encoder_token_ids` and
            `encoder_padding_mask` `(rows, encoder_sequence_length)`,
            `decoder_token_ids` and `decoder_padding_mask`
            `(rows, decoder_sequence_length)`, the inputs of a keras-hub
            `Seq2SeqLM` without a preprocessor.
        labels: int32 `(rows, decoder_sequence_length)`, the next decoder
            token of every position.
        sample_weight: float32 `(rows, decoder_sequence_length)`, 1 on
            every label that is not padding.
        source_truncation: a `kfinetune.data.TruncationReport` of the
            sources against `encoder_sequence_length`.
        target_truncation: the same for the targets against
            `decoder_sequence_length`.

    Example:

    ```python
    data = kfinetune.data.seq2seq(pairs, model.preprocessor, 512, 128)
    print(data.source_truncation, data.target_truncation)
    model.fit(data.dataset().shuffle(1000).batch(8))
    ```
    """

    source_truncation: object
    target_truncation: object


def _ids(value):
    """A packer's start or end value as a list of ids."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def _layout(tokenizer):
    """`(encoder_start, encoder_end, decoder_start, decoder_end)` id lists:
    a preprocessor's own, else BART's for a `BartTokenizer`, else the
    generic `Seq2SeqLMPreprocessor`'s."""
    if isinstance(tokenizer, keras_hub.models.Seq2SeqLMPreprocessor):
        if not tokenizer.built:
            tokenizer.build(None)
        add_start = getattr(tokenizer, "add_start_token", True)
        add_end = getattr(tokenizer, "add_end_token", True)
        encoder, decoder = tokenizer.encoder_packer, tokenizer.decoder_packer
        return (
            _ids(encoder.start_value) if add_start else [],
            _ids(encoder.end_value) if add_end else [],
            _ids(decoder.start_value),
            _ids(decoder.end_value) if add_end else [],
        )
    tokenizer = tokenizing.tokenizer_of(tokenizer)
    start = _ids(tokenizing.token_id(tokenizer, "start_token"))
    end = _ids(tokenizing.token_id(tokenizer, "end_token"))
    if isinstance(tokenizer, keras_hub.models.BartTokenizer):
        return start, end, end + start, end
    return start, end, start, end


def _describe(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _pair(example, index):
    if isinstance(example, dict) and {"source", "target"} <= set(example):
        source, target = example["source"], example["target"]
    elif isinstance(example, (tuple, list)) and len(example) == 2:
        source, target = example
    else:
        raise ValueError(
            f"Example {index} must be a dict with `source` and `target` or "
            f"a `(source, target)` pair. Received: example={_describe(example)}"
        )
    for name, value in (("source", source), ("target", target)):
        if not isinstance(value, str):
            raise ValueError(
                f"Example {index}: `{name}` must be a string. "
                f"Received: {name}={_describe(value)}"
            )
    return source, target


def seq2seq(
    examples,
    tokenizer,
    encoder_sequence_length,
    decoder_sequence_length,
):
    """Tokenizes source and target texts for an encoder-decoder LM.

    See the module docstring for the layout and truncation.

    Args:
        examples: a list of examples, each a dict `{"source", "target"}`
            (as `kfinetune.data.from_generation_jsonl` gives) or a
            `(source, target)` pair.
        tokenizer: the model's `Seq2SeqLMPreprocessor` (e.g.
            `model.preprocessor` or `BartSeq2SeqLMPreprocessor.from_preset`),
            whose start and end tokens are copied, or a keras-hub tokenizer:
            a `BartTokenizer` gets BART's layout, any other the generic
            `Seq2SeqLMPreprocessor`'s (`<start>` and `<end>` around both
            texts). Pass the preprocessor for T5-style models.
        encoder_sequence_length: the encoder's input length.
        decoder_sequence_length: the decoder's input length; decoder rows
            hold `decoder_sequence_length + 1` tokens before the shift.

    Returns:
        A `Seq2SeqLMData`.

    Raises:
        ValueError: if `examples` is empty, an example is malformed, a
            source or target has no tokens, a sequence length leaves no
            room for text, or the tokenizer has no end token. Messages name
            the example's index.

    Example:

    ```python
    tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=list(kfinetune.testing.VOCABULARY))
    data = kfinetune.data.seq2seq(
        [("the movie was good", "great"), ("a bad day", "awful")],
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=8)
    model = kfinetune.testing.small_seq2seq_lm()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(data.dataset().batch(8))
    ```
    """
    encoder_start, encoder_end, decoder_start, decoder_end = _layout(tokenizer)
    pad = tokenizing.token_id(tokenizing.tokenizer_of(tokenizer), "pad_token")
    pad = pad or 0
    encoder_special = len(encoder_start) + len(encoder_end)
    checks.at_least(
        "encoder_sequence_length",
        encoder_sequence_length,
        encoder_special + 1,
        integer=True,
    )
    # The decoder's start tokens, and one target token after them.
    checks.at_least(
        "decoder_sequence_length",
        decoder_sequence_length,
        len(decoder_start),
        integer=True,
    )
    if not decoder_end:
        raise ValueError(
            "The decoder rows would have no end token to end every target "
            "(the tokenizer has none, or the preprocessor's "
            f"`add_end_token` is False). Received: tokenizer={tokenizer!r}"
        )
    if not isinstance(examples, (list, tuple)) or not examples:
        raise ValueError(
            "`examples` must be a non-empty list. "
            f"Received: examples={_describe(examples)}"
        )
    pairs = [_pair(example, index) for index, example in enumerate(examples)]
    texts = [text for pair in pairs for text in pair]
    pieces = tokenizing.tokenize(tokenizing.tokenizer_of(tokenizer), texts)
    sources, targets = pieces[0::2], pieces[1::2]
    for index, (source, target) in enumerate(
        zip(sources, targets, strict=True)
    ):
        for name, ids in (("source", source), ("target", target)):
            if not ids:
                raise ValueError(
                    f"Example {index}: the {name} has no tokens once "
                    "tokenized. Received: "
                    f"{name}={_describe(pairs[index][name == 'target'])}"
                )
    rows = len(pairs)
    decoder_row = decoder_sequence_length + 1
    encoder_ids = np.full((rows, encoder_sequence_length), pad, "int32")
    encoder_mask = np.zeros((rows, encoder_sequence_length), "int32")
    decoder_ids = np.full((rows, decoder_row), pad, "int32")
    decoder_mask = np.zeros((rows, decoder_row), "int32")
    room = encoder_sequence_length - encoder_special
    for row, (source, target) in enumerate(zip(sources, targets, strict=True)):
        ids = encoder_start + source[:room] + encoder_end
        encoder_ids[row, : len(ids)] = ids
        encoder_mask[row, : len(ids)] = 1
        ids = (decoder_start + target + decoder_end)[:decoder_row]
        decoder_ids[row, : len(ids)] = ids
        decoder_mask[row, : len(ids)] = 1
    source_report = truncation_report(
        [len(source) + encoder_special for source in sources],
        encoder_sequence_length,
        name="sources",
        argument="encoder_sequence_length",
    )
    target_report = truncation_report(
        [
            len(decoder_start) + len(target) + len(decoder_end) - 1
            for target in targets
        ],
        decoder_sequence_length,
        name="targets",
        argument="decoder_sequence_length",
    )
    return Seq2SeqLMData(
        inputs={
            "encoder_token_ids": encoder_ids,
            "encoder_padding_mask": encoder_mask,
            "decoder_token_ids": decoder_ids[:, :-1],
            "decoder_padding_mask": decoder_mask[:, :-1],
        },
        labels=decoder_ids[:, 1:],
        sample_weight=decoder_mask[:, 1:].astype("float32"),
        source_truncation=source_report,
        target_truncation=target_report,
    )
