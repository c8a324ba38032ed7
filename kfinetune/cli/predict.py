"""`python -m kfinetune predict`: label texts with a trained run (or, for
the generator tasks, write a text for each)."""

import json
import sys

from kfinetune.cli import errors
from kfinetune.cli import runs
from kfinetune.cli import settings as defaults


def read_texts(args, stdin=None):
    """The texts to label: the arguments, `--file` (`-` is stdin) or stdin;
    one text per line, blank lines kept (they get an empty row)."""
    stdin = stdin or sys.stdin
    if args.texts and args.file:
        raise errors.UsageError(
            "give the texts as arguments or with --file, not both. "
            f"Received: --file={args.file}"
        )
    if args.texts:
        texts = list(args.texts)
    elif args.file and args.file != "-":
        try:
            with open(args.file, encoding="utf-8") as f:
                texts = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise errors.UsageError(
                f"cannot read the texts ({reason}). "
                f"Received: --file={args.file}"
            ) from None
    else:
        if stdin.isatty() and not args.file:
            raise errors.UsageError(
                "no texts: give them as arguments, with --file, or on "
                "stdin (a pipe). Received: no TEXT, no --file"
            )
        texts = stdin.read().splitlines()
    if not any(text.strip() for text in texts):
        raise errors.UsageError(
            "no texts to label: every line is blank. "
            f"Received: --file={args.file or '-'}"
        )
    return texts


def run(args, stdin=None, stdout=None):
    """Prints a prediction per input line; returns the rows.

    Output line `i` answers input line `i`: a blank line is not sent to the
    model and gets a row without a prediction (`null`s in JSON, an empty
    line in text).
    """
    stdout = stdout or sys.stdout
    if args.batch_size <= 0:
        raise errors.UsageError(
            "--batch-size must be positive. "
            f"Received: --batch-size={args.batch_size}"
        )
    trained = runs.Run(args.run)
    # Only the generator tasks take a length to generate.
    options = {}
    max_new_tokens = getattr(args, "max_new_tokens", None)
    if max_new_tokens is not None:
        if trained.settings["task"] not in defaults.GENERATORS:
            raise errors.UsageError(
                "--max-new-tokens applies to causal-lm and seq2seq runs, and "
                f"the run's task is {trained.settings['task']}. "
                f"Received: --max-new-tokens={max_new_tokens}"
            )
        if max_new_tokens <= 0:
            raise errors.UsageError(
                "--max-new-tokens must be positive. "
                f"Received: --max-new-tokens={max_new_tokens}"
            )
        options["max_new_tokens"] = max_new_tokens
    trained.set_threshold(args.threshold)
    texts = read_texts(args, stdin)
    task = trained.task
    inputs = [text for text in texts if text.strip()]
    with runs.usage_errors():
        task.check_inputs(inputs, trained)
        model = trained.load_model()
        predicted = iter(
            task.predict_rows(
                model, inputs, trained, args.batch_size, **options
            )
        )
    rows = []
    for text in texts:
        row = next(predicted) if text.strip() else task.blank_row(text, trained)
        rows.append(row)
        if args.json:
            print(json.dumps(row, ensure_ascii=False), file=stdout)
        else:
            print(task.row_line(row, text), file=stdout)
    return rows
