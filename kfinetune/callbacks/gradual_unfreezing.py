"""`GradualUnfreezing`: unfreeze one more layer group per stage, in one fit."""

import keras

from kfinetune import checks
from kfinetune.callbacks.stages import Stages
from kfinetune.optimizers.layer_groups import as_layer_groups

MODES = ("retrace", "static")
UNITS = ("epoch", "step")


@keras.saving.register_keras_serializable(package="kfinetune")
class GradualUnfreezing(keras.callbacks.Callback):
    """Trains the top layer group first and unfreezes one more group per
    stage (ULMFiT), inside a single `fit()`.

    Flipping `layer.trainable` inside `fit` does nothing in Keras: the train
    function was traced once. This callback changes what trains in one of
    two ways:

    - `mode="retrace"`: changes the trainable set and retraces the train
      function. Frozen groups cost no backward compute, so early stages are
      faster. Changing the structure costs one compilation per stage.
    - `mode="static"`: one compiled graph for the whole run (for TPUs,
      where compiling is expensive). Every group computes gradients; the
      `LayerwiseOptimizer` skips frozen groups (no update, no weight decay,
      no step count). BatchNormalization layers keep their training
      behaviour (moving statistics update) in every stage.

    Both give the same weights on a deterministic run of a model without
    BatchNormalization. Stage `s` (from 0) trains the top `s + 1` groups;
    the stage is derived from the epoch (or the optimizer's step count),
    not from the callback's memory, so a run interrupted and resumed with
    `keras.callbacks.BackupAndRestore` carries on exactly where it stopped.
    Weights and BatchNormalization layers frozen before `fit` (by a
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
        unit: `"epoch"` or `"step"` (then keep `steps_per_execution=1`).
            Defaults to `"epoch"`.
        mode: `"retrace"` or `"static"`. Defaults to `"retrace"`.
        train_batchnorm: keep BatchNormalization layers of frozen groups
            trainable (fastai's `train_bn`); needs `mode="retrace"`.
            Defaults to `False`.
        verbose: `1` prints each stage change, `0` is silent. Defaults to
            `1`.

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
        checks.positive_integer("every", every)
        checks.one_of("unit", unit, UNITS)
        checks.one_of("mode", mode, MODES)
        checks.boolean("train_batchnorm", train_batchnorm)
        checks.one_of("verbose", verbose, (0, 1))
        if train_batchnorm and mode == "static":
            raise ValueError(
                "`train_batchnorm=True` needs `mode='retrace'`: one static "
                "graph cannot switch BatchNormalization layers. "
                f"Received: train_batchnorm={train_batchnorm}, mode={mode!r}"
            )
        self.groups = groups
        self.every = every
        self.unit = unit
        self.mode = mode
        self.train_batchnorm = train_batchnorm
        self.verbose = verbose
        self._stages = Stages(
            groups,
            retrace=mode == "retrace",
            train_batchnorm=train_batchnorm,
            caller="GradualUnfreezing",
        )

    @property
    def stage(self):
        """The current stage (from 0), or `None` before the first step."""
        return self._stages.stage

    def trainable_groups(self, stage):
        """The names of the groups that train in `stage`."""
        return self._stages.trainable_groups(stage)

    def on_train_begin(self, logs=None):
        if self.unit == "step":
            check_first_stage_trains(self.model, self.groups)
        # The stage is set before the first step, from the epoch (or step)
        # that this fit starts at: 0, or where BackupAndRestore resumes.
        self._stages.begin(self.model)

    def on_train_end(self, logs=None):
        self._stages.end()

    def on_epoch_begin(self, epoch, logs=None):
        if self.unit == "epoch":
            self._set_stage(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.unit == "step":
            optimizer = self._stages.optimizer()
            self._set_stage(int(optimizer.iterations.numpy()))

    def _set_stage(self, count):
        stage = min(count // self.every, self._stages.count - 1)
        if self._stages.set(stage) and self.verbose:
            print(f"GradualUnfreezing: {self._stages.describe()}")

    def get_config(self):
        return {
            "groups": self.groups.get_config(),
            "every": self.every,
            "unit": self.unit,
            "mode": self.mode,
            "train_batchnorm": self.train_batchnorm,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        # The constructor turns the groups' config back into LayerGroups.
        return cls(**config)


def check_first_stage_trains(model, groups):
    """Refuses stages counted in optimizer steps whose first stage trains
    nothing: the top group holds no trainable weight (a parameter-efficient
    method left a causal LM's last norm frozen, say), so the optimizer
    would never step and no group would ever unfreeze.

    Args:
        model: the model `GradualUnfreezing` will train.
        groups: its `LayerGroups`, bottom to top.

    Raises:
        ValueError: no weight of the top group is trainable.

    Example:

    ```python
    kfinetune.callbacks.gradual_unfreezing.check_first_stage_trains(
        model, kfinetune.optimizers.layer_groups(model)
    )
    ```
    """
    groups = as_layer_groups(groups)
    top = groups.names[-1]
    trainable = {weight.path for weight in model.trainable_weights}
    if not trainable & set(groups[top]):
        raise ValueError(
            f"The first stage trains only the top group ({top!r}), and none "
            "of its weights is trainable: with `unit='step'` the stages "
            "advance with the optimizer's steps, and the optimizer would "
            "never step, so no group would unfreeze. Make a weight of that "
            "group trainable, or use `unit='epoch'`. "
            f"Received: groups with top group {top!r}"
        )
