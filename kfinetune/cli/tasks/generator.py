"""What `--task causal-lm` and `--task seq2seq` share: JSON Lines splits,
token-id training rows, perplexity and generation scores, and the export
as a keras-hub preset folder.

Not a task itself: `causal_lm` and `seq2seq` take these functions as
theirs and add what differs (reading, rows, prompts, generation), which
the functions here reach through the task named in the settings.

The model trains on token ids (the rows of `kfinetune.data.instructions`
or `kfinetune.data.seq2seq`, whose sample weights keep the loss on the
response or target), so `fit_data` detaches its preprocessor for `fit`,
and the first of `monitor_callbacks` attaches it again when `fit` ends:
everything else (`generate`, saving, exporting) has it.
"""

import contextlib
import dataclasses
import json
import logging

import numpy as np

SPLITS = ("train", "validation", "test")
# The folder `train` and `export` write: a keras-hub preset, not a
# SavedModel (keras-hub's `generate` does not export as one).
EXPORT_FOLDER = "preset"
# A file every keras-hub preset folder has: `export --output` replaces
# only a folder that holds it.
EXPORT_MARKER = "metadata.json"
EXPORT_DESCRIPTION = "a keras-hub preset folder; from_preset loads it"
# The scores early stopping may watch that need generated texts.
GENERATION_SCORES = ("chrf", "bleu", "rouge_l", "exact_match")
# Newlines and tabs in a prompt, a source or a generated text, as `predict`
# reads and prints them (one input and one output per line).
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


@dataclasses.dataclass
class GeneratorData:
    """The three splits (lists of example dicts, as
    `kfinetune.data.from_generation_jsonl` gives them) and what a run
    prepares from them once."""

    splits: dict
    task: str
    # The model's preprocessor while `fit` runs without it.
    preprocessor: object = dataclasses.field(default=None, repr=False)
    # Rows tokenized once: `id(examples)` to `(examples, rows)` (the
    # examples kept, so the id stays theirs).
    rows: dict = dataclasses.field(default_factory=dict, repr=False)
    # The last generations per split: `id(examples)` to `(examples,
    # hypotheses)`, for the sample predictions.
    generated: dict = dataclasses.field(default_factory=dict, repr=False)

    def __repr__(self):
        counts = ", ".join(
            f"{name}: {len(split)}" for name, split in self.splits.items()
        )
        kind = {"causal-lm": "prompts and responses"}.get(
            self.task, "sources and targets"
        )
        return f"{kind}: {counts}"


@dataclasses.dataclass(frozen=True)
class GeneratorReport:
    """A generator's scores on a split: the language model's (perplexity,
    on every example) and the generated texts' (on the first
    `--generation-examples`)."""

    language_model: object
    generation: object
    exact_match: float
    inputs: tuple
    references: tuple
    # What the inputs are called in `generations.jsonl`: prompt or source.
    input_key: str = "input"

    @property
    def hypotheses(self):
        return self.generation.hypotheses


def _task(settings):
    from kfinetune.cli import tasks

    return tasks.get(settings["task"])


def load_splits(settings, read):
    """`--train` with `--validation` / `--test` files, or splits of it
    drawn with `--seed`; `read(settings, path)` reads a file."""
    from kfinetune.cli import tasks

    files = {
        name: read(settings, settings[name])
        for name in SPLITS
        if settings[name]
    }
    train = files["train"]
    given = {name for name in ("validation", "test") if name in files}
    indices = tasks.held_out(len(train), settings, given)
    splits = {
        name: files[name]
        if name in given
        else [train[i] for i in indices[name]]
        for name in SPLITS
    }
    return GeneratorData(splits, settings["task"])


def sizes(data):
    return {name: len(data.splits[name]) for name in SPLITS}


def split(data, name):
    """The `validation` or `test` examples, as `evaluate` takes them."""
    return data.splits[name]


def labels(data):
    """A generator has no label vocabulary."""
    return None


def build(settings, make):
    """`make(--preset, sequence_length=--sequence-length)`, a keras-hub
    generator, refused without a tokenizer: the task reads and writes
    text."""
    from kfinetune.cli import errors

    model = make(
        settings["preset"], sequence_length=settings["sequence_length"]
    )
    if model.preprocessor is None:
        raise errors.UsageError(
            f"--preset has no tokenizer, and --task {settings['task']} reads "
            f"and writes text. Received: --preset={settings['preset']}"
        )
    return model


def preprocessor_of(model, data):
    """The model's preprocessor, or the one `fit_data` detached."""
    if model.preprocessor is not None:
        return model.preprocessor
    return data.preprocessor


