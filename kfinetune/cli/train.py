"""`python -m kfinetune train`: fine-tune, evaluate, save and export."""

import json
import time

from kfinetune.cli import arguments
from kfinetune.cli import runs

SENTENCES = (
    "I love this, what a wonderful day!",
    "This is the worst service I have ever had.",
    "Not bad at all, I would do it again.",
    "I am so disappointed and angry right now.",
)

# Everything a `train` run writes: a re-run into the same folder removes
# what an older run wrote and this one does not (e.g. its model.keras).
OUTPUTS = (
    arguments.CONFIG_NAME,
    runs.CLASS_NAMES,
    runs.MODEL,
    runs.ADAPTER,
    runs.SAVED_MODEL,
    "metrics.json",
    "training_curves.png",
    "confusion_matrix.png",
)

# keras-hub tasks and kfinetune's methods reload to within float rounding.
TOLERANCE = 1e-4


def peft_config(settings):
    """The `kfinetune.peft` config of the method, or `None` for `full`."""
    from kfinetune import peft

    method = settings["method"]
    targets = settings["targets"]
    if method == "lora":
        return peft.LoRAConfig(
            rank=settings["rank"], alpha=settings["alpha"], targets=targets
        )
    if method == "adapter":
        return peft.AdapterConfig(size=settings["size"], targets=targets)
    if method == "ia3":
        return peft.IA3Config(targets=targets)
    if method == "prefix":
        return peft.PrefixConfig(length=settings["length"], targets=targets)
    if method == "prompt":
        return peft.PromptConfig(
            length=settings["length"],
            init="vocab",
            seed=settings["seed"],
            targets=targets,
        )
    return None


def learning_rate(settings, total_steps):
    """The peak rate, or the `--schedule` over `total_steps`."""
    from kfinetune.optimizers import schedules

    rate = settings["learning_rate"]
    schedule = settings["schedule"]
    warmup = settings["warmup"]
    if schedule == "constant":
        return rate
    if schedule in ("linear", "cosine"):
        warmup_steps = round((warmup or 0.0) * total_steps)
        if warmup and warmup_steps >= total_steps:
            warmup_steps = total_steps - 1
        make = (
            schedules.WarmupLinearDecay
            if schedule == "linear"
            else schedules.WarmupCosineDecay
        )
        return make(rate, warmup_steps, total_steps)
    if schedule == "stlr":
        # ULMFiT's cut_frac of 0.1, but at least one step of rise.
        cut = warmup or min(max(0.1, 1 / total_steps), 0.5)
        return schedules.SlantedTriangular(rate, total_steps, cut_frac=cut)
    return schedules.OneCycle(rate, total_steps, pct_start=warmup or 0.25)


def optimizer_and_callbacks(model, settings, total_steps):
    """AdamW under the schedule; layer-wise and gradually unfrozen when
    asked."""
    import keras

    from kfinetune import callbacks
    from kfinetune import optimizers

    optimizer = keras.optimizers.AdamW(learning_rate(settings, total_steps))
    decay = settings["layerwise_decay"]
    gradual = settings["unfreeze"] == "gradual"
    if decay is None and not gradual:
        return optimizer, []
    groups = optimizers.layer_groups(model)
    optimizer = optimizers.LayerwiseOptimizer(optimizer, groups, decay=decay)
    if not gradual:
        return optimizer, []
    every = max(
        1, int(total_steps * settings["unfreeze_fraction"]) // len(groups)
    )
    return optimizer, [
        callbacks.GradualUnfreezing(groups, every=every, unit="step")
    ]


def _compile(model, optimizer, settings, data=None):
    """Compiles `model`; with `data` (what `fit` will get), also builds
    what the first `fit` would create inside its trace, so that `fit`
    traces its train function once, not twice."""
    import keras

    from kfinetune.compiling import compile_and_build

    options = dict(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=settings["jit_compile"],
    )
    if data is None:
        model.compile(**options)
    else:
        compile_and_build(model, data=data, **options)


