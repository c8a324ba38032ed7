"""`WarmupCosineDecay`: linear warm-up, then cosine decay."""

import math

import keras
from keras import ops

from kfinetune import checks
from kfinetune.optimizers.schedules import warmup


@keras.saving.register_keras_serializable(package="kfinetune")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to a peak, then half a cosine down to
    `final_fraction` of the peak at `total_steps`.

    Args:
        peak_learning_rate: the rate at the end of the warm-up.
        warmup_steps: warm-up length, a non-negative integer smaller than
            `total_steps`.
        total_steps: steps of the whole run.
        final_fraction: the end rate as a fraction of the peak, in
            `[0, 1)`. Defaults to `0.0`.

    Example:

    ```python
    schedule = kfinetune.optimizers.schedules.WarmupCosineDecay(
        1e-3, warmup_steps=100, total_steps=1000)
    ```
    """

    def __init__(
        self, peak_learning_rate, warmup_steps, total_steps, final_fraction=0.0
    ):
        checks.positive_number("peak_learning_rate", peak_learning_rate)
        checks.non_negative_integer("warmup_steps", warmup_steps)
        checks.positive_integer("total_steps", total_steps)
        warmup.check(warmup_steps, total_steps)
        checks.in_range("final_fraction", final_fraction, 0, 1)
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.final_fraction = final_fraction

    def __call__(self, step):
        peak = self.peak_learning_rate
        step, warm, done = warmup.phases(
            step, peak, self.warmup_steps, self.total_steps
        )
        cosine = 0.5 * (1.0 + ops.cos(math.pi * done))
        decay = peak * (
            self.final_fraction + (1 - self.final_fraction) * cosine
        )
        return ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "final_fraction": self.final_fraction,
        }
