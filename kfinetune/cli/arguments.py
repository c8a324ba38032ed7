"""The command line's options, their defaults, checks and config files.

Nothing here imports TensorFlow or Keras: a bad flag is refused at once.
"""

import argparse
import json
import math
import os
import pathlib
import tomllib

PROG = "python -m kfinetune"
METHODS = ("full", "lora", "adapter", "ia3", "prefix", "prompt")
PEFT_METHODS = METHODS[1:]
# The methods whose adapters fold into the base weights.
MERGEABLE = ("lora", "ia3")
SCHEDULES = ("constant", "linear", "cosine", "stlr", "one-cycle")
CONFIG_NAME = "config.toml"

# The peak learning rates chosen per method on the bundled tweets'
# validation split (see benchmarks/quality.py).
LEARNING_RATES = {
    "full": 5e-5,
    "lora": 2e-3,
    "adapter": 2e-3,
    "ia3": 3e-2,
    "prefix": 1e-3,
    "prompt": 3e-2,
}
LENGTHS = {"prefix": 16, "prompt": 20}

# The options only some methods take, and those methods.
METHOD_OPTIONS = {
    "rank": ("lora",),
    "alpha": ("lora",),
    "size": ("adapter",),
    "length": ("prefix", "prompt"),
    "targets": PEFT_METHODS,
}

# Every setting of `train` with its default; `None` means "not set" (or a
# default that depends on another setting, resolved in `resolve`).
DEFAULTS = {
    "csv": None,
    "jsonl": None,
    "text_column": "text",
    "label_column": "label",
    "classes": 2,
    "preset": None,
    "sequence_length": 64,
    "method": "full",
    "rank": 8,
    "alpha": None,
    "size": 48,
    "length": None,
    "targets": None,
    "epochs": 1,
    "batch_size": 32,
    "learning_rate": None,
    "schedule": "constant",
    "warmup": None,
    "layerwise_decay": None,
    "unfreeze": "none",
    "unfreeze_fraction": 0.3,
    "seed": 0,
    "jit_compile": False,
    "merge": False,
    "save": "model",
    "export": True,
    "output_dir": "runs/finetune",
}

# Settings a config file does not hold: where the run's outputs go.
NOT_IN_CONFIG = ("output_dir", "config")


class UsageError(ValueError):
    """A bad option, option value, column or file: exit code 2."""


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line: `prog: error: ...`."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(
            2, f"{self.prog}: error: {message} (--help lists the options)\n"
        )


def flag(name):
    """`learning_rate` -> `--learning-rate`."""
    return "--" + name.replace("_", "-")


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def build_parser():
    """The parser of `python -m kfinetune` and its four subcommands."""
    parser = Parser(
        prog=PROG,
        formatter_class=_formatter,
        description=(
            "Fine-tune a pretrained keras-hub text classifier (by default the "
            "bundled all-MiniLM-L6-v2) with any kfinetune method, then "
            "evaluate it, predict with it and export it."
        ),
        epilog=(
            "Without a subcommand, `train` runs: `python -m kfinetune "
            "--output-dir runs/demo` fine-tunes MiniLM on the bundled "
            "tweets.\n`python -m kfinetune COMMAND --help` lists a "
            "command's options."
        ),
    )
    commands = parser.add_subparsers(
        dest="command", title="commands", metavar="COMMAND"
    )
    train, parser.train_actions = _add_train(commands)
    parser.subcommands = {
        "train": train,
        "evaluate": _add_evaluate(commands),
        "predict": _add_predict(commands),
        "export": _add_export(commands),
    }
    return parser


