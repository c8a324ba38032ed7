"""What every task's `train` shares: the method's config, the optimizer and
its schedule, and the training controls (early stopping on a validation
metric, class weights, gradient accumulation, mixed precision, resuming).
"""

import contextlib
import json
import pathlib
import shutil

from kfinetune.cli import errors

# Where a run keeps its per-epoch backup until it finishes, inside
# --output-dir (outside the staging folder, so an interrupted run leaves it).
BACKUP = ".backup"
BACKUP_SETTINGS = "settings.json"


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
    """The peak rate, or the `--schedule` over `total_steps` optimizer
    steps."""
    from kfinetune.optimizers import schedules

    rate = settings["learning_rate"]
    schedule = settings["schedule"]
    warmup = settings["warmup"]
    total_steps = max(1, total_steps)
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


def optimizer_and_callbacks(model, settings, batches):
    """AdamW under the schedule over `batches` training batches (also with
    `--accumulate`); layer-wise and gradually unfrozen when asked,
    accumulating gradients over `--accumulate` batches."""
    import keras

    from kfinetune import callbacks
    from kfinetune import optimizers

    accumulate = settings["accumulate"]
    # Keras (and `LayerwiseOptimizer`) evaluate a schedule at the batch
    # count, also when gradients accumulate: a schedule over the optimizer
    # steps alone reached zero halfway through the run.
    rate = learning_rate(settings, batches)
    decay = settings["layerwise_decay"]
    gradual = settings["unfreeze"] == "gradual"
    accumulation = {"gradient_accumulation_steps": accumulate}
    if accumulate == 1:
        accumulation = {}
    if decay is None and not gradual:
        return keras.optimizers.AdamW(rate, **accumulation), []
    groups = optimizers.layer_groups(model)
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(rate), groups, decay=decay, **accumulation
    )
    if not gradual:
        return optimizer, []
    _check_top_group_trains(model, groups, settings)
    every = max(1, int(batches * settings["unfreeze_fraction"]) // len(groups))
    return optimizer, [
        callbacks.GradualUnfreezing(groups, every=every, unit="step")
    ]


def _check_top_group_trains(model, groups, settings):
    """`GradualUnfreezing`'s own refusal (a causal LM's top group, its last
    norm, holds nothing that a parameter-efficient method trains), before
    the run starts and as a usage error."""
    from kfinetune.callbacks import gradual_unfreezing

    try:
        gradual_unfreezing.check_first_stage_trains(model, groups)
    except ValueError as error:
        raise errors.UsageError(
            f"--unfreeze gradual with --method {settings['method']}: {error}"
        ) from error


def compile_model(model, optimizer, settings, loss, metrics=None, data=None):
    """Compiles `model`; with `data` (what `fit` will get), also builds
    what the first `fit` would create inside its trace, so that `fit`
    traces its train function once, not twice."""
    from kfinetune.compiling import compile_and_build

    options = dict(
        optimizer=optimizer,
        loss=loss,
        metrics=metrics,
        jit_compile=settings["jit_compile"],
    )
    if data is None:
        model.compile(**options)
    else:
        compile_and_build(model, data=data, **options)


@contextlib.contextmanager
def precision(settings):
    """Sets Keras's dtype policy for `--precision` while the block runs
    (the model is built inside it), then restores the caller's."""
    import keras

    before = keras.config.dtype_policy()
    if settings["precision"] == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def balanced_class_weights(counts):
    """`{class: total / (classes × count)}` (scikit-learn's "balanced")."""
    total = sum(counts)
    return {
        index: total / (len(counts) * count)
        for index, count in enumerate(counts)
        if count
    }


def early_stopping(settings):
    """Keras's `EarlyStopping` on `val_<monitor>`, restoring the best
    epoch's weights, or `None` without `--early-stopping`."""
    import keras

    if not settings["early_stopping"]:
        return None
    monitor = settings["monitor"]
    return keras.callbacks.EarlyStopping(
        monitor=f"val_{monitor}",
        mode="min" if monitor == "loss" else "max",
        patience=settings["early_stopping"],
        restore_best_weights=True,
        verbose=1,
    )


def _comparable(settings):
    return {k: v for k, v in settings.items() if k != "output_dir"}


def check_resume(settings, resume):
    """With `--resume`, refuses (before anything is read or built) a run
    with no interrupted run to resume or with other settings than it."""
    if not resume:
        return
    record = pathlib.Path(settings["output_dir"]) / BACKUP / BACKUP_SETTINGS
    if not record.is_file():
        raise errors.UsageError(
            "--resume found no interrupted run to resume in "
            f"{settings['output_dir']!r}. Received: --resume"
        )
    before = json.loads(record.read_text())
    comparable = json.loads(json.dumps(_comparable(settings)))
    changed = sorted(
        k for k in {*before, *comparable} if before.get(k) != comparable.get(k)
    )
    if changed:
        raise errors.UsageError(
            "--resume needs the interrupted run's settings; these differ: "
            f"{', '.join(changed)}. Received: --resume"
        )


def backup(settings, resume):
    """Keras's `BackupAndRestore` in `--output-dir/.backup`, saved at every
    epoch's end. With `resume` (checked by `check_resume`), the run
    continues from the interrupted one's last finished epoch; without, an
    old backup is removed first. Keras deletes the backup folder when `fit`
    finishes."""
    import keras

    folder = pathlib.Path(settings["output_dir"]) / BACKUP
    record = folder / BACKUP_SETTINGS
    comparable = _comparable(settings)
    if not resume and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(comparable, sort_keys=True))
    return keras.callbacks.BackupAndRestore(str(folder), save_freq="epoch")
