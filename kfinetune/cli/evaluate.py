"""`python -m kfinetune evaluate`: a trained run's scores on its test
split or on a file."""

import json
import pathlib

from kfinetune.cli import errors
from kfinetune.cli import runs
from kfinetune.cli import settings as defaults


def run(args):
    """Evaluates the run `args.run`; returns the scores it wrote."""
    if args.batch_size <= 0:
        raise errors.UsageError(
            "--batch-size must be positive. "
            f"Received: --batch-size={args.batch_size}"
        )
    trained = runs.Run(args.run)
    trained.set_threshold(args.threshold)
    task = trained.task
    settings = {**trained.settings, "batch_size": args.batch_size}
    # How to read --test: the run's settings, other columns if given.
    reading = dict(settings)
    for name, default in (("text_column", "text"), ("label_column", "label")):
        value = getattr(args, name)
        if value is not None and not (
            args.test and settings["task"] == "classify"
        ):
            raise errors.UsageError(
                f"{errors.flag(name)} needs --test and a classify run. "
                f"Received: {errors.flag(name)}={value}"
            )
        if args.test and settings["task"] == "classify":
            reading[name] = value or settings[name] or default
    if args.test:
        suffix = pathlib.Path(args.test).suffix.lower()
        if suffix not in defaults.FORMATS[settings["task"]]:
            formats = ", ".join(sorted(defaults.FORMATS[settings["task"]]))
            raise errors.UsageError(
                f"--test must be a {formats} file for the run's task "
                f"{settings['task']}. Received: --test={args.test}"
            )
        if settings["task"] == "classify":
            _check_test_columns(reading, settings, args.test)
    with runs.usage_errors():
        data = task.load_data(settings)
        if args.test:
            split = task.read_split(reading, args.test, data)
            source = args.test
        else:
            split, source = task.split(data, "test"), "the run's test split"
        model = trained.load_model()
    output_dir = pathlib.Path(
        args.output_dir or pathlib.Path(args.run) / "evaluation"
    )
    report = task.evaluate(model, split, data, settings)
    print(f"evaluated on {source}")
    for line in task.report_lines(report, prefix=""):
        print(line)
    result = {**task.scores(report), "data": str(source)}
    with runs.staged(output_dir) as out:
        (out / "evaluation.json").write_text(json.dumps(result, indent=2))
        task.write_plots(report, out)
    print(f"report in {output_dir}")
    return result


def _check_test_columns(reading, settings, path):
    """Refuses, before TensorFlow starts, a --test file without the
    columns, or with one text column for a sentence-pair run (or two for
    a single-text run)."""
    wanted = defaults.text_columns(reading["text_column"])
    trained = defaults.text_columns(settings["text_column"] or "text")
    if len(wanted) != len(trained):
        kind = "sentence pairs" if len(trained) == 2 else "single texts"
        raise errors.UsageError(
            f"the run classifies {kind}: --text-column must name "
            f"{len(trained)} column{'s' if len(trained) == 2 else ''}. "
            f"Received: --text-column={reading['text_column']}"
        )
    defaults.check_columns({**reading, "test": path}, paths=("test",))