def _add_train(commands):
    train = commands.add_parser(
        "train",
        help="fine-tune, evaluate, save and export (the default command)",
        description=(
            "Fine-tune a text classifier, evaluate it on a held-out test "
            "split and save everything in --output-dir: model.keras (or "
            "adapter.h5), saved_model/, metrics.json, config.toml (these "
            "settings, to repeat the run), training_curves.png and "
            "confusion_matrix.png. Nothing is written when an option, "
            "column or file is wrong."
        ),
        epilog=(
            "examples:\n"
            "  python -m kfinetune train --output-dir runs/demo\n"
            "  python -m kfinetune train --csv reviews.csv --text-column "
            "review \\\n"
            "      --label-column stars --method lora --rank 8 --epochs 3\n"
            "  python -m kfinetune train --config runs/demo/config.toml "
            "--output-dir runs/again"
        ),
        formatter_class=_formatter,
        # Only the options given appear in the namespace, so that a config
        # file fills in the rest and a flag overrides the file.
        argument_default=argparse.SUPPRESS,
    )
    actions = {}

    def add(group, *flags, **kwargs):
        action = group.add_argument(*flags, **kwargs)
        actions[action.dest] = action

    add(
        train,
        "--config",
        metavar="FILE",
        help="read the settings from a TOML or YAML file (the config.toml "
        "of a run repeats it); flags given as well override the file",
    )
    data = train.add_argument_group("data")
    source = data.add_mutually_exclusive_group()
    add(
        source,
        "--csv",
        metavar="FILE",
        help="your CSV file with a header line, split 80/10/10 "
        "(stratified) into train, validation and test. Default: the "
        "bundled tweets",
    )
    add(
        source,
        "--jsonl",
        metavar="FILE",
        help="your JSON Lines file, one object per line, split as --csv",
    )
    add(
        data,
        "--text-column",
        metavar="NAME",
        help="Default: text (--csv, --jsonl)",
    )
    add(
        data,
        "--label-column",
        metavar="NAME",
        help="Default: label (--csv, --jsonl)",
    )
    add(
        data,
        "--classes",
        type=int,
        choices=(2, 3),
        help="bundled tweets: 2 (negative, positive; balanced) or 3 (with "
        "neutral; stratified). Default: 2",
    )
    model = train.add_argument_group("model")
    add(
        model,
        "--preset",
        metavar="PATH",
        help="a keras-hub preset folder or handle. Default: bundled MiniLM",
    )
    add(
        model,
        "--sequence-length",
        type=int,
        metavar="N",
        help="padded input length in tokens. Default: 64",
    )
    method = train.add_argument_group("method")
    add(
        method,
        "--method",
        choices=METHODS,
        help="full: every weight trains; lora, adapter, ia3, prefix, "
        "prompt: only the method's weights and the classifier head train. "
        "Default: full",
    )
    add(method, "--rank", type=int, metavar="R", help="lora: rank. Default: 8")
    add(
        method,
        "--alpha",
        type=float,
        metavar="A",
        help="lora: scale numerator (update scaled by alpha / rank). "
        "Default: 2 x rank",
    )
    add(
        method,
        "--size",
        type=int,
        metavar="N",
        help="adapter: bottleneck size (Houlsby placement). Default: 48",
    )
    add(
        method,
        "--length",
        type=int,
        metavar="N",
        help="prefix, prompt: number of virtual tokens. Default: 16 for "
        "prefix, 20 for prompt",
    )
    add(
        method,
        "--targets",
        nargs="+",
        metavar="REGEX",
        help="lora, adapter, ia3, prefix, prompt: the layer paths to adapt "
        "(regular expressions matched in full). Default: the method's own, "
        "e.g. '.*/(query|value)' for lora",
    )
    add(
        method,
        "--merge",
        action="store_true",
        help="lora, ia3: fold the adapters into the base weights before "
        "saving and exporting (a plain model, no extra cost at inference)",
    )
    add(
        method,
        "--save",
        choices=("model", "adapter", "both"),
        help="model: model.keras; adapter: only the adapter weights and "
        "the head (adapter.h5, a few MB; needs the base preset to load); "
        "both. Default: model",
    )
    training = train.add_argument_group("training")
    add(training, "--epochs", type=int, metavar="N", help="Default: 1")
    add(training, "--batch-size", type=int, metavar="N", help="Default: 32")
    add(
        training,
        "--learning-rate",
        type=float,
        metavar="LR",
        help="AdamW's peak learning rate (the top layer group's, with "
        "--layerwise-decay). Default: per method, full 5e-5, lora 2e-3, "
        "adapter 2e-3, ia3 3e-2, prefix 1e-3, prompt 3e-2",
    )
    add(
        training,
        "--schedule",
        choices=SCHEDULES,
        help="learning-rate schedule: constant; linear or cosine decay to "
        "zero after --warmup; stlr (slanted triangular, ULMFiT); "
        "one-cycle. Default: constant",
    )
    add(
        training,
        "--warmup",
        type=float,
        metavar="FRACTION",
        help="fraction of the training steps spent rising to the peak "
        "rate. Default: 0 for linear and cosine, 0.1 for stlr, 0.25 for "
        "one-cycle",
    )
    add(
        training,
        "--layerwise-decay",
        type=float,
        metavar="D",
        help="each layer group (embeddings, blocks, head) learns at D "
        "times the rate of the group above it, in (0, 1]. Default: off",
    )
    add(
        training,
        "--unfreeze",
        choices=("none", "gradual"),
        help="gradual: the head trains first, then one more layer group "
        "per stage from the top, all by --unfreeze-fraction of the run "
        "(ULMFiT). Default: none",
    )
    add(
        training,
        "--unfreeze-fraction",
        type=float,
        metavar="F",
        help="--unfreeze gradual: the fraction of the run by which every "
        "group trains, in (0, 1]. Default: 0.3",
    )
    add(
        training,
        "--seed",
        type=int,
        metavar="N",
        help="split and weights. Default: 0",
    )
    add(
        training,
        "--jit-compile",
        action="store_true",
        help="compile the train step with XLA (what TPUs run)",
    )
    output = train.add_argument_group("output")
    add(
        output,
        "--output-dir",
        metavar="DIR",
        help="where the outputs go (replacing a previous run's). "
        "Default: runs/finetune",
    )
    add(
        output,
        "--export",
        action=argparse.BooleanOptionalAction,
        help="also export saved_model/, a SavedModel that reads raw text. "
        "Default: --export",
    )
    return train, actions


