"""`python -m kfinetune export`: a trained run as a SavedModel (a keras-hub
preset folder for the generator tasks)."""

import pathlib

from kfinetune.cli import errors
from kfinetune.cli import runs
from kfinetune.cli import settings as defaults


def run(args):
    """Exports the run `args.run`; returns the folder written."""
    from kfinetune import peft

    trained = runs.Run(args.run)
    trained.set_threshold(args.threshold)
    task = trained.task
    settings = trained.settings
    method = settings["method"]
    if args.merge and method not in defaults.MERGEABLE:
        raise errors.UsageError(
            "--merge folds only lora and ia3 into the base weights, and the "
            f"run's method is {method}. Received: --merge"
        )
    if (
        settings["task"] in defaults.GENERATORS
        and method not in defaults.EXPORTABLE_GENERATOR_METHODS
    ):
        raise errors.UsageError(
            "export writes a keras-hub preset folder for a "
            f"{settings['task']} run, which holds a plain keras-hub model, "
            f"and {method} adapters do not fold into its weights (full, "
            f"lora and ia3 runs export). Received: RUN_DIR={args.run}"
        )
    output = pathlib.Path(
        args.output or pathlib.Path(args.run) / runs.export_folder(task)
    )
    marker = runs.export_marker(task)
    old = []
    if output.exists():
        old = list(output.iterdir()) if output.is_dir() else None
        if old is None or (old and not (output / marker).exists()):
            raise errors.UsageError(
                "--output must be a new folder, an empty one or an earlier "
                f"export to replace (a folder with {marker}); this is a file "
                f"or a folder of something else. Received: --output={output}"
            )
    with runs.usage_errors():
        # The tokenizer and labels the export reads, as the run had them.
        data = task.load_data(settings)
        model = trained.load_model()
    if args.merge and isinstance(model, peft.PEFTModel) and model.adapters:
        model = peft.merge_and_unload(model)
        print("merged the adapters into the base weights")
    # An earlier export is replaced whole.
    with runs.staged(output, replaces=[p.name for p in old]) as out:
        task.export(model, out, data, settings)
    print(f"exported {output} ({runs.export_description(task)})")
    return output
