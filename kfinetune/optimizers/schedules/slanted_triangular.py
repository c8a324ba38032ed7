"""`SlantedTriangular`: ULMFiT's short rise and long linear fall."""

import keras
from keras import ops

from kfinetune import checks


@keras.saving.register_keras_serializable(package="kfinetune")
class SlantedTriangular(keras.optimizers.schedules.LearningRateSchedule):
    """Slanted triangular learning rates (Howard & Ruder, 2018, ULMFiT).

    The rate rises linearly for the first `cut_frac` of the run, from
    `max_learning_rate / ratio` to `max_learning_rate`, then falls linearly
    back to `max_learning_rate / ratio` at `total_steps`:

        cut = floor(total_steps · cut_frac)
        p = t / cut                                  if t < cut
            1 − (t − cut) / (cut · (1 / cut_frac − 1)) otherwise
        lr = max_learning_rate · (1 + p · (ratio − 1)) / ratio

    Args:
        max_learning_rate: the peak rate.
        total_steps: steps of the whole run.
        cut_frac: the fraction of steps spent rising, in `(0, 1)`.
            Defaults to `0.1`.
        ratio: how much smaller the lowest rate is than the peak, at least 1.
            Defaults to `32`.

    Example:

    ```python
    schedule = kfinetune.optimizers.schedules.SlantedTriangular(
        1e-3, total_steps=600)
    ```
    """

    def __init__(self, max_learning_rate, total_steps, cut_frac=0.1, ratio=32):
        checks.positive_number("max_learning_rate", max_learning_rate)
        checks.positive_integer("total_steps", total_steps)
        checks.in_range("cut_frac", cut_frac, 0, 1, low_closed=False)
        checks.at_least("ratio", ratio, 1)
        if int(total_steps * cut_frac) < 1:
            raise ValueError(
                "`total_steps · cut_frac` must be at least one step of "
                f"rise. Received: total_steps={total_steps}, "
                f"cut_frac={cut_frac}"
            )
        self.max_learning_rate = max_learning_rate
        self.total_steps = total_steps
        self.cut_frac = cut_frac
        self.ratio = ratio

    def __call__(self, step):
        step = ops.cast(step, "float32")
        cut = float(int(self.total_steps * self.cut_frac))
        rise = step / cut
        fall = 1.0 - (step - cut) / (cut * (1.0 / self.cut_frac - 1.0))
        p = ops.maximum(ops.where(step < cut, rise, fall), 0.0)
        return (
            self.max_learning_rate * (1.0 + p * (self.ratio - 1)) / self.ratio
        )

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "cut_frac": self.cut_frac,
            "ratio": self.ratio,
        }