def _add_run_argument(parser):
    parser.add_argument(
        "run", metavar="RUN_DIR", help="the --output-dir of a `train` run"
    )


def _add_evaluate(commands):
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a trained run on its test split or on a labelled file",
        description=(
            "Evaluate a trained run: accuracy, macro-F1 and per-class "
            "scores, printed and written with a confusion matrix plot to "
            "--output-dir. Without --csv or --jsonl, on the run's own test "
            "split (rebuilt from its config.toml)."
        ),
        epilog=(
            "examples:\n"
            "  python -m kfinetune evaluate runs/demo\n"
            "  python -m kfinetune evaluate runs/reviews --csv new.csv "
            "--text-column review --label-column stars"
        ),
        formatter_class=_formatter,
    )
    _add_run_argument(evaluate)
    source = evaluate.add_mutually_exclusive_group()
    source.add_argument(
        "--csv", metavar="FILE", help="evaluate on every row of this CSV file"
    )
    source.add_argument(
        "--jsonl", metavar="FILE", help="evaluate on this JSON Lines file"
    )
    evaluate.add_argument(
        "--text-column", metavar="NAME", help="Default: the run's"
    )
    evaluate.add_argument(
        "--label-column", metavar="NAME", help="Default: the run's"
    )
    evaluate.add_argument(
        "--batch-size", type=int, default=32, metavar="N", help="Default: 32"
    )
    evaluate.add_argument(
        "--output-dir",
        metavar="DIR",
        help="where evaluation.json and confusion_matrix.png go. "
        "Default: RUN_DIR/evaluation",
    )
    return evaluate


def _add_predict(commands):
    predict = commands.add_parser(
        "predict",
        help="label texts from arguments, a file or stdin",
        description=(
            "Label texts with a trained run: one line per text, the label, "
            "its probability and the text, tab-separated (or a JSON object "
            "per line with --json). The texts come from the arguments, from "
            "--file (one per line; - is stdin) or, when neither is given, "
            "from stdin."
        ),
        epilog=(
            "examples:\n"
            '  python -m kfinetune predict runs/demo "what a great day"\n'
            "  python -m kfinetune predict runs/demo --file texts.txt --json\n"
            "  cat texts.txt | python -m kfinetune predict runs/demo"
        ),
        formatter_class=_formatter,
    )
    _add_run_argument(predict)
    predict.add_argument("texts", nargs="*", metavar="TEXT")
    predict.add_argument(
        "--file", metavar="FILE", help="one text per line; - reads stdin"
    )
    predict.add_argument(
        "--json",
        action="store_true",
        help="print JSON lines: text, label, probability and every class's "
        "probability",
    )
    predict.add_argument(
        "--batch-size", type=int, default=32, metavar="N", help="Default: 32"
    )
    return predict


def _add_export(commands):
    export = commands.add_parser(
        "export",
        help="export a trained run as a SavedModel that reads raw text",
        description=(
            "Export a trained run as a SavedModel whose `serve` endpoint "
            "takes raw strings and returns outputs, class_ids and labels."
        ),
        epilog=(
            "example:\n"
            "  python -m kfinetune export runs/lora --merge --output "
            "exported/lora"
        ),
        formatter_class=_formatter,
    )
    _add_run_argument(export)
    export.add_argument(
        "--output",
        metavar="DIR",
        help="the SavedModel folder to write (replaced if it exists). "
        "Default: RUN_DIR/saved_model",
    )
    export.add_argument(
        "--merge",
        action="store_true",
        help="lora, ia3: fold the adapters into the base weights first",
    )
    return export


