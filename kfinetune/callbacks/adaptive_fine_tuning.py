"""`AdaptiveFineTuning`: react to a plateau of the validation metric."""

import keras
import numpy as np

from kfinetune.callbacks.gradual_unfreezing import GradualUnfreezing

ACTIONS = ("unfreeze_next", "reduce_lr")


@keras.saving.register_keras_serializable(package="kfinetune")
class AdaptiveFineTuning(GradualUnfreezing):
    """Unfreezes the next layer group, or cuts the learning rate, when the
    monitored metric stops improving.

    Training starts with the top group only (like `GradualUnfreezing`);
    after `patience` epochs without an improvement of `monitor` by more than
    `min_delta`, `action="unfreeze_next"` unfreezes the next group down
    (once every group trains, it cuts the learning rate instead) and
    `action="reduce_lr"` multiplies the `LayerwiseOptimizer`'s learning-rate
    scale by `factor`, keeping the ratios between groups.

    Unlike `GradualUnfreezing`, the stage depends on the metric's history,
    which `BackupAndRestore` does not save: a resumed run starts again from
    the top group.

    Args:
        groups: the `LayerGroups` of the model, bottom to top.
        monitor: the metric to watch. Defaults to `"val_loss"`.
        patience: epochs without improvement before acting. Defaults to `1`.
        action: `"unfreeze_next"` or `"reduce_lr"`. Defaults to
            `"unfreeze_next"`.
        factor: learning-rate multiplier for `"reduce_lr"`, in `(0, 1)`.
            Defaults to `0.5`.
        min_delta: the smallest change that counts as an improvement.
            Defaults to `0.0`.
        mode: `"min"`, `"max"` or `"auto"` (max for accuracy-like names).
            Defaults to `"auto"`.
        **kwargs: `mode`-independent `GradualUnfreezing` arguments:
            `retrace`, `train_batchnorm`, `verbose`.

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
        super().__init__(
            groups,
            mode="retrace" if retrace else "static",
            train_batchnorm=train_batchnorm,
            verbose=verbose,
        )
        if action not in ACTIONS:
            raise ValueError(
                f"`action` must be one of {ACTIONS}. "
                f"Received: action={action!r}"
            )
        if (
            isinstance(patience, bool)
            or not isinstance(patience, int)
            or (patience < 0)
        ):
            raise ValueError(
                "`patience` must be a non-negative integer. "
                f"Received: patience={patience!r}"
            )
        if not 0 < factor < 1:
            raise ValueError(
                f"`factor` must be in (0, 1). Received: factor={factor!r}"
            )
        if mode not in ("min", "max", "auto"):
            raise ValueError(
                "`mode` must be 'min', 'max' or 'auto'. "
                f"Received: mode={mode!r}"
            )
        if mode == "auto":
            mode = "max" if "acc" in monitor or "f1" in monitor else "min"
        self.monitor = monitor
        self.patience = patience
        self.action = action
        self.factor = factor
        self.min_delta = min_delta
        self.direction = mode

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._best = -np.inf if self.direction == "max" else np.inf
        self._wait = 0
        self._set_stage(0)

    def on_epoch_begin(self, epoch, logs=None):
        # The stage follows the metric, not the epoch.
        pass

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def _improved(self, value):
        if self.direction == "max":
            return value > self._best + self.min_delta
        return value < self._best - self.min_delta

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
        last = len(self.groups) - 1
        if self.action == "unfreeze_next" and self.stage < last:
            self._set_stage(self.stage + 1)
            return
        optimizer = self._optimizer()
        new_rate = float(optimizer.learning_rate) * self.factor
        optimizer.learning_rate = new_rate
        if self.verbose:
            print(
                f"AdaptiveFineTuning: {self.monitor} plateaued; learning "
                f"rate scale now {float(optimizer.scale):.3g}"
            )

    def get_config(self):
        config = super().get_config()
        config.pop("every")
        config.pop("unit")
        config["retrace"] = config.pop("mode") == "retrace"
        return {
            **config,
            "monitor": self.monitor,
            "patience": self.patience,
            "action": self.action,
            "factor": self.factor,
            "min_delta": self.min_delta,
            "mode": self.direction,
        }
