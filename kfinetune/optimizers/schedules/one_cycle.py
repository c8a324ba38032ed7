"""`OneCycle`: Smith's one-cycle policy, as fastai and PyTorch run it."""

import math

import keras
from keras import ops

from kfinetune import checks


@keras.saving.register_keras_serializable(package="kfinetune")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle learning-rate policy (Smith, 2018).

    The rate rises along half a cosine from `max_learning_rate /
    div_factor` to `max_learning_rate` over the first `pct_start` of the
    run, then falls along half a cosine to `max_learning_rate /
    (div_factor · final_div_factor)` at `total_steps` — the defaults of
    PyTorch's `OneCycleLR` and fastai's `fit_one_cycle`.

    Args:
        max_learning_rate: the peak rate.
        total_steps: steps of the whole run.
        pct_start: the fraction of steps spent rising, in `(0, 1)`.
            Defaults to `0.25`.
        div_factor: the start rate is the peak divided by this. Defaults to
            `25.0`.
        final_div_factor: the end rate is the start rate divided by this.
            Defaults to `1e4`.

    Example:

    ```python
    schedule = kfinetune.optimizers.schedules.OneCycle(
        1e-3, total_steps=600)
    ```
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        pct_start=0.25,
        div_factor=25.0,
        final_div_factor=1e4,
    ):
        checks.positive_number("max_learning_rate", max_learning_rate)
        checks.positive_integer("total_steps", total_steps)
        checks.in_range("pct_start", pct_start, 0, 1, low_closed=False)
        checks.positive_number("div_factor", div_factor)
        checks.positive_number("final_div_factor", final_div_factor)
        self.max_learning_rate = max_learning_rate
        self.total_steps = total_steps
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.max_learning_rate
        start = peak / self.div_factor
        end = start / self.final_div_factor
        rise_steps = max(self.total_steps * self.pct_start, 1.0)
        fall_steps = max(self.total_steps - rise_steps, 1.0)
        rise = ops.minimum(step / rise_steps, 1.0)
        fall = ops.clip((step - rise_steps) / fall_steps, 0.0, 1.0)
        up = peak + (start - peak) * 0.5 * (1.0 + ops.cos(math.pi * rise))
        down = end + (peak - end) * 0.5 * (1.0 + ops.cos(math.pi * fall))
        return ops.where(step < rise_steps, up, down)

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
        }