# Config files.


def read_config(path, actions):
    """Reads a TOML or YAML config file into `{setting: value}`.

    Keys are the flag names without `--` (`learning-rate`; `learning_rate`
    works too). Values are checked as the flags' values are.

    Raises:
        UsageError: the file is missing or unreadable, or a key or value is
            not one the flags take.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise UsageError(
            "--config must be a .toml, .yaml or .yml file. "
            f"Received: --config={str(path)!r}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"cannot read the config file ({error.strerror}). "
            f"Received: --config={str(path)!r}"
        ) from None
    try:
        if suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raw = _load_yaml(text, path)
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise UsageError(
            f"{str(path)!r} is not valid {suffix[1:].upper()}: {error}. "
            f"Received: --config={str(path)!r}"
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(
            f"{str(path)!r} must hold keys and values, one per setting. "
            f"Received: {type(raw).__name__}"
        )
    settings = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in actions or name in NOT_IN_CONFIG:
            known = ", ".join(sorted(k.replace("_", "-") for k in actions))
            raise UsageError(
                f"{str(path)!r} has an unknown setting {key!r} (settings: "
                f"{known}). Received: {key}={value!r}"
            )
        settings[name] = _config_value(path, name, value, actions[name])
    return settings


def _load_yaml(text, path):
    try:
        import yaml
    except ImportError:
        raise UsageError(
            "reading a YAML config needs PyYAML (pip install pyyaml); "
            f"TOML needs nothing. Received: --config={str(path)!r}"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(" ".join(str(error).split())) from None


def _config_value(path, name, value, action):
    def bad(expected):
        return UsageError(
            f"{str(path)!r}: {name.replace('_', '-')} must be {expected}. "
            f"Received: {name.replace('_', '-')}={value!r}"
        )

    if action.nargs == "+":
        if isinstance(value, str):
            value = [value]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) for v in value)
        ):
            raise bad("a list of strings")
        return value
    if action.nargs == 0:  # --flag / --no-flag
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        raise bad(_type_name(action.type))
    kind = action.type or str
    if isinstance(value, str) and kind is not str:
        try:
            value = kind(value)
        except ValueError:
            raise bad(_type_name(kind)) from None
    elif kind is int and not isinstance(value, int):
        raise bad("an integer")
    elif kind is float and isinstance(value, (int, float)):
        value = float(value)
    elif kind is str and not isinstance(value, str):
        raise bad("a string")
    if action.choices is not None and value not in action.choices:
        raise bad("one of " + ", ".join(str(c) for c in action.choices))
    return value


def _type_name(kind):
    return {int: "an integer", float: "a number"}.get(kind, "a string")


def toml_value(value):
    """One value in TOML: a string, boolean, number or list of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML needs a finite number. Received: {value}")
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes (\" \\ \n \t \uXXXX ...) are TOML's too.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise ValueError(
        f"Cannot write {type(value).__name__} to TOML. Received: {value!r}"
    )


def write_config(path, settings):
    """Writes the settings of a run as a flat TOML file that
    `--config` reads back to the same settings."""
    lines = [
        "# The settings of this run. Repeat it with",
        f"#   {PROG} train --config {CONFIG_NAME} --output-dir NEW_DIR",
        "# (flags given as well override these).",
    ]
    for name, value in settings.items():
        if name in NOT_IN_CONFIG or value is None:
            continue
        lines.append(f"{name.replace('_', '-')} = {toml_value(value)}")
    pathlib.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# Resolving and checking the settings of `train`.


