"""Argument checks and warm-up arithmetic shared by the schedules."""

from keras import ops


def positive(name, value, integer=False):
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        noun = "a positive integer" if integer else "positive"
        raise ValueError(f"`{name}` must be {noun}. Received: {name}={value!r}")


def non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative integer. "
            f"Received: {name}={value!r}"
        )


def fraction(name, value, low_open=True):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0 < value < 1 if low_open else 0 <= value < 1)
    if not ok:
        interval = "(0, 1)" if low_open else "[0, 1)"
        raise ValueError(
            f"`{name}` must be in {interval}. Received: {name}={value!r}"
        )


def warmup_within_total(warmup_steps, total_steps):
    if warmup_steps >= total_steps:
        raise ValueError(
            "`warmup_steps` must be smaller than `total_steps`: the warm-up "
            "would never end. Received: "
            f"warmup_steps={warmup_steps}, total_steps={total_steps}"
        )


def warmup(step, peak, warmup_steps, total_steps):
    """The linear warm-up rate at `step`, and the fraction (0 to 1) of the
    decay phase done."""
    step = ops.cast(step, "float32")
    rising = step / max(warmup_steps, 1) * peak
    done = ops.minimum(
        (step - warmup_steps) / (total_steps - warmup_steps), 1.0
    )
    return step, rising, done
