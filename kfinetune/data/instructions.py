"""`instructions`: prompts and responses, or chats, as causal LM rows.

Rows have the layout of a keras-hub `CausalLMPreprocessor`: each example
is `<start> tokens... <end>` (without `<start>` when the tokenizer has no
start token, e.g. Qwen), cut or padded to `sequence_length + 1` tokens and
shifted by one: `x = {"token_ids": row[:-1], "padding_mask": ...}`,
`y = row[1:]`. A `CausalLM` built with `preprocessor=None` trains on them
as they are.

The loss is on the response only: `sample_weight` is 1 where `y` is a
response token or the end token after it, and 0 on the prompt, the start
token and padding. For a chat, the response is every assistant turn (see
`kfinetune.data.chat`).

The prompt and the response (each chat segment) are tokenized separately
and their ids concatenated, so the mask is exact. End the prompt with the
separator you want (`"...\\n"`); with a byte-pair tokenizer that marks
word-initial spaces (GPT-2, BART), start the response with a space if it
continues a line.

Truncation: an example longer than a row loses its last tokens, its end
token among them (the model should not learn to stop mid-reply).
`CausalLMData.truncation` reports how many were cut and the sequence
length that would hold 99 % of them whole. An example whose prompt leaves
no response token in the row is an error, or with `drop_long_prompts=True`
is left out (`truncation.dropped` lists it).

Packing (`pack=True`) concatenates consecutive examples, each with its
start and end tokens, into rows of `sequence_length + 1` tokens, as many
whole examples as fit, so less of each batch is padding. keras-hub causal
LMs take a 2-D `padding_mask` and no position ids, so neither the
attention nor the positions can be reset at an example's start: a packed
example attends to the earlier examples in its row, and its positions
continue theirs (as with Hugging Face TRL's packing without position ids).
The sample weights stay exact: each example's response and end token only,
never the next example's start token.
"""

import dataclasses

import keras_hub
import numpy as np

from kfinetune import checks
from kfinetune.data import chat as chat_lib
from kfinetune.data import model_rows
from kfinetune.data import tokenizing
from kfinetune.data.truncation import truncation_report

_END = None


@dataclasses.dataclass(frozen=True)
class CausalLMData(model_rows.ModelRows):
    """Causal LM rows with response-only sample weights.

    Attributes:
        inputs: a dict of int32 arrays `(rows, sequence_length)`:
            `token_ids` and `padding_mask`, the inputs of a keras-hub
            `CausalLM` without a preprocessor.
        labels: int32 `(rows, sequence_length)`, the next token of every
            position (`token_ids` shifted by one).
        sample_weight: float32 `(rows, sequence_length)`, 1 where the label
            is a response token or the end token after one, else 0.
        truncation: a `kfinetune.data.TruncationReport`.
        row_examples: per row, the indices of the examples it holds (one
            each, unless packed).

    Example:

    ```python
    data = kfinetune.data.instructions(examples, tokenizer, 256)
    print(data.truncation)
    model.fit(data.dataset().shuffle(1000).batch(8), epochs=2)
    ```
    """

    truncation: object
    row_examples: tuple