def resolve(given, config):
    """The settings of a run: flags over the config file over defaults.

    Args:
        given: the settings given as flags.
        config: the settings read from `--config` (or `{}`).

    Returns:
        `(settings, explicit)`: every setting with its value, and the names
        set by a flag or the config file.

    Raises:
        UsageError: an option does not apply to the others, or a value is
            out of range.
    """
    config = dict(config)
    # A data file given as a flag replaces the config file's.
    if "csv" in given or "jsonl" in given:
        config.pop("csv", None)
        config.pop("jsonl", None)
    explicit = {**config, **given}
    settings = {**DEFAULTS, **explicit}
    method = settings["method"]
    check(settings, explicit)
    if settings["learning_rate"] is None:
        settings["learning_rate"] = LEARNING_RATES[method]
    if method == "lora" and settings["alpha"] is None:
        settings["alpha"] = float(2 * settings["rank"])
    if settings["length"] is None and method in LENGTHS:
        settings["length"] = LENGTHS[method]
    for name, methods in METHOD_OPTIONS.items():
        if method not in methods:
            settings[name] = None
    if settings["csv"] or settings["jsonl"]:
        settings["classes"] = None
    else:
        settings["text_column"] = settings["label_column"] = None
    if settings["unfreeze"] != "gradual":
        settings["unfreeze_fraction"] = None
    for name in ("csv", "jsonl"):
        if settings[name]:
            settings[name] = os.path.abspath(settings[name])
    if settings["preset"] and os.path.exists(settings["preset"]):
        settings["preset"] = os.path.abspath(settings["preset"])
    return settings, explicit


def _refuse(name, value, reason):
    raise UsageError(f"{flag(name)} {reason}. Received: {flag(name)}={value}")


def check(settings, explicit):
    """Refuses settings that are out of range or do not go together."""
    method = settings["method"]
    for name, methods in METHOD_OPTIONS.items():
        if name in explicit and method not in methods:
            value = explicit[name]
            if isinstance(value, list):
                value = " ".join(value)
            _refuse(
                name,
                value,
                f"applies to --method {' or '.join(methods)} only, and the "
                f"method is {method}",
            )
    own_data = settings["csv"] or settings["jsonl"]
    if own_data and "classes" in explicit:
        _refuse(
            "classes", explicit["classes"], "applies to the bundled tweets only"
        )
    for name in ("text_column", "label_column"):
        if not own_data and name in explicit:
            _refuse(name, explicit[name], "needs --csv or --jsonl")
    for name in ("epochs", "batch_size", "sequence_length", "rank", "size"):
        if settings[name] <= 0:
            _refuse(name, settings[name], "must be positive")
    if settings["length"] is not None and settings["length"] <= 0:
        _refuse("length", settings["length"], "must be positive")
    for name in ("learning_rate", "alpha"):
        value = settings[name]
        if value is not None and not (value > 0 and math.isfinite(value)):
            _refuse(name, value, "must be positive")
    if settings["seed"] < 0:
        _refuse("seed", settings["seed"], "must not be negative")
    _check_schedule(settings, explicit)
    decay = settings["layerwise_decay"]
    if decay is not None and not 0 < decay <= 1:
        _refuse("layerwise_decay", decay, "must be in (0, 1]")
    if "unfreeze_fraction" in explicit and settings["unfreeze"] != "gradual":
        _refuse(
            "unfreeze_fraction",
            explicit["unfreeze_fraction"],
            "needs --unfreeze gradual",
        )
    fraction = settings["unfreeze_fraction"]
    if not 0 < fraction <= 1:
        _refuse("unfreeze_fraction", fraction, "must be in (0, 1]")
    if settings["merge"] and method not in MERGEABLE:
        _refuse(
            "merge",
            "true",
            f"folds only lora and ia3 into the base weights, and the method "
            f"is {method}",
        )
    if settings["save"] != "model" and method == "full":
        _refuse(
            "save",
            settings["save"],
            "needs a parameter-efficient --method (full fine-tuning has no "
            "adapter)",
        )
    if settings["save"] == "adapter" and settings["merge"]:
        _refuse(
            "save",
            "adapter",
            "cannot go with --merge, which folds the adapters away (use "
            "--save both)",
        )
    output_dir = pathlib.Path(settings["output_dir"])
    if output_dir.exists() and not output_dir.is_dir():
        _refuse("output_dir", output_dir, "is a file, not a folder")


def _check_schedule(settings, explicit):
    schedule, warmup = settings["schedule"], settings["warmup"]
    if warmup is None:
        return
    if schedule == "constant":
        _refuse(
            "warmup",
            warmup,
            "needs a --schedule (linear, cosine, stlr or one-cycle)",
        )
    if schedule in ("stlr", "one-cycle"):
        if not 0 < warmup < 1:
            _refuse("warmup", warmup, f"must be in (0, 1) for {schedule}")
    elif not 0 <= warmup < 1:
        _refuse("warmup", warmup, "must be in [0, 1)")
