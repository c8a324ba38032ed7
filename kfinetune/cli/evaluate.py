"""`python -m kfinetune evaluate`: a trained run's scores on labelled
texts."""

import json
import pathlib

from kfinetune.cli import arguments
from kfinetune.cli import runs


def run(args):
    """Evaluates the run `args.run`; returns the report's dict."""
    from kfinetune import evaluation

    if args.batch_size <= 0:
        raise arguments.UsageError(
            "--batch-size must be positive. "
            f"Received: --batch-size={args.batch_size}"
        )
    trained = runs.Run(args.run)
    settings = trained.settings
    own_file = args.csv or args.jsonl
    for name in ("text_column", "label_column"):
        if getattr(args, name) is not None and not own_file:
            raise arguments.UsageError(
                f"{arguments.flag(name)} needs --csv or --jsonl. "
                f"Received: {arguments.flag(name)}={getattr(args, name)}"
            )
    with runs.usage_errors():
        if own_file:
            texts = runs.load_texts(
                {
                    "csv": args.csv,
                    "jsonl": args.jsonl,
                    "text_column": args.text_column
                    or settings["text_column"]
                    or "text",
                    "label_column": args.label_column
                    or settings["label_column"]
                    or "label",
                },
                class_names=trained.class_names,
            )
            dataset, source = texts.as_dataset(shuffle=False), own_file
        else:
            dataset = runs.load_data(settings).test
            source = "the run's test split"
        model = trained.load_model()
    output_dir = pathlib.Path(
        args.output_dir or pathlib.Path(args.run) / "evaluation"
    )
    report = evaluation.evaluate_classifier(
        model, dataset, trained.class_names, batch_size=args.batch_size
    )
    print(f"evaluated on {source}")
    print(report)
    print(f"accuracy: {report.accuracy:.3f}")
    print(f"macro-F1: {report.macro_f1:.3f}")
    result = {**report.as_dict(), "data": str(source)}
    with runs.staged(output_dir) as out:
        (out / "evaluation.json").write_text(json.dumps(result, indent=2))
        report.plot_confusion_matrix(out / "confusion_matrix.png")
    print(f"report in {output_dir}")
    return result
