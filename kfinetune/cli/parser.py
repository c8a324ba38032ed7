"""The command line's flags: the argparse tree of `python -m kfinetune`.

Each flag's help names its default from `settings.DEFAULTS`; the checks
that need more than one flag live in `settings`. Nothing here imports
TensorFlow or Keras: a bad flag is refused at once.
"""

import argparse
import os
import sys

from kfinetune.cli import config_file
from kfinetune.cli import settings as defaults

PROG = config_file.PROG
COMMANDS = ("train", "evaluate", "predict", "export")


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line: `prog: error: ...`."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(
            2, f"{self.prog}: error: {message} (--help lists the options)\n"
        )


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _default(name):
    value = defaults.DEFAULTS[name]
    if isinstance(value, bool):
        return f"--{name.replace('_', '-')}" if value else "off"
    return value


def _prog():
    """`kfinetune` when started as the `kfinetune` command, else
    `python -m kfinetune`: how the user called it."""
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    if name.lower() in ("kfinetune", "kfinetune.exe"):
        return "kfinetune"
    return PROG


def build_parser():
    """The parser of `python -m kfinetune` and its four subcommands."""
    parser = Parser(
        prog=_prog(),
        formatter_class=_formatter,
        description=(
            "Fine-tune a pretrained keras-hub model (by default the bundled "
            "all-MiniLM-L6-v2) for text classification, tagging or question "
            "answering, or a keras-hub generator of your own (--preset) for "
            "instructions or sequence-to-sequence generation, with any "
            "kfinetune method, then evaluate it, predict with it and export "
            "it."
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
            "Fine-tune a model for a task, evaluate it on a held-out test "
            "split and save everything in --output-dir: model.keras (or "
            "adapter.h5), saved_model/ (causal-lm and seq2seq: preset/, a "
            "keras-hub preset folder), metrics.json, config.toml (these "
            "settings, to repeat the run) and plots. Nothing is written "
            "when an option, column or file is wrong."
        ),
        epilog=(
            "examples:\n"
            "  python -m kfinetune train --output-dir runs/demo\n"
            "  python -m kfinetune train --train reviews.csv --text-column "
            "review \\\n"
            "      --label-column stars --method lora --output-dir runs/lora\n"
            "  python -m kfinetune train --train nli.csv --text-column "
            "premise,hypothesis\n"
            "  python -m kfinetune train --train news.jsonl --label-column "
            "topics --multi-label\n"
            "  python -m kfinetune train --task tag --train train.conll "
            "--test test.conll --crf\n"
            "  python -m kfinetune train --task qa --train squad.json "
            "--method lora\n"
            "  python -m kfinetune train --task causal-lm --preset gpt2/ "
            "--train chat.jsonl --method lora\n"
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
    add(
        train,
        "--task",
        choices=defaults.TASKS,
        help="classify: a label per text (CSV, TSV or JSON Lines); tag: a "
        "tag per word (CoNLL); qa: answer spans in a context (SQuAD JSON); "
        "causal-lm: a response per prompt, or chats (JSON Lines); seq2seq: "
        "a target per source (JSON Lines). "
        f"Default: {_default('task')}",
    )
    _add_data(train, add)
    _add_model(train, add)
    _add_method(train, add)
    _add_training(train, add)
    output = train.add_argument_group("output")
    add(
        output,
        "--save",
        choices=("model", "adapter", "both"),
        help="model: model.keras; adapter: only the adapter weights and "
        "the head (adapter.h5, 352 KB for LoRA rank 8 on MiniLM; needs the "
        "base preset to load); both. Default: model",
    )
    add(
        output,
        "--output-dir",
        metavar="DIR",
        help="where the outputs go (replacing a previous run's). "
        f"Default: {_default('output_dir')}",
    )
    add(
        output,
        "--resume",
        action="store_true",
        help="continue an interrupted run with the same settings and "
        "--output-dir from its last finished epoch (every run backs up "
        "each epoch in --output-dir/.backup until it ends)",
    )
    add(
        output,
        "--export",
        action=argparse.BooleanOptionalAction,
        help="also export saved_model/, a SavedModel that reads raw text "
        "(causal-lm and seq2seq: preset/, a keras-hub preset folder of the "
        "merged model, for full, lora and ia3). Default: --export (for "
        "causal-lm and seq2seq, with full, lora and ia3 only)",
    )
    return train, actions


def _add_data(train, add):
    data = train.add_argument_group(
        "data",
        "Without --train, --task classify, causal-lm and seq2seq use the "
        "bundled tweets. Without --validation and --test, they are split "
        "off --train.",
    )
    add(
        data,
        "--train",
        metavar="FILE",
        help="the training file: .csv, .tsv or .jsonl (classify), .conll, "
        ".iob or .txt (tag), .json (qa), .jsonl (causal-lm: prompt and "
        "response, or messages; seq2seq: source and target)",
    )
    add(data, "--validation", metavar="FILE", help="the validation file")
    add(data, "--test", metavar="FILE", help="the test file")
    add(
        data,
        "--validation-split",
        type=float,
        metavar="F",
        help="without --validation, the fraction of --train held out for "
        f"validation (stratified for classify). Default: "
        f"{_default('validation_split')}",
    )
    add(
        data,
        "--test-split",
        type=float,
        metavar="F",
        help="without --test, the fraction of --train held out for the "
        f"test. Default: {_default('test_split')}",
    )
    add(
        data,
        "--encoding",
        metavar="NAME",
        help=f"the files' text encoding. Default: {_default('encoding')}",
    )
    add(
        data,
        "--errors",
        choices=("strict", "replace", "ignore"),
        help="classify, causal-lm, seq2seq: bytes that are not valid text "
        "in --encoding: strict refuses the file, replace and ignore drop "
        "them (CoNLL and SQuAD files are read strictly). Default: strict",
    )
    add(
        data,
        "--delimiter",
        metavar="CHAR",
        help="classify: the field separator. Default: ',' for .csv, a tab "
        "for .tsv",
    )
    add(
        data,
        "--text-column",
        metavar="NAME",
        help="classify: the text column, or two separated by a comma for "
        "sentence pairs (premise,hypothesis: [CLS] premise [SEP] "
        f"hypothesis [SEP]). Default: {_default('text_column')}",
    )
    add(
        data,
        "--label-column",
        metavar="NAME",
        help=f"classify: Default: {_default('label_column')}",
    )
    add(
        data,
        "--multi-label",
        action="store_true",
        help="classify: any number of labels a text, a sigmoid each. JSON "
        "Lines labels are lists (['sports', 'politics'], [] for none); a "
        "CSV or TSV label cell joins them with --label-separator "
        "(sports|politics, empty for none)",
    )
    add(
        data,
        "--label-separator",
        metavar="STRING",
        help="classify --multi-label, CSV and TSV: what joins the labels of "
        f"a cell. Default: {defaults.LABEL_SEPARATOR}",
    )
    add(
        data,
        "--classes",
        type=int,
        choices=(2, 3),
        help="classify and causal-lm, bundled tweets: 2 (negative, "
        "positive; balanced) or 3 (with neutral; stratified). Default: 2",
    )
    add(
        data,
        "--token-column",
        type=int,
        metavar="N",
        help="tag: the column of the word in each line. Default: 0",
    )
    add(
        data,
        "--tag-column",
        type=int,
        metavar="N",
        help="tag: the column of the tag; negative counts from the end. "
        "Default: -1",
    )
    add(
        data,
        "--document-stride",
        type=int,
        metavar="N",
        help="qa: a context longer than --sequence-length is read in windows "
        "that start N tokens apart. Default: 128, or half of "
        "--sequence-length when that is shorter than 256, so that windows "
        "overlap",
    )
    add(
        data,
        "--max-answer-length",
        type=int,
        metavar="N",
        help="qa: the longest answer predicted, in tokens. Default: "
        f"{_default('max_answer_length')}",
    )
    add(
        data,
        "--generation-examples",
        type=int,
        metavar="N",
        help="causal-lm, seq2seq: the generation scores (BLEU, chrF, "
        "ROUGE-L, exact match) are of the first N examples of the test "
        "split (and of the validation split, for a --monitor of them). "
        f"Default: {_default('generation_examples')}",
    )


def _add_model(train, add):
    model = train.add_argument_group("model")
    add(
        model,
        "--preset",
        metavar="PATH",
        help="a keras-hub preset folder or handle, or a Hugging Face "
        "folder (BERT; GPT-2 or Llama for causal-lm, BART for seq2seq). "
        "Default: bundled MiniLM (causal-lm and seq2seq need it: no "
        "generator is bundled)",
    )
    lengths = ", ".join(
        f"{length} for {task}"
        for task, length in defaults.SEQUENCE_LENGTHS.items()
    )
    add(
        model,
        "--sequence-length",
        type=int,
        metavar="N",
        help="padded input length in tokens; the run reports how many "
        f"inputs it cuts. Default: {lengths}",
    )
    add(
        model,
        "--crf",
        action="store_true",
        help="tag: a word-level CRF on the tag scores",
    )


def _add_method(train, add):
    method = train.add_argument_group("method")
    add(
        method,
        "--method",
        choices=defaults.METHODS,
        help="full: every weight trains; lora, adapter, ia3, prefix, "
        "prompt: only the method's weights and the task's head train. "
        "Default: full",
    )
    add(
        method,
        "--rank",
        type=int,
        metavar="R",
        help=f"lora: rank. Default: {defaults.RANK} "
        f"({defaults.TASK_DEFAULTS['tag']['lora']['rank']} for --task tag)",
    )
    add(
        method,
        "--alpha",
        type=float,
        metavar="A",
        help="lora: scale numerator (update scaled by alpha / rank). "
        "Default: 2 x rank (the measured setting; the library's "
        "LoRAConfig defaults to rank, as PEFT does)",
    )
    add(
        method,
        "--size",
        type=int,
        metavar="N",
        help="adapter: bottleneck size (Houlsby placement). Default: 48",
    )
    lengths = ", ".join(
        f"{length} for {name}" for name, length in defaults.LENGTHS.items()
    )
    add(
        method,
        "--length",
        type=int,
        metavar="N",
        help=f"prefix, prompt: number of virtual tokens. Default: {lengths}",
    )
    add(
        method,
        "--targets",
        nargs="+",
        metavar="REGEX",
        help="lora, adapter, ia3, prefix, prompt: the layer paths to adapt "
        "(regular expressions matched in full). Default: the method's own, "
        "e.g. '.*/(query|value)' for lora (every dense layer for --task tag)",
    )
    add(
        method,
        "--merge",
        action="store_true",
        help="lora, ia3: fold the adapters into the base weights before "
        "saving and exporting (a plain model, no extra cost at inference)",
    )


def _add_training(train, add):
    training = train.add_argument_group("training")
    add(
        training,
        "--epochs",
        type=int,
        metavar="N",
        help=f"Default: {defaults.EPOCHS} "
        f"({defaults.TASK_DEFAULTS['tag']['epochs']} for --task tag)",
    )
    add(
        training,
        "--batch-size",
        type=int,
        metavar="N",
        help=f"Default: {_default('batch_size')}",
    )
    rates = ", ".join(
        f"{name} {rate:g}" for name, rate in defaults.LEARNING_RATES.items()
    )
    add(
        training,
        "--learning-rate",
        type=float,
        metavar="LR",
        help="AdamW's peak learning rate (the top layer group's, with "
        f"--layerwise-decay). Default: per method, {rates}; full "
        f"{defaults.TASK_DEFAULTS['tag']['learning_rates']['full']:g} for "
        "--task tag and qa",
    )
    add(
        training,
        "--schedule",
        choices=defaults.SCHEDULES,
        help="learning-rate schedule: constant; linear or cosine decay to "
        "zero after --warmup; stlr (slanted triangular, ULMFiT); "
        f"one-cycle. Default: {_default('schedule')}",
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
    monitors = "; ".join(
        f"{task}: {', '.join(names)}"
        for task, names in defaults.MONITORS.items()
    )
    add(
        training,
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="stop when --monitor has not improved on the validation split "
        "for PATIENCE epochs, and keep the best epoch's weights. Default: "
        "off (every epoch runs; the last is kept)",
    )
    add(
        training,
        "--monitor",
        metavar="METRIC",
        help=f"--early-stopping: the validation metric ({monitors}). "
        "Default: the first of the task's",
    )
    add(
        training,
        "--class-weight",
        choices=("none", "balanced"),
        help="classify: balanced weighs each class's loss by total / "
        "(classes x its count), so rare classes count as much as common "
        "ones (not with --multi-label). Default: none",
    )
    add(
        training,
        "--threshold",
        type=float,
        metavar="P",
        help="classify --multi-label: a label is predicted when its "
        "probability is above P (test scores, sample predictions, "
        f"export). Default: {defaults.THRESHOLD}",
    )
    add(
        training,
        "--accumulate",
        type=int,
        metavar="N",
        help="apply the summed gradients of N batches at once (an effective "
        "batch of N x --batch-size). Default: 1",
    )
    add(
        training,
        "--precision",
        choices=defaults.PRECISIONS,
        help="bfloat16: compute in bfloat16 with float32 weights "
        "(mixed_bfloat16). Default: float32",
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


def _add_run_argument(parser):
    parser.add_argument(
        "run", metavar="RUN_DIR", help="the --output-dir of a `train` run"
    )


def _add_evaluate(commands):
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a trained run on its test split or on a file",
        description=(
            "Evaluate a trained run with its task's scores (classify: "
            "accuracy, macro-F1 and per-class scores; tag: entity F1; qa: "
            "exact match and F1; causal-lm and seq2seq: perplexity, and "
            "BLEU, chrF, ROUGE-L and exact match of greedy generations), "
            "printed and written to --output-dir. "
            "Without --test, on the run's own test split (rebuilt from its "
            "config.toml)."
        ),
        epilog=(
            "examples:\n"
            "  python -m kfinetune evaluate runs/demo\n"
            "  python -m kfinetune evaluate runs/reviews --test new.csv"
        ),
        formatter_class=_formatter,
    )
    _add_run_argument(evaluate)
    evaluate.add_argument(
        "--test",
        metavar="FILE",
        help="evaluate on every example of this file (the run's format, "
        "delimiter and encoding)",
    )
    evaluate.add_argument(
        "--text-column",
        metavar="NAME",
        help="classify, --test: the text column, or two separated by a "
        "comma for a sentence-pair run. Default: the run's (text for the "
        "bundled tweets)",
    )
    evaluate.add_argument(
        "--label-column",
        metavar="NAME",
        help="classify, --test: Default: the run's (label for the bundled "
        "tweets)",
    )
    _add_threshold(evaluate)
    evaluate.add_argument(
        "--batch-size", type=int, default=32, metavar="N", help="Default: 32"
    )
    evaluate.add_argument(
        "--output-dir",
        metavar="DIR",
        help="where evaluation.json and the plots go. "
        "Default: RUN_DIR/evaluation",
    )
    return evaluate


def _add_predict(commands):
    predict = commands.add_parser(
        "predict",
        help="predict for texts from arguments, a file or stdin",
        description=(
            "Predict with a trained run, one line per input. classify: the "
            "label, its probability and the text, tab-separated (multi-label: "
            "every label above the threshold with its probability, "
            "comma-separated, or (none), then the text); tag: each word with "
            "its tag (word/TAG); qa: the answer; causal-lm and seq2seq: the "
            "greedy generation for the prompt or source, newlines as \\n. "
            "--json prints a JSON object per line. Inputs come from the "
            "arguments, from --file (one per line; - is stdin) or, when "
            "neither is given, from stdin. qa reads a question and its "
            "context per line, and a sentence-pair classify run its two "
            "texts, separated by a tab; causal-lm and seq2seq read \\n as "
            "a newline."
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
        "--file", metavar="FILE", help="one input per line; - reads stdin"
    )
    predict.add_argument(
        "--json",
        action="store_true",
        help="print JSON lines (classify: every class's probability too)",
    )
    _add_threshold(predict)
    predict.add_argument(
        "--batch-size", type=int, default=32, metavar="N", help="Default: 32"
    )
    predict.add_argument(
        "--max-new-tokens",
        type=int,
        metavar="N",
        help="causal-lm, seq2seq: generate at most N tokens (fewer when the "
        "end token comes first, or the model's positions run out). "
        "Default: as in training, up to the run's --sequence-length tokens "
        "(causal-lm: with the prompt)",
    )
    return predict


def _add_export(commands):
    export = commands.add_parser(
        "export",
        help="export a trained run as a SavedModel that reads raw text",
        description=(
            "Export a trained run as a SavedModel whose `serve` endpoint "
            "takes raw strings (classify: texts, or texts and text_pairs for "
            "a sentence-pair run; tag: sentences; qa: questions and "
            "contexts). causal-lm and seq2seq runs (full, lora or ia3) "
            "export as a keras-hub preset folder instead, with LoRA or IA3 "
            "folded into the weights: kfinetune.presets.causal_lm / "
            "seq2seq_lm and keras-hub's from_preset load it."
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
        help="the folder to write (an earlier export there is replaced). "
        "Default: RUN_DIR/saved_model (RUN_DIR/preset for causal-lm and "
        "seq2seq)",
    )
    export.add_argument(
        "--merge",
        action="store_true",
        help="lora, ia3: fold the adapters into the base weights first "
        "(causal-lm and seq2seq runs always do: a preset holds a plain "
        "model)",
    )
    _add_threshold(export)
    return export


def _add_threshold(parser):
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="P",
        help="classify --multi-label runs: a label is predicted when its "
        "probability is above P. Default: the run's (0.5 unless set)",
    )
