"""`python -m kfinetune export`: a trained run as a SavedModel."""

import pathlib

from kfinetune.cli import errors
from kfinetune.cli import runs
from kfinetune.cli import settings as defaults


def run(args):
    """Exports the run `args.run`; returns the folder written."""
    from kfinetune import peft

    trained = runs.Run(args.run)
    trained.set_threshold(args.threshold)
    method = trained.settings["method"]
    if args.merge and method not in defaults.MERGEABLE:
        raise errors.UsageError(
            "--merge folds only lora and ia3 into the base weights, and the "
            f"run's method is {method}. Received: --merge"
        )
    output = pathlib.Path(
        args.output or pathlib.Path(args.run) / runs.SAVED_MODEL
    )
    old = []
    if output.exists():
        old = list(output.iterdir()) if output.is_dir() else None
        if old is None or (old and not (output / "saved_model.pb").exists()):
            raise errors.UsageError(
                "--output must be a new folder, an empty one or a SavedModel "
                "to replace; this is a file or a folder of something else. "
                f"Received: --output={output}"
            )
    task = trained.task
    with runs.usage_errors():
        # The tokenizer and labels the export reads, as the run had them.
        data = task.load_data(trained.settings)
        model = trained.load_model()
    if args.merge and isinstance(model, peft.PEFTModel) and model.adapters:
        model = peft.merge_and_unload(model)
        print("merged the adapters into the base weights")
    # A SavedModel written earlier is replaced whole.
    with runs.staged(output, replaces=[p.name for p in old]) as out:
        task.export(model, out, data, trained.settings)
    print(f"exported {output} (takes raw text)")
    return output
