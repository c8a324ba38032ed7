"""`--task seq2seq`: fine-tuning of a keras-hub encoder-decoder (BART) on
sources and targets from JSON Lines files (default: the bundled tweets,
each restored from its lowercased text).

The rows are `kfinetune.data.seq2seq`'s; the scores are the targets'
perplexity and greedy generations' BLEU, chrF, ROUGE-L and exact match.
See `generator` for what the two generator tasks share.
"""

import json
import pathlib

from kfinetune.cli.tasks import generator

NAME = "seq2seq"
SPLITS = generator.SPLITS
INPUT_KEY = "source"
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
export_difference = generator.export_difference
check_inputs = generator.check_inputs
row_line = generator.row_line


def _read(settings, path):
    from kfinetune import data

    return data.from_generation_jsonl(
        path,
        format="source_target",
        encoding=settings["encoding"],
        errors=settings["errors"],
    )


def _tweets(settings):
    from kfinetune import data

    tweets = data.tweet_sentiment(seed=settings["seed"])
    splits = {
        name: [{"source": text.lower(), "target": text} for text in split.texts]
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
    """The preset's sequence-to-sequence LM, reading and writing
    `--sequence-length` tokens (`labels` is `None`)."""
    from kfinetune import presets

    return generator.build(settings, presets.seq2seq_lm)


def with_lengths(model, settings):
    """`model` with its preprocessor reading and writing
    `--sequence-length` tokens again.

    keras-hub 0.32's `Seq2SeqLMPreprocessor` does not save its sequence
    lengths (it has no `get_config`): reloaded from `model.keras` or a
    preset folder, it pads to 1,024 tokens, more positions than a small
    BART has and another length than the run trained on.
    """
    preprocessor = model.preprocessor
    preprocessor.encoder_sequence_length = settings["sequence_length"]
    preprocessor.decoder_sequence_length = settings["sequence_length"]
    return model


def load_preset(folder, settings):
    """An exported preset folder, loaded back."""
    from kfinetune import presets

    return presets.seq2seq_lm(folder)


def export(model, folder, data, settings):
    """`generator.export`, with the preprocessor's sequence lengths written
    into `preprocessor.json` (see `with_lengths`): its constructor takes
    them, so `from_preset` reads them back."""
    generator.export(model, folder, data, settings)
    path = pathlib.Path(folder) / "preprocessor.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    for name in ("encoder_sequence_length", "decoder_sequence_length"):
        saved["config"].setdefault(name, settings["sequence_length"])
    path.write_text(json.dumps(saved, indent=4), encoding="utf-8")


def make_rows(examples, preprocessor, settings):
    from kfinetune import data

    length = settings["sequence_length"]
    return data.seq2seq(examples, preprocessor, length, length)


def truncation_text(rows):
    import dataclasses

    return "\n".join(
        str(dataclasses.replace(report, argument="--sequence-length"))
        for report in (rows.source_truncation, rows.target_truncation)
    )


def references(examples):
    return [example["target"] for example in examples]


def input_text(example):
    return example["source"]


def generation_report(model, examples, data, settings):
    """`kfinetune.evaluation.evaluate_generator` on `examples`: greedy
    targets of at most `--sequence-length` tokens."""
    from kfinetune import evaluation

    with_lengths(model, settings)
    return evaluation.evaluate_generator(
        model,
        [example["source"] for example in examples],
        references(examples),
        max_length=settings["sequence_length"],
        batch_size=settings["batch_size"],
    )


def _decoder_start(preprocessor):
    """How many tokens start every decoder row (BART: `</s> <s>`)."""
    if not preprocessor.built:
        preprocessor.build(None)
    start = preprocessor.decoder_packer.start_value
    if start is None:
        return 0
    return len(start) if isinstance(start, (list, tuple)) else 1


def predict_rows(model, texts, run, batch_size, max_new_tokens=None):
    """A row per source (`\\n` in it is a newline): the greedy target, at
    most `max_new_tokens` tokens (by default, the run's
    `--sequence-length` with the decoder's start tokens). Sources longer
    than `--sequence-length` are cut, as in training."""
    sources = [generator.unescape(text) for text in texts]
    with_lengths(model, run.settings)
    length = run.settings["sequence_length"]
    if max_new_tokens is not None:
        length = _decoder_start(model.preprocessor) + max_new_tokens
        limit = getattr(model.backbone, "max_sequence_length", None)
        if limit:
            length = min(length, limit)
    generator.greedy(model)
    generated = []
    for first in range(0, len(sources), batch_size):
        generated += model.generate(
            sources[first : first + batch_size], max_length=length
        )
    return [
        {"source": source, "generated": text}
        for source, text in zip(sources, generated, strict=True)
    ]


def blank_row(text, run):
    return {"source": text, "generated": None}
