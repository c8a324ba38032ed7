"""`GradualUnfreezing`: unfreeze one more layer group per stage, in one fit."""

import keras

from kfinetune.optimizers.layer_groups import as_layer_groups
from kfinetune.optimizers.layerwise_optimizer import LayerwiseOptimizer

MODES = ("retrace", "static")
UNITS = ("epoch", "step")


@keras.saving.register_keras_serializable(package="kfinetune")
class GradualUnfreezing(keras.callbacks.Callback):
    """Trains the top layer group first and unfreezes one more group per
    stage (ULMFiT), inside a single `fit()`.

    Flipping `layer.trainable` inside `fit` does nothing in Keras: the train
    function was traced once (design.md fact 1). This callback changes what
    trains in one of two ways:

    - `mode="retrace"`: changes the trainable set and retraces the train
      function. Frozen groups cost no backward compute, so early stages are
      faster. Changing the structure costs one compilation per stage.
    - `mode="static"`: one compiled graph for the whole run (for TPUs,
      where compiling is expensive). Every group computes gradients; the
      `LayerwiseOptimizer` skips frozen groups (no update, no weight decay,
      no step count).

    Both give the same weights on a deterministic run. Stage `s` (from 0)
    trains the top `s + 1` groups; the stage is derived from the epoch (or
    the optimizer's step count), not from the callback's memory, so a run
    interrupted and resumed with `keras.callbacks.BackupAndRestore` carries
    on exactly where it stopped. Weights frozen before `fit` (by a
    parameter-efficient method or by you) are never unfrozen: unfreezing a
    block of a LoRA model trains that block's LoRA weights, not its base
    kernels. When `fit` ends, the trainable flags are as they were before
    it, so the next `fit` (with a new callback) resumes the schedule from
    its `initial_epoch`.

    The model's optimizer must be a `LayerwiseOptimizer` over the same
    groups (optionally inside a `LossScaleOptimizer`): it holds state for
    every group from the start and gives a group unfrozen late a fresh
    optimizer's first step.

    Args:
        groups: the `LayerGroups` of the model, bottom to top.
        every: stage length, a positive integer. Defaults to `1`.
        unit: `"epoch"` or `"step"`. Defaults to `"epoch"`.
        mode: `"retrace"` or `"static"`. Defaults to `"retrace"`.
        train_batchnorm: keep BatchNormalization layers of frozen groups
            trainable (fastai's `train_bn`). Defaults to `False`.
        verbose: print each stage change. Defaults to `1`.

    Example:

    ```python
    groups = kfinetune.optimizers.layer_groups(model)
    optimizer = kfinetune.optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(1e-3), groups, decay=0.4)
    model.compile(optimizer=optimizer, loss=...)
    model.fit(data, epochs=len(groups),
              callbacks=[kfinetune.callbacks.GradualUnfreezing(groups)])
    ```
    """

    def __init__(
        self,
        groups,
        every=1,
        unit="epoch",
        mode="retrace",
        train_batchnorm=False,
        verbose=1,
    ):
        super().__init__()
        groups = as_layer_groups(groups)
        if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
            raise ValueError(
                f"`every` must be a positive integer. Received: every={every!r}"
            )
        if unit not in UNITS:
            raise ValueError(
                f"`unit` must be one of {UNITS}. Received: unit={unit!r}"
            )
        if mode not in MODES:
            raise ValueError(
                f"`mode` must be one of {MODES}. Received: mode={mode!r}"
            )
        self.groups = groups
        self.every = every
        self.unit = unit
        self.mode = mode
        self.train_batchnorm = train_batchnorm
        self.verbose = verbose
        self.stage = None
        self._eligible = None

    def _optimizer(self):
        optimizer = self.model.optimizer
        inner = getattr(optimizer, "inner_optimizer", None)
        if isinstance(inner, LayerwiseOptimizer):
            optimizer = inner
        if not isinstance(optimizer, LayerwiseOptimizer) or (
            optimizer.groups.names != self.groups.names
        ):
            raise ValueError(
                "GradualUnfreezing needs the model compiled with a "
                "kfinetune.optimizers.LayerwiseOptimizer over the same groups "
                f"({self.groups.names}), which keeps state for every group "
                "from the start. Received: optimizer="
                f"{type(optimizer).__name__}"
            )
        return optimizer

    def on_train_begin(self, logs=None):
        optimizer = self._optimizer()
        variables = {id(v): v for v in self.model.weights}
        if self._eligible is None:
            # What may ever train: what was trainable before the first fit.
            self._eligible = {
                vid for vid, v in variables.items() if v.trainable
            }
        self._batchnorm_layers = [
            layer
            for layer in _layers(self.model)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        self._batchnorm = {
            id(v) for layer in self._batchnorm_layers for v in layer.weights
        }
        self._batchnorm_flags = [
            (layer, layer.trainable) for layer in self._batchnorm_layers
        ]
        if not optimizer.built:
            optimizer.build(
                [v for vid, v in variables.items() if vid in self._eligible]
            )
        optimizer.masking = self.mode == "static"
        # The stage is set before the first step, from the epoch (or step)
        # that this fit starts at: 0, or where BackupAndRestore resumes.
        self.stage = None
        self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        # Leave the trainable flags as they were before fit, so that the
        # next fit (or a saved file) sees what may train, not a stage.
        for v in self.model.weights:
            if id(v) in self._eligible:
                v.trainable = True
        for layer, flag in self._batchnorm_flags:
            layer.trainable = flag
        self._optimizer().masking = False
        self.model.make_train_function(force=True)

    def _stage_for(self, count):
        return min(count // self.every, len(self.groups) - 1)

    def on_epoch_begin(self, epoch, logs=None):
        if self.unit == "epoch":
            self._set_stage(self._stage_for(epoch))

    def on_train_batch_begin(self, batch, logs=None):
        if self.unit == "step":
            optimizer = self._optimizer()
            self._set_stage(self._stage_for(int(optimizer.iterations.numpy())))

    def trainable_groups(self, stage):
        """The names of the groups that train in `stage`."""
        return self.groups.names[len(self.groups) - 1 - stage :]

    def _set_stage(self, stage):
        if stage == self.stage:
            return
        self.stage = stage
        training = set(self.trainable_groups(stage))
        optimizer = self._optimizer()
        for name in self.groups.names:
            optimizer.active[name].assign(1.0 if name in training else 0.0)
        if self.mode == "retrace":
            by_path = {}
            for v in self.model.weights:
                by_path.setdefault(v.path, []).append(v)
            for name, paths in self.groups.items():
                for path in paths:
                    for v in by_path.get(path, []):
                        if id(v) not in self._eligible:
                            continue
                        keep = self.train_batchnorm and id(v) in self._batchnorm
                        v.trainable = name in training or keep
            for layer in self._batchnorm_layers:
                owner = {self.groups.group_of(v.path) for v in layer.weights}
                layer.trainable = self.train_batchnorm or bool(owner & training)
        if self.mode == "retrace":
            # The next step traces the new trainable set.
            self.model.make_train_function(force=True)
        if self.verbose:
            print(
                f"GradualUnfreezing: stage {stage + 1}/{len(self.groups)}, "
                f"training {sorted(training, key=self.groups.names.index)}"
            )

    def get_config(self):
        return {
            "groups": self.groups.get_config(),
            "every": self.every,
            "unit": self.unit,
            "mode": self.mode,
            "train_batchnorm": self.train_batchnorm,
            "verbose": self.verbose,
        }


def _layers(model):
    from kfinetune.peft import matching

    return [site.layer for site in matching.sites(model)]
