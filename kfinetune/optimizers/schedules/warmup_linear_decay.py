"""`WarmupLinearDecay`: linear warm-up, then linear decay."""

import keras
from keras import ops

from kfinetune import checks
from kfinetune.optimizers.schedules import warmup


@keras.saving.register_keras_serializable(package="kfinetune")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to a peak, then linear decay to an end value.

    The schedule of BERT fine-tuning. The rate rises from 0 at step 0 to
    `peak_learning_rate` at `warmup_steps`, falls linearly to
    `end_learning_rate` at `total_steps` and stays there.

    Args:
        peak_learning_rate: the rate at the end of the warm-up.
        warmup_steps: warm-up length, a non-negative integer smaller than
            `total_steps`.
        total_steps: steps of the whole run.
        end_learning_rate: the rate at `total_steps`. Defaults to `0.0`.

    Example:

    ```python
    schedule = kfinetune.optimizers.schedules.WarmupLinearDecay(
        5e-5, warmup_steps=60, total_steps=600)
    optimizer = keras.optimizers.AdamW(schedule)
    ```
    """

    def __init__(
        self,
        peak_learning_rate,
        warmup_steps,
        total_steps,
        end_learning_rate=0.0,
    ):
        checks.positive_number("peak_learning_rate", peak_learning_rate)
        checks.non_negative_integer("warmup_steps", warmup_steps)
        checks.positive_integer("total_steps", total_steps)
        warmup.check(warmup_steps, total_steps)
        checks.in_range(
            "end_learning_rate",
            end_learning_rate,
            0,
            peak_learning_rate,
            high_closed=True,
        )
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.end_learning_rate = end_learning_rate

    def __call__(self, step):
        peak = self.peak_learning_rate
        step, warm, done = warmup.phases(
            step, peak, self.warmup_steps, self.total_steps
        )
        decay = peak + (self.end_learning_rate - peak) * done
        return ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "end_learning_rate": self.end_learning_rate,
        }
