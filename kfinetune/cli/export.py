"""`python -m kfinetune export`: a trained run as a SavedModel."""

import pathlib

from kfinetune.cli import arguments
from kfinetune.cli import runs


def run(args):
    """Exports the run `args.run`; returns the folder written."""
    from kfinetune import export
    from kfinetune import peft

    trained = runs.Run(args.run)
    method = trained.settings["method"]
    if args.merge and method not in arguments.MERGEABLE:
        raise arguments.UsageError(
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
            raise arguments.UsageError(
                "--output must be a new folder, an empty one or a SavedModel "
                "to replace; this is a file or a folder of something else. "
                f"Received: --output={output}"
            )
    with runs.usage_errors():
        model = trained.load_model()
    if args.merge and isinstance(model, peft.PEFTModel) and model.adapters:
        model = peft.merge_and_unload(model)
        print("merged the adapters into the base weights")
    # A SavedModel written earlier is replaced whole.
    with runs.staged(output, replaces=[p.name for p in old]) as out:
        export.export_text_classifier(
            model,
            out,
            class_names=trained.class_names,
            verbose=False,
        )
    print(f"exported {output} (takes raw text)")
    return output
