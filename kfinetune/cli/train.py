"""`python -m kfinetune train`: fine-tune, evaluate, save and export, for
any task (`kfinetune.cli.tasks`)."""

import json
import time

from kfinetune.cli import config_file
from kfinetune.cli import errors
from kfinetune.cli import runs
from kfinetune.cli import settings as checks
from kfinetune.cli import tasks
from kfinetune.cli import training

# Everything a `train` run writes: a re-run into the same folder removes
# what an older run wrote and this one does not (e.g. its model.keras).
OUTPUTS = (
    config_file.CONFIG_NAME,
    runs.CLASS_NAMES,
    runs.TAG_NAMES,
    runs.MODEL,
    runs.ADAPTER,
    runs.SAVED_MODEL,
    "preset",
    "metrics.json",
    "training_curves.png",
    "confusion_matrix.png",
    "generations.jsonl",
)

# keras-hub tasks and kfinetune's methods reload to within float rounding;
# in bfloat16, to within its 8 bits of mantissa.
TOLERANCES = {"float32": 1e-4, "bfloat16": 2e-2}


def _difference(a, b):
    import numpy as np

    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _check_sizes(task, data):
    for name, size in task.sizes(data).items():
        if size < checks.MIN_EXAMPLES[name]:
            raise errors.UsageError(
                f"the {name} split has {size} examples, too few to train "
                "and evaluate on: give more data, larger --validation-split "
                "/ --test-split, or files of their own. "
                f"Received: {name} size {size}"
            )


def run(settings, resume=False):
    """Runs a training job; returns the metrics it wrote.

    Everything that can be wrong with the options, the data or the method
    is found before anything trains or is written.
    """
    import keras
    import numpy as np

    from kfinetune import callbacks
    from kfinetune import peft

    started = time.perf_counter()
    task = tasks.get(settings["task"])
    keras.utils.set_random_seed(settings["seed"])
    with training.precision(settings):
        with runs.usage_errors():
            data = task.load_data(settings)
            print(data)
            _check_sizes(task, data)
            model = task.build_model(settings, task.labels(data))
            truncation = task.truncation(model, data, settings)
            if truncation:
                print(truncation)
            config = training.peft_config(settings)
            if config is not None:
                model = peft.apply(model, config)
            train, validation = task.fit_data(model, data, settings)
            batches = int(train.cardinality()) * settings["epochs"]
            optimizer, fit_callbacks = training.optimizer_and_callbacks(
                model, settings, batches
            )
        loss, metrics = task.loss_and_metrics(settings)
        training.compile_model(
            model, optimizer, settings, loss, metrics, data=train
        )
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        total = sum(int(np.prod(w.shape)) for w in model.weights)
        print(
            f"task: {settings['task']}; method: {settings['method']}; "
            f"trainable parameters: {trainable:,} of {total:,} "
            f"({100 * trainable / total:.2f} %)"
        )
        stopping = training.early_stopping(settings)
        with runs.usage_errors():
            backup = training.backup(settings, resume)
        output_dir = settings["output_dir"]
        with runs.staged(output_dir, replaces=OUTPUTS) as out:
            config_file.write_config(out / config_file.CONFIG_NAME, settings)
            labels = task.labels(data)
            if labels is not None:
                (out / runs.labels_file(settings["task"])).write_text(
                    "".join(f"{name}\n" for name in labels), encoding="utf-8"
                )
            history = model.fit(
                train,
                validation_data=validation,
                epochs=settings["epochs"],
                class_weight=task.class_weight(data, settings),
                callbacks=[
                    backup,
                    *fit_callbacks,
                    *task.monitor_callbacks(model, data, settings),
                    *([stopping] if stopping else []),
                    callbacks.TrainingCurves(out / "training_curves.png"),
                ],
                # The datasets reshuffle every epoch themselves.
                shuffle=False,
                verbose=1,
            )
            # Early stopping says itself when it stopped and which epoch's
            # weights it restored.
            epochs_run = len(history.history.get("loss", []))
            report = task.evaluate(
                model, task.split(data, "test"), data, settings
            )
            task.write_plots(report, out)
            for line in task.report_lines(report):
                print(line)
            probe = task.probe(data)
            expected = task.outputs(model, probe, data, settings)
            print("sample predictions (test split):")
            for line in task.sample_lines(probe, expected, data, settings):
                print(line)
            differences = _save(
                model, task, data, settings, probe, expected, out
            )
            for name, value in differences.items():
                print(f"{name.replace('_', ' ')}: {value:.2e}")
            metrics = {
                **task.scores(report),
                "task": settings["task"],
                "method": settings["method"],
                "trainable_parameters": trainable,
                "total_parameters": total,
                "epochs_run": epochs_run,
                **differences,
                "seconds": round(time.perf_counter() - started, 1),
                "settings": settings,
            }
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    worst = max(differences.values(), default=0.0)
    tolerance = TOLERANCES[settings["precision"]]
    if worst > tolerance:
        raise RuntimeError(
            "A reloaded, merged or exported model disagrees with the trained "
            f"one by more than {tolerance}: {differences}. The outputs are "
            f"in {output_dir}."
        )
    print(f"done in {metrics['seconds']} s; outputs in {output_dir}")
    return metrics


def _save(model, task, data, settings, probe, expected, out):
    """Saves and exports the model as asked, checking that each reloads
    to its outputs (`expected`) on the probe examples; returns the
    differences."""
    import keras

    from kfinetune import peft

    differences = {}
    if settings["save"] in ("adapter", "both"):
        peft.save(model, out / runs.ADAPTER)
        with runs.usage_errors():
            base = task.build_model(settings, task.labels(data))
        reloaded = peft.load(base, out / runs.ADAPTER)
        differences["adapter_round_trip_max_difference"] = _difference(
            task.outputs(reloaded, probe, data, settings), expected
        )
        print(f"saved {runs.ADAPTER} (the adapters alone)")
    if settings["merge"]:
        model = peft.merge_and_unload(model)
        differences["merge_max_difference"] = _difference(
            task.outputs(model, probe, data, settings), expected
        )
        print("merged the adapters into the base weights")
    if settings["save"] in ("model", "both"):
        # keras-hub tasks never restore a compiled optimizer on load (they
        # compile themselves with their defaults), so the trained AdamW
        # state, two slots per weight, would be dead weight in the file. A
        # freshly compiled optimizer holds no state.
        loss, _ = task.loss_and_metrics(settings)
        training.compile_model(
            model,
            keras.optimizers.AdamW(settings["learning_rate"]),
            settings,
            loss,
        )
        model.save(out / runs.MODEL)
        reloaded = runs.load_keras(out / runs.MODEL)
        differences["keras_round_trip_max_difference"] = _difference(
            task.outputs(reloaded, probe, data, settings), expected
        )
        print(f"saved {runs.MODEL}")
    if settings["export"]:
        folder = runs.export_folder(task)
        task.export(model, out / folder, data, settings)
        differences[f"{folder}_max_difference"] = task.export_difference(
            out / folder, probe, expected, data, settings
        )
        print(f"exported {folder}/ ({runs.export_description(task)})")
    return differences
