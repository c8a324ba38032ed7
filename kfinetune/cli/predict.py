"""`python -m kfinetune predict`: label texts with a trained run."""

import json
import sys

from kfinetune.cli import arguments
from kfinetune.cli import runs


def read_texts(args, stdin=None):
    """The texts to label: the arguments, `--file` (`-` is stdin) or stdin;
    one text per line, blank lines kept (they get an empty row)."""
    stdin = stdin or sys.stdin
    if args.texts and args.file:
        raise arguments.UsageError(
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
            raise arguments.UsageError(
                f"cannot read the texts ({reason}). "
                f"Received: --file={args.file}"
            ) from None
    else:
        if stdin.isatty() and not args.file:
            raise arguments.UsageError(
                "no texts: give them as arguments, with --file, or on "
                "stdin (a pipe). Received: no TEXT, no --file"
            )
        texts = stdin.read().splitlines()
    if not any(text.strip() for text in texts):
        raise arguments.UsageError(
            "no texts to label: every line is blank. "
            f"Received: --file={args.file or '-'}"
        )
    return texts


def _blank_row(text):
    return {
        "text": text,
        "label": None,
        "probability": None,
        "probabilities": None,
    }


def run(args, stdin=None, stdout=None):
    """Prints a label and its probability per text; returns the rows.

    Output line `i` answers input line `i`: a blank line is not sent to the
    model and gets a row without a label (`null`s in JSON, an empty line
    in text).
    """
    import numpy as np

    stdout = stdout or sys.stdout
    if args.batch_size <= 0:
        raise arguments.UsageError(
            "--batch-size must be positive. "
            f"Received: --batch-size={args.batch_size}"
        )
    trained = runs.Run(args.run)
    texts = read_texts(args, stdin)
    with runs.usage_errors():
        model = trained.load_model()
    labelled = [text for text in texts if text.strip()]
    logits = model.predict(
        np.array(labelled), batch_size=args.batch_size, verbose=0
    )
    logits = logits - logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    scores_of = iter(probabilities)
    rows = []
    for text in texts:
        if not text.strip():
            row = _blank_row(text)
        else:
            scores = next(scores_of)
            best = int(np.argmax(scores))
            row = {
                "text": text,
                "label": trained.class_names[best],
                "probability": round(float(scores[best]), 6),
                "probabilities": {
                    name: round(float(p), 6)
                    for name, p in zip(trained.class_names, scores, strict=True)
                },
            }
        rows.append(row)
        if args.json:
            print(json.dumps(row, ensure_ascii=False), file=stdout)
        elif row["label"] is None:
            print(text, file=stdout)
        else:
            print(
                f"{row['label']}\t{row['probability']:.3f}\t{text}",
                file=stdout,
            )
    return rows
