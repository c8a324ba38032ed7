"""`AdaptiveFineTuning`: react to a plateau of the validation metric."""

import keras
import numpy as np

from kfinetune import checks
from kfinetune.callbacks.stages import Stages
from kfinetune.optimizers.layer_groups import as_layer_groups

ACTIONS = ("unfreeze_next", "reduce_lr")
MODES = ("min", "max", "auto")


@keras.saving.register_keras_serializable(package="kfinetune")
class AdaptiveFineTuning(keras.callbacks.Callback):
    """Unfreezes the next layer group, or cuts the learning rate, when the
    monitored metric stops improving.

    Training starts with the top group only (like `GradualUnfreezing`).
    When `monitor` has not improved by more than `min_delta` for
    `patience` epochs in a row, the next epoch without improvement acts:
    `action="unfreeze_next"` unfreezes the next group down (once every
    group trains, it cuts the learning rate instead) and
    `action="reduce_lr"` multiplies the `LayerwiseOptimizer`'s learning
    rate by `factor`, keeping the ratios between groups. The count of
    epochs without improvement then starts again.

    Groups are frozen as with `GradualUnfreezing`: by retracing the train
    function (`retrace=True`), or with one graph in which the
    `LayerwiseOptimizer` skips frozen groups (`retrace=False`, for TPUs).
    Weights and BatchNormalization layers frozen before `fit` are never
    unfrozen, and the trainable flags are put back when `fit` ends.

    Unlike `GradualUnfreezing`, the stage depends on the metric's history,
    which `BackupAndRestore` does not save: every `fit` (a resumed run too)
    starts again from the top group.

    The model's optimizer must be a `LayerwiseOptimizer` over the same
    groups (optionally inside a `LossScaleOptimizer`).

    Args:
        groups: the `LayerGroups` of the model, bottom to top.
        monitor: the name of the metric to watch, a key of the epoch logs.
            Defaults to `"val_loss"`.
        patience: epochs without improvement to wait before acting, a
            non-negative integer (`0` acts on the first). Defaults to `1`.
        action: `"unfreeze_next"` or `"reduce_lr"`. Defaults to
            `"unfreeze_next"`.
        factor: learning-rate multiplier, in `(0, 1)`. Defaults to `0.5`.
        min_delta: the smallest change that counts as an improvement, a
            non-negative number. Defaults to `0.0`.
        mode: `"min"` (lower is better), `"max"` or `"auto"` (max when
            `monitor` names an accuracy or F1, else min). Defaults to
            `"auto"`.
        retrace: freeze groups by retracing the train function (`True`) or
            by optimizer masking in one graph (`False`). Defaults to
            `True`.
        train_batchnorm: keep BatchNormalization layers of frozen groups
            trainable; needs `retrace=True`. Defaults to `False`.
        verbose: `1` prints each stage change and learning-rate cut, `0`
            is silent. Defaults to `1`.

    Example:

    ```python
    callback = kfinetune.callbacks.AdaptiveFineTuning(
        groups, monitor="val_accuracy", patience=1)
    model.fit(train, validation_data=val, epochs=10, callbacks=[callback])
    ```
    """

    def __init__(
        self,
        groups,
        monitor="val_loss",
        patience=1,
        action="unfreeze_next",
        factor=0.5,
        min_delta=0.0,
        mode="auto",
        retrace=True,
        train_batchnorm=False,
        verbose=1,
    ):
        super().__init__()
        groups = as_layer_groups(groups)
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(
                "`monitor` must be the name of a metric. "
                f"Received: monitor={monitor!r}"
            )
        checks.non_negative_integer("patience", patience)
        checks.one_of("action", action, ACTIONS)
        checks.in_range("factor", factor, 0, 1, low_closed=False)
        checks.at_least("min_delta", min_delta, 0)
        checks.one_of("mode", mode, MODES)
        checks.boolean("retrace", retrace)
        checks.boolean("train_batchnorm", train_batchnorm)
        checks.one_of("verbose", verbose, (0, 1))
        if train_batchnorm and not retrace:
            raise ValueError(
                "`train_batchnorm=True` needs `retrace=True`: one static "
                "graph cannot switch BatchNormalization layers. "
                f"Received: train_batchnorm={train_batchnorm}, "
                f"retrace={retrace}"
            )
        self.groups = groups
        self.monitor = monitor
        self.patience = patience
        self.action = action
        self.factor = factor
        self.min_delta = min_delta
        self.mode = mode
        self.retrace = retrace
        self.train_batchnorm = train_batchnorm
        self.verbose = verbose
        if mode == "auto":
            mode = "max" if "acc" in monitor or "f1" in monitor else "min"
        self._higher_is_better = mode == "max"
        self._stages = Stages(
            groups,
            retrace=retrace,
            train_batchnorm=train_batchnorm,
            caller="AdaptiveFineTuning",
        )

    @property
    def stage(self):
        """The current stage (from 0): the top `stage + 1` groups train."""
        return self._stages.stage

    def on_train_begin(self, logs=None):
        self._stages.begin(self.model)
        self._best = -np.inf if self._higher_is_better else np.inf
        self._wait = 0
        self._set_stage(0)

    def on_train_end(self, logs=None):
        self._stages.end()

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(
                f"AdaptiveFineTuning monitors {self.monitor!r}, which is not "
                f"in the logs ({sorted(logs or {})}): pass validation_data "
                "or monitor another metric."
            )
        if self._improved(value):
            self._best = value
            self._wait = 0
            return
        self._wait += 1
        if self._wait <= self.patience:
            return
        self._wait = 0
        reason = f"{self.monitor} did not improve for {self.patience + 1}"
        reason += " epoch" if self.patience == 0 else " epochs"
        last = self._stages.count - 1
        if self.action == "unfreeze_next" and self.stage < last:
            self._set_stage(self.stage + 1, reason)
            return
        optimizer = self._stages.optimizer()
        optimizer.learning_rate = float(optimizer.learning_rate) * self.factor
        if self.verbose:
            print(
                f"AdaptiveFineTuning: {reason}; learning rate now "
                f"{float(optimizer.learning_rate):.3g}"
            )

    def _improved(self, value):
        if self._higher_is_better:
            return value > self._best + self.min_delta
        return value < self._best - self.min_delta

    def _set_stage(self, stage, reason=None):
        if self._stages.set(stage) and self.verbose:
            prefix = f"{reason}; " if reason else ""
            print(f"AdaptiveFineTuning: {prefix}{self._stages.describe()}")

    def get_config(self):
        return {
            "groups": self.groups.get_config(),
            "monitor": self.monitor,
            "patience": self.patience,
            "action": self.action,
            "factor": self.factor,
            "min_delta": self.min_delta,
            "mode": self.mode,
            "retrace": self.retrace,
            "train_batchnorm": self.train_batchnorm,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        # The constructor turns the groups' config back into LayerGroups.
        return cls(**config)
