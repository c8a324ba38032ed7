"""`--task causal-lm`: instruction tuning of a keras-hub causal LM (GPT-2,
Llama, ...) on prompts and responses, or chats, from JSON Lines files
(default: the bundled tweets, a prompt asking for each one's sentiment).

The loss is on the response only (`kfinetune.data.instructions`); the
scores are the responses' perplexity and greedy generations' BLEU, chrF,
ROUGE-L and exact match. See `generator` for what the two generator
tasks share.
"""

import dataclasses

import numpy as np

from kfinetune.cli.tasks import generator

NAME = "causal-lm"
SPLITS = generator.SPLITS
INPUT_KEY = "prompt"
# The bundled tweets as instructions: the response is the sentiment word,
# after a space as a byte-pair tokenizer wants a word that continues a line.
TWEET_PROMPT = "Tweet: {}\nSentiment:"
EXPORT_FOLDER = generator.EXPORT_FOLDER
EXPORT_MARKER = generator.EXPORT_MARKER
EXPORT_DESCRIPTION = generator.EXPORT_DESCRIPTION

sizes = generator.sizes
split = generator.split
labels = generator.labels
truncation = generator.truncation
fit_data = generator.fit_data
loss_and_metrics = generator.loss_and_metrics
class_weight = generator.class_weight
monitor_callbacks = generator.monitor_callbacks
evaluate = generator.evaluate
report_lines = generator.report_lines
write_plots = generator.write_plots
scores = generator.scores
probe = generator.probe
outputs = generator.outputs
sample_lines = generator.sample_lines
export = generator.export
export_difference = generator.export_difference
check_inputs = generator.check_inputs
row_line = generator.row_line


def _read(settings, path):
    from kfinetune import data

    examples = data.from_generation_jsonl(
        path, encoding=settings["encoding"], errors=settings["errors"]
    )
    if "source" in examples[0]:
        raise ValueError(
            f"'{path}' holds sources and targets, which --task seq2seq "
            "reads; --task causal-lm reads a prompt and a response, or "
            f"messages, per line. Received: keys {sorted(examples[0])}"
        )
    return examples


def _tweets(settings):
    from kfinetune import data

    tweets = data.tweet_sentiment(
        classes=settings["classes"], seed=settings["seed"]
    )
    names = tweets.class_names
    splits = {
        name: [
            {
                "prompt": TWEET_PROMPT.format(text),
                "response": f" {names[label]}",
            }
            for text, label in zip(split.texts, split.labels, strict=True)
        ]
        for name, split in tweets.splits.items()
    }
    return generator.GeneratorData(splits, NAME)


def load_data(settings):
    """The bundled tweets, or `--train` with `--validation` / `--test` or
    splits of it."""
    if not settings["train"]:
        return _tweets(settings)
    return generator.load_splits(settings, _read)


def read_split(settings, path, data):
    """A JSON Lines file to evaluate a trained run on (`evaluate
    --test`)."""
    return _read(settings, path)


def build_model(settings, labels):
    """The preset's causal LM, its preprocessor padding to
    `--sequence-length` (`labels` is `None`)."""
    from kfinetune import presets

    return generator.build(settings, presets.causal_lm)


def load_preset(folder, settings):
    """An exported preset folder, loaded back."""
    from kfinetune import presets

    return presets.causal_lm(folder)


def make_rows(examples, preprocessor, settings):
    from kfinetune import data

    return data.instructions(
        examples, preprocessor, settings["sequence_length"]
    )


def truncation_text(rows):
    return str(
        dataclasses.replace(
            rows.truncation,
            name="training examples",
            argument="--sequence-length",
        )
    )


def _split_chat(example):
    """A chat's segments before its last reply (`None` is an end token),
    and that reply."""
    from kfinetune.data import chat

    segments = chat.chat_segments(example["messages"])
    last = max(
        i
        for i, (text, learned) in enumerate(segments)
        if learned and text is not None
    )
    return [text for text, _ in segments[:last]], segments[last][0]


def _prompt_segments(example):
    if "messages" in example:
        return _split_chat(example)[0]
    return [example["prompt"]]


def references(examples):
    """What the model should write: each response, or each chat's last
    reply."""
    return [
        _split_chat(e)[1] if "messages" in e else e["response"]
        for e in examples
    ]


def input_text(example):
    """The prompt as text (a chat's earlier end tokens left out)."""
    return "".join(text or "" for text in _prompt_segments(example))