@contextlib.contextmanager
def _quiet_truncation():
    # The run prints the truncation report itself: the library's log line
    # would say it again for every split.
    from kfinetune.data import truncation

    logger = logging.getLogger(truncation.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def rows(examples, preprocessor, data, settings, name="evaluated"):
    """The training rows of `examples`, made once per run.

    Raises:
        UsageError: an example does not fit `--sequence-length` (a prompt
            that leaves no room for its response) or has no tokens.
    """
    from kfinetune.cli import errors

    key = id(examples)
    if key not in data.rows:
        try:
            with _quiet_truncation():
                made = _task(settings).make_rows(
                    list(examples), preprocessor, settings
                )
        except ValueError as error:
            raise errors.UsageError(f"the {name} split: {error}") from None
        data.rows[key] = (examples, made)
    return data.rows[key][1]


def truncation(model, data, settings):
    """Tokenizes every split (so an example that cannot fit is refused
    before training) and reports how many training examples
    `--sequence-length` cuts."""
    preprocessor = preprocessor_of(model, data)
    made = {
        name: rows(data.splits[name], preprocessor, data, settings, name)
        for name in SPLITS
    }
    return _task(settings).truncation_text(made["train"])


def fit_data(model, data, settings):
    """The training and validation rows, batched. The model trains on
    token ids: its preprocessor is detached here and kept in `data`, and
    `monitor_callbacks` attaches it again when `fit` ends."""
    preprocessor = preprocessor_of(model, data)
    batch = settings["batch_size"]
    train = rows(data.splits["train"], preprocessor, data, settings, "train")
    validation = rows(
        data.splits["validation"], preprocessor, data, settings, "validation"
    )
    data.preprocessor = preprocessor
    model.preprocessor = None
    train = (
        train.dataset()
        .shuffle(len(train.labels), seed=settings["seed"])
        .batch(batch)
    )
    return train, validation.dataset().batch(batch)


def loss_and_metrics(settings):
    """Next-token cross-entropy, weighted by the rows' sample weights (the
    response or target tokens)."""
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True), None


def class_weight(data, settings):
    return None


@contextlib.contextmanager
def attached(model, preprocessor):
    """`model` with `preprocessor` attached while the block runs (for
    `generate` during `fit`, which trains without it)."""
    before = model.preprocessor
    if before is None:
        model.preprocessor = preprocessor
    try:
        yield model
    finally:
        if before is None:
            model.preprocessor = None


def greedy(model):
    """Makes `model.generate` greedy (keras-hub's default samples at
    random, and every `compile` of a keras-hub generator sets it back),
    so that scores and predictions repeat."""
    import keras_hub

    base = getattr(model, "base", model)
    if not isinstance(base.sampler, keras_hub.samplers.GreedySampler):
        base.sampler = keras_hub.samplers.get("greedy")
        # The traced `generate` holds the sampler it was traced with.
        base.generate_function = None
    return model


def _reattach_callback(data):
    import keras

    class AttachPreprocessor(keras.callbacks.Callback):
        """Gives the model its preprocessor back when `fit` ends."""

        def on_train_end(self, logs=None):
            if self.model.preprocessor is None:
                self.model.preprocessor = data.preprocessor

    return AttachPreprocessor()


def monitor_callbacks(model, data, settings):
    """Attaches the preprocessor again when `fit` ends; with `--monitor`
    a generation score, writes it (`val_chrf`, ...) into the logs after
    every epoch, from the first `--generation-examples` validation
    examples. `val_loss` comes from compile."""
    from kfinetune.cli import validation

    callbacks = [_reattach_callback(data)]
    monitor = settings["monitor"]
    if monitor in GENERATION_SCORES:

        def score(model):
            examples = data.splits["validation"]
            return scores(_generation(model, examples, data, settings))[monitor]

        callbacks.append(validation.ValidationScore(f"val_{monitor}", score))
    return callbacks


def _generation(model, examples, data, settings):
    """Greedy generations for the first `--generation-examples` of
    `examples`, scored against their references (no perplexity)."""
    task = _task(settings)
    chosen = list(examples[: settings["generation_examples"]])
    references = task.references(chosen)
    with attached(model, data.preprocessor):
        greedy(model)
        generation = task.generation_report(model, chosen, data, settings)
    hypotheses = generation.hypotheses
    data.generated[id(examples)] = (examples, hypotheses)
    # Whole texts, whitespace around them aside (a response may start with
    # the space a byte-pair tokenizer wants).
    exact = np.mean(
        [
            h.strip() == r.strip()
            for h, r in zip(hypotheses, references, strict=True)
        ]
    )
    return GeneratorReport(
        language_model=None,
        generation=generation,
        exact_match=float(exact),
        inputs=tuple(task.input_text(example) for example in chosen),
        references=tuple(references),
        input_key=task.INPUT_KEY,
    )


def evaluate(model, examples, data, settings):
    """Perplexity and token accuracy on every example (the response or
    target tokens: `kfinetune.evaluation.evaluate_language_model`), and
    BLEU, chrF, ROUGE-L and exact match of greedy generations for the
    first `--generation-examples`."""
    from kfinetune import evaluation

    preprocessor = preprocessor_of(model, data)
    made = rows(examples, preprocessor, data, settings)
    language_model = evaluation.evaluate_language_model(
        model, made.dataset().batch(settings["batch_size"])
    )
    report = _generation(model, examples, data, settings)
    return dataclasses.replace(report, language_model=language_model)


