"""The linear warm-up that `WarmupLinearDecay` and `WarmupCosineDecay`
share."""

from keras import ops


def check(warmup_steps, total_steps):
    """Refuses a warm-up that would never end."""
    if warmup_steps >= total_steps:
        raise ValueError(
            "`warmup_steps` must be smaller than `total_steps`: the warm-up "
            "would never end. Received: "
            f"warmup_steps={warmup_steps}, total_steps={total_steps}"
        )


def phases(step, peak, warmup_steps, total_steps):
    """`step` as a float, the linear warm-up rate at `step`, and the
    fraction (0 to 1) of the decay phase done."""
    step = ops.cast(step, "float32")
    rising = step / max(warmup_steps, 1) * peak
    done = ops.minimum(
        (step - warmup_steps) / (total_steps - warmup_steps), 1.0
    )
    return step, rising, done
