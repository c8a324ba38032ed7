"""`python -m kfinetune` (or the `kfinetune` command): fine-tune,
evaluate, predict and export from the command line.

Four subcommands, one module each: `train` (the default when no
subcommand is given, so `python -m kfinetune --output-dir runs/demo`
trains), `evaluate`, `predict` and `export`; five tasks, one module each
in `kfinetune.cli.tasks`: `classify`, `tag`, `qa`, and the generator
tasks `causal-lm` and `seq2seq` (on a `--preset` of the user's). The
flags are in `parser`, their defaults and checks in `settings`, config
files in `config_file`. Options are checked before TensorFlow is
imported; a bad option, column or file prints one line and exits with
code 2, and nothing is written.

Example:

```python
from kfinetune import cli

cli.main(["train", "--method", "lora", "--output-dir", "runs/lora"])
cli.main(["predict", "runs/lora", "what a great day", "--json"])
```
"""

import os
import sys

from kfinetune.cli import config_file
from kfinetune.cli import errors
from kfinetune.cli import parser as flags
from kfinetune.cli import settings as defaults
from kfinetune.cli import training


def _with_command(argv):
    # No subcommand means `train`: `python -m kfinetune --epochs 3`.
    if argv and (argv[0] in flags.COMMANDS or argv[0] in ("-h", "--help")):
        return argv
    return ["train", *argv]


def main(argv=None):
    """Runs `python -m kfinetune` with `argv` (default: `sys.argv[1:]`).

    Args:
        argv: the arguments, without the program name. Defaults to
            `sys.argv[1:]`.

    Returns:
        `0` on success. Bad options, columns or files exit with code 2
        (`SystemExit`) after one line on stderr.

    Example:

    ```python
    kfinetune.cli.main(["--output-dir", "runs/demo"])
    ```
    """
    argv = _with_command(list(sys.argv[1:] if argv is None else argv))
    parser = flags.build_parser()
    args = parser.parse_args(argv)
    command = parser.subcommands[args.command]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        if args.command == "train":
            given = {
                k: v for k, v in vars(args).items() if k in defaults.DEFAULTS
            }
            config = {}
            if getattr(args, "config", None):
                config = config_file.read_config(
                    args.config, parser.train_actions
                )
            settings, _ = defaults.resolve(given, config)
            resume = getattr(args, "resume", False)
            training.check_resume(settings, resume)
            from kfinetune.cli import train

            train.run(settings, resume=resume)
        elif args.command == "evaluate":
            from kfinetune.cli import evaluate

            evaluate.run(args)
        elif args.command == "predict":
            from kfinetune.cli import predict

            predict.run(args)
        else:
            from kfinetune.cli import export

            export.run(args)
    except errors.UsageError as error:
        command.error(str(error))
    return 0


__all__ = ["main"]