def _prompt_ids(segments, preprocessor):
    """Token ids of each prompt, as the training rows start: the start
    token (if the preprocessor adds one), each text tokenized on its own,
    the end token for `None`."""
    from kfinetune.data import tokenizing

    tokenizer = preprocessor.tokenizer
    start = tokenizing.token_id(tokenizer, "start_token")
    if not getattr(preprocessor, "add_start_token", True):
        start = None
    end = tokenizing.token_id(tokenizer, "end_token")
    texts = [text for row in segments for text in row if text is not None]
    pieces = iter(tokenizing.tokenize(tokenizer, texts))
    ids = []
    for row in segments:
        prompt = [] if start is None else [start]
        for text in row:
            prompt += [end] if text is None else next(pieces)
        ids.append(prompt)
    return ids


def _strings(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v if isinstance(v, str) else v.decode("utf-8") for v in value]
    return [v.decode("utf-8") for v in np.asarray(value).reshape(-1).tolist()]


def _generate(model, prompt_ids, length, batch_size, max_new_tokens=None):
    """Greedy continuations of the prompts (token ids), in rows of
    `length` tokens, each cut to `max_new_tokens` when given. A prompt
    that fills its row gets `""`: nothing fits after it.

    The prompts go in as token ids, with the model's preprocessor
    detached, so that a chat's earlier replies end with the end token as
    in training (text cannot say it) and the new tokens can be counted.
    """
    from kfinetune.data import tokenizing

    preprocessor = model.preprocessor
    tokenizer = preprocessor.tokenizer
    pad = tokenizing.token_id(tokenizer, "pad_token") or 0
    stop = [tokenizing.token_id(tokenizer, "end_token")]
    # Llama 3 ends a reply with either of two tokens, as keras-hub's
    # `generate` knows.
    if tokenizing.token_id(tokenizer, "end_token2") is not None:
        stop.append(tokenizing.token_id(tokenizer, "end_token2"))
    generator.greedy(model)
    texts = []
    model.preprocessor = None
    try:
        for first in range(0, len(prompt_ids), batch_size):
            batch = prompt_ids[first : first + batch_size]
            token_ids = np.full((len(batch), length), pad, "int32")
            padding_mask = np.zeros((len(batch), length), "int32")
            for row, ids in enumerate(batch):
                # A full row generates nothing (and is stripped whole).
                ids = ids[:length]
                token_ids[row, : len(ids)] = ids
                padding_mask[row, : len(ids)] = 1
            out = model.generate(
                {"token_ids": token_ids, "padding_mask": padding_mask},
                stop_token_ids=stop,
                strip_prompt=True,
            )
            # After `strip_prompt`, each row's new tokens come first.
            new = np.asarray(out["padding_mask"]).astype(bool)
            if max_new_tokens is not None:
                new &= np.cumsum(new, axis=1) <= max_new_tokens
            texts += _strings(
                preprocessor.generate_postprocess(
                    {
                        "token_ids": np.asarray(out["token_ids"]),
                        "padding_mask": new,
                    }
                )
            )
    finally:
        model.preprocessor = preprocessor
    return texts


def generation_report(model, examples, data, settings):
    """Greedy responses to `examples`' prompts (each row at most
    `--sequence-length` tokens, as in training: a chat whose last reply
    starts beyond it gets none), scored as
    `kfinetune.evaluation.evaluate_generator` scores them."""
    from kfinetune import evaluation

    segments = [_prompt_segments(example) for example in examples]
    ids = _prompt_ids(segments, model.preprocessor)
    hypotheses = _generate(
        model, ids, settings["sequence_length"], settings["batch_size"]
    )
    return evaluation.generation_report(hypotheses, references(examples))


def predict_rows(model, texts, run, batch_size, max_new_tokens=None):
    """A row per prompt (`\\n` in it is a newline): the greedy response,
    at most `max_new_tokens` tokens (by default, up to the run's
    `--sequence-length` tokens with the prompt)."""
    from kfinetune.cli import errors

    prompts = [generator.unescape(text) for text in texts]
    ids = _prompt_ids([[prompt] for prompt in prompts], model.preprocessor)
    length = run.settings["sequence_length"]
    room = f"the run's --sequence-length={length}"
    if max_new_tokens is not None:
        length = max(len(row) for row in ids) + max_new_tokens
        limit = getattr(model.backbone, "max_sequence_length", None)
        if limit and length > limit:
            length, room = limit, f"the model's {limit} positions"
    for number, row in enumerate(ids, 1):
        if len(row) >= length:
            raise errors.UsageError(
                f"prompt {number} takes {len(row)} tokens, which leaves "
                f"none to generate in {room}. Received: "
                f"{texts[number - 1][:60]!r}"
            )
    generated = _generate(model, ids, length, batch_size, max_new_tokens)
    return [
        {"prompt": prompt, "generated": text}
        for prompt, text in zip(prompts, generated, strict=True)
    ]


def blank_row(text, run):
    return {"prompt": text, "generated": None}