def report_lines(report, prefix="test "):
    lm, generation = report.language_model, report.generation
    return [
        f"{prefix}perplexity: {lm.perplexity:.3f} (cross-entropy "
        f"{lm.cross_entropy:.4f} over {lm.tokens:g} target tokens; token "
        f"accuracy {lm.token_accuracy:.3f})",
        f"{prefix}generation ({len(report.hypotheses)} examples, greedy): "
        f"BLEU {generation.bleu.score:.2f}, chrF {generation.chrf:.2f}, "
        f"ROUGE-L {generation.rouge_l:.3f}, exact match "
        f"{report.exact_match:.3f}",
    ]


def write_plots(report, out):
    """Writes `generations.jsonl`: each generated example's input, its
    reference and the generated text (no plot: the scores say it)."""
    with open(out / "generations.jsonl", "w", encoding="utf-8") as f:
        for text, reference, generated in zip(
            report.inputs, report.references, report.hypotheses, strict=True
        ):
            row = {
                report.input_key: text,
                "reference": reference,
                "generated": generated,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def scores(report):
    """The scores written to `metrics.json` / `evaluation.json`."""
    result = {}
    if report.language_model is not None:
        result.update(report.language_model.as_dict())
    result.update(report.generation.as_dict())
    result["exact_match"] = report.exact_match
    result["generated_examples"] = len(report.hypotheses)
    return result


def probe(data, count=4):
    """A few test examples: what the round-trip checks compare."""
    return data.splits["test"][:count]


def outputs(model, examples, data, settings):
    """The next-token probabilities (float32) at the probe examples'
    target tokens, the ones with a sample weight: what the round trips
    compare.

    Probabilities, not logits: a language model's logits run to the
    hundreds (GPT-2's), where float32 rounding alone exceeds the run's
    tolerance of 1e-4, and bfloat16's 8-bit mantissa exceeds 2e-2 at
    logits of 10; probabilities are between 0 and 1, as a classifier's
    logits roughly are.
    """
    import keras

    made = rows(examples, preprocessor_of(model, data), data, settings)
    logits = model(made.inputs, training=False)
    probabilities = keras.ops.softmax(keras.ops.cast(logits, "float32"))
    probabilities = keras.ops.convert_to_numpy(probabilities)
    return probabilities[made.sample_weight > 0]


def escape(text):
    """`text` on one line: backslashes, newlines, tabs and carriage
    returns as `\\\\`, `\\n`, `\\t` and `\\r`."""
    reverse = {value: f"\\{key}" for key, value in _ESCAPES.items()}
    return "".join(reverse.get(character, character) for character in text)


def unescape(text):
    """The inverse of `escape`: `\\n` is a newline, `\\t` a tab, `\\r` a
    carriage return, `\\\\` a backslash; any other backslash stays."""
    result, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            result.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            result.append(text[i])
            i += 1
    return "".join(result)


def _short(text, limit=60):
    text = escape(text)
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def sample_lines(examples, probabilities, data, settings):
    """The probe examples with the text the model generated for them when
    the test split was evaluated, and their references."""
    generated = data.generated.get(id(data.splits["test"]))
    hypotheses = generated[1] if generated else ()
    task = _task(settings)
    references = task.references(list(examples))
    lines = []
    # Fewer than the probe when `--generation-examples` is smaller.
    for example, reference, hypothesis in zip(
        examples, references, hypotheses, strict=False
    ):
        lines.append(
            f"  {_short(task.input_text(example))} -> "
            f"{escape(hypothesis)!r} (reference {escape(reference)!r})"
        )
    return lines


def _unload(model, method):
    """The plain keras-hub model a preset folder holds: `model`, or its
    base with LoRA or IA3 folded in (in place: `model` loses them)."""
    from kfinetune import peft
    from kfinetune.cli import errors

    if not isinstance(model, peft.PEFTModel):
        return model
    try:
        return peft.merge_and_unload(model)
    except ValueError:
        raise errors.UsageError(
            "export writes a keras-hub preset folder, which holds a plain "
            f"keras-hub model, and {method} adapters do not fold into its "
            f"weights (full, lora and ia3 runs export). Received: "
            f"--method={method}"
        ) from None


def export(model, folder, data, settings):
    """Writes the model, with LoRA or IA3 folded into its weights, as a
    keras-hub preset folder (weights, tokenizer and preprocessor) that
    `kfinetune.presets.causal_lm` / `seq2seq_lm` and keras-hub's
    `from_preset` load. Folds the adapters of `model` in place."""
    _unload(model, settings["method"]).save_to_preset(str(folder))


def export_difference(folder, examples, expected, data, settings):
    """The largest difference between the exported preset's next-token
    probabilities and the model's (`expected`, from `outputs`) on the
    probe examples."""
    reloaded = _task(settings).load_preset(folder, settings)
    served = outputs(reloaded, examples, data, settings)
    return float(np.max(np.abs(served - expected)))


def check_inputs(texts, run):
    """Any text is a prompt or a source."""


def row_line(row, text):
    """The generated text on one line (`escape`)."""
    return "" if row["generated"] is None else escape(row["generated"])