def _difference(a, b):
    import numpy as np

    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def run(settings):
    """Runs a training job; returns the metrics it wrote.

    Everything that can be wrong with the options, the data or the method
    is found before anything is written.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from kfinetune import callbacks
    from kfinetune import evaluation
    from kfinetune import export
    from kfinetune import peft
    from kfinetune import presets

    started = time.perf_counter()
    keras.utils.set_random_seed(settings["seed"])
    with runs.usage_errors():
        data = runs.load_data(settings)
        print(data)
        model = presets.text_classifier(
            num_classes=len(data.class_names),
            preset=settings["preset"],
            sequence_length=settings["sequence_length"],
        )
        config = peft_config(settings)
        if config is not None:
            model = peft.apply(model, config)
        train = data.train.batch(settings["batch_size"])
        total_steps = int(train.cardinality()) * settings["epochs"]
        optimizer, fit_callbacks = optimizer_and_callbacks(
            model, settings, total_steps
        )
    _compile(model, optimizer, settings, data=train)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    print(
        f"method: {settings['method']}; trainable parameters: {trainable:,} "
        f"of {total:,} ({100 * trainable / total:.2f} %)"
    )
    output_dir = settings["output_dir"]
    with runs.staged(output_dir, replaces=OUTPUTS) as out:
        arguments.write_config(out / arguments.CONFIG_NAME, settings)
        (out / runs.CLASS_NAMES).write_text(
            "".join(f"{name}\n" for name in data.class_names),
            encoding="utf-8",
        )
        model.fit(
            train,
            validation_data=data.validation.batch(settings["batch_size"]),
            epochs=settings["epochs"],
            callbacks=[
                *fit_callbacks,
                callbacks.TrainingCurves(out / "training_curves.png"),
            ],
            # The dataset reshuffles every epoch itself.
            shuffle=False,
            verbose=1,
        )
        report = evaluation.evaluate_classifier(
            model,
            data.test,
            data.class_names,
            batch_size=settings["batch_size"],
        )
        report.plot_confusion_matrix(out / "confusion_matrix.png")
        print(report)
        print(f"test accuracy: {report.accuracy:.3f}")
        print(f"test macro-F1: {report.macro_f1:.3f}")

        sentences = np.array(SENTENCES)
        expected = model.predict(sentences, verbose=0)
        differences = {}
        if settings["save"] in ("adapter", "both"):
            peft.save(model, out / runs.ADAPTER)
            reloaded = peft.load(
                presets.text_classifier(
                    num_classes=len(data.class_names),
                    preset=settings["preset"],
                    sequence_length=settings["sequence_length"],
                ),
                out / runs.ADAPTER,
            )
            differences["adapter_round_trip_max_difference"] = _difference(
                reloaded.predict(sentences, verbose=0), expected
            )
            print(f"saved {runs.ADAPTER} (the adapters alone)")
        if settings["merge"]:
            model = peft.merge_and_unload(model)
            differences["merge_max_difference"] = _difference(
                model.predict(sentences, verbose=0), expected
            )
            print("merged the adapters into the base weights")
        if settings["save"] in ("model", "both"):
            # keras-hub tasks never restore a compiled optimizer on load
            # (they compile themselves with their defaults), so the trained
            # AdamW state, two slots per weight, would be dead weight in the
            # file. A freshly compiled optimizer holds no state.
            _compile(
                model,
                keras.optimizers.AdamW(settings["learning_rate"]),
                settings,
            )
            model.save(out / runs.MODEL)
            reloaded = runs.load_keras(out / runs.MODEL)
            differences["keras_round_trip_max_difference"] = _difference(
                reloaded.predict(sentences, verbose=0), expected
            )
            print(f"saved {runs.MODEL}")
        if settings["export"]:
            export.export_text_classifier(
                model,
                out / runs.SAVED_MODEL,
                class_names=data.class_names,
                verbose=False,
            )
            # Keep the loaded object alive: its functions do not own the
            # variables.
            exported = export.load_text_classifier(out / runs.SAVED_MODEL)
            served = exported.serve(tf.constant(sentences))
            differences["saved_model_max_difference"] = _difference(
                served["outputs"].numpy(), expected
            )
            print(f"exported {runs.SAVED_MODEL}/ (takes raw text)")
            labels = served["labels"].numpy()
            for text, label in zip(sentences, labels, strict=True):
                print(f"  {label.decode():>9}  {text}")
        for name, value in differences.items():
            print(f"{name.replace('_', ' ')}: {value:.2e}")
        metrics = {
            **report.as_dict(),
            "method": settings["method"],
            "trainable_parameters": trainable,
            "total_parameters": total,
            **differences,
            "seconds": round(time.perf_counter() - started, 1),
            "settings": settings,
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    worst = max(differences.values(), default=0.0)
    if worst > TOLERANCE:
        raise RuntimeError(
            "A reloaded, merged or exported model disagrees with the trained "
            f"one by more than {TOLERANCE}: {differences}. The outputs are "
            f"in {output_dir}."
        )
    print(f"done in {metrics['seconds']} s; outputs in {output_dir}")
    return metrics