def _describe(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _segments(example, index, template):
    """`(text, learned)` segments of one example; text `None` is the end
    token."""
    where = f"Example {index}"
    if isinstance(example, dict) and "messages" in example:
        chat_lib.check_messages(example["messages"], where)
        return chat_lib.chat_segments(example["messages"], template)
    if isinstance(example, dict) and {"prompt", "response"} <= set(example):
        prompt, response = example["prompt"], example["response"]
    elif isinstance(example, (tuple, list)) and len(example) == 2:
        prompt, response = example
    else:
        raise ValueError(
            f"{where} must be a dict with `prompt` and `response`, a dict "
            "with `messages`, or a `(prompt, response)` pair. "
            f"Received: example={_describe(example)}"
        )
    for name, value in (("prompt", prompt), ("response", response)):
        if not isinstance(value, str):
            raise ValueError(
                f"{where}: `{name}` must be a string. "
                f"Received: {name}={_describe(value)}"
            )
    return [(prompt, False), (response, True), (_END, True)]


def _pack(lengths, row_length):
    """Consecutive examples grouped greedily into rows of `row_length`."""
    rows, current, used = [], [], 0
    for index, length in lengths:
        if current and used + length > row_length:
            rows.append(current)
            current, used = [], 0
        current.append(index)
        used += length
    if current:
        rows.append(current)
    return rows


def instructions(
    examples,
    tokenizer,
    sequence_length,
    *,
    chat_template=None,
    pack=False,
    drop_long_prompts=False,
):
    """Tokenizes prompts and responses, or chats, for a causal LM.

    See the module docstring for the row layout, the response-only loss,
    truncation and packing.

    Args:
        examples: a list of examples, each a dict `{"prompt", "response"}`,
            a `(prompt, response)` pair, or a chat `{"messages": [...]}`
            (as `kfinetune.data.from_generation_jsonl` gives). Kinds may
            be mixed.
        tokenizer: a keras-hub tokenizer (`GPT2Tokenizer`, `LlamaTokenizer`,
            `GemmaTokenizer`, ...) with an end token, or a
            `CausalLMPreprocessor` holding one (its `add_start_token` is
            then followed).
        sequence_length: the model's input length; rows hold
            `sequence_length + 1` tokens before the shift.
        chat_template: how chats are rendered: a dict mapping `"system"`,
            `"user"` and `"assistant"` to a string holding `{content}`
            once. `None` is `kfinetune.data.CHAT_TEMPLATE`. Defaults to
            `None`.
        pack: concatenate consecutive examples into full rows. Defaults to
            `False`.
        drop_long_prompts: leave out the examples whose prompt is so long
            that no response token fits in the row, instead of raising.
            Defaults to `False`.

    Returns:
        A `CausalLMData`.

    Raises:
        ValueError: if `examples` is empty, an example is malformed, a
            response (or every assistant turn of a chat) has no tokens,
            a prompt leaves no room for its response (without
            `drop_long_prompts`), every example was dropped, the tokenizer
            has no end token, or an argument is invalid. Messages name the
            example's index.

    Example:

    ```python
    tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=list(kfinetune.testing.VOCABULARY))
    data = kfinetune.data.instructions(
        [{"prompt": "was the movie good", "response": "it was great"},
         {"messages": [{"role": "user", "content": "hi"},
                       {"role": "assistant", "content": "i love it"}]}],
        tokenizer, sequence_length=16)
    model = kfinetune.testing.small_causal_lm("llama")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(data.dataset().batch(2))
    ```
    """
    checks.at_least("sequence_length", sequence_length, 2, integer=True)
    checks.boolean("pack", pack)
    checks.boolean("drop_long_prompts", drop_long_prompts)
    if chat_template is not None:
        chat_lib.check_template(chat_template)
    if not isinstance(examples, (list, tuple)) or not examples:
        raise ValueError(
            "`examples` must be a non-empty list. "
            f"Received: examples={_describe(examples)}"
        )
    add_start = True
    if isinstance(tokenizer, keras_hub.models.CausalLMPreprocessor):
        add_start = tokenizer.add_start_token
    tokenizer = tokenizing.tokenizer_of(tokenizer)
    start = tokenizing.token_id(tokenizer, "start_token")
    add_start = add_start and start is not None
    end = tokenizing.token_id(tokenizer, "end_token")
    pad = tokenizing.token_id(tokenizer, "pad_token") or 0
    if end is None:
        raise ValueError(
            "The tokenizer has no end token, which ends every response. "
            f"Received: tokenizer={tokenizer!r}"
        )
    segments = [
        _segments(example, index, chat_template)
        for index, example in enumerate(examples)
    ]
    texts = [text for row in segments for text, _ in row if text is not _END]
    pieces = iter(tokenizing.tokenize(tokenizer, texts))
    row_length = sequence_length + 1
    kept, needed, dropped = [], [], []
    for index, row in enumerate(segments):
        ids, learned = [], []
        if add_start:
            ids, learned = [start], [False]
        for text, is_learned in row:
            piece = [end] if text is _END else next(pieces)
            ids += piece
            learned += [is_learned] * len(piece)
        learned_ids = sum(learned) - row.count((_END, True))
        if not learned_ids:
            raise ValueError(
                f"Example {index}: the response (a chat's assistant turns) "
                "has no tokens once tokenized, so there is nothing to learn. "
                f"Received: example={_describe(examples[index])}"
            )
        needed.append(len(ids) - 1)
        first = learned.index(True)
        with_start = " with the start token" if add_start else ""
        # `y` is the row shifted by one: the token at `first` is a label
        # only when it is among the first `sequence_length + 1`.
        if first > sequence_length:
            if drop_long_prompts:
                dropped.append(index)
                continue
            raise ValueError(
                f"Example {index}: its prompt takes {first} tokens"
                f"{with_start}, so none of its {learned_ids} response tokens "
                "fits in "
                f"sequence_length={sequence_length}: there would be nothing "
                "to learn. Use a longer `sequence_length`, shorten the "
                "prompt, or pass `drop_long_prompts=True` to leave such "
                f"examples out. Received: sequence_length={sequence_length}"
            )
        kept.append((index, ids[:row_length], learned[:row_length]))
    report = truncation_report(needed, sequence_length, dropped)
    if not kept:
        raise ValueError(
            f"Every example was dropped: {report} "
            f"Received: sequence_length={sequence_length}"
        )
    by_index = {index: (ids, learned) for index, ids, learned in kept}
    if pack:
        rows = _pack([(index, len(ids)) for index, ids, _ in kept], row_length)
    else:
        rows = [[index] for index, _, _ in kept]
    token_ids = np.full((len(rows), row_length), pad, "int32")
    weights = np.zeros((len(rows), row_length), "float32")
    padding_mask = np.zeros((len(rows), row_length), "int32")
    for number, indices in enumerate(rows):
        ids = [i for index in indices for i in by_index[index][0]]
        learned = [w for index in indices for w in by_index[index][1]]
        token_ids[number, : len(ids)] = ids
        weights[number, : len(ids)] = learned
        padding_mask[number, : len(ids)] = 1
    return CausalLMData(
        inputs={
            "token_ids": token_ids[:, :-1],
            "padding_mask": padding_mask[:, :-1],
        },
        labels=token_ids[:, 1:],
        sample_weight=weights[:, 1:],
        truncation=report,
        row_examples=tuple(tuple(indices) for indices in rows),
    )
