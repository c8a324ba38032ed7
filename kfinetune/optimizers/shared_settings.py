"""Which optimizer settings a `LayerwiseOptimizer` applies itself, and
where each is taken from (given to it, or its inner optimizer's)."""

# Settings that act on every group's gradients or weights at once. The
# LayerwiseOptimizer applies them (its own, or else the inner optimizer's)
# and the group copies run without them: a group copy would clip by its
# own group's norm, scale gradients whose loss was never scaled, count
# accumulation steps and average weights per group.
SHARED = ("global_clipnorm", "loss_scale_factor", "gradient_accumulation_steps")
EMA = ("use_ema", "ema_momentum", "ema_overwrite_frequency")
GROUP_COPY_OFF = {
    "global_clipnorm": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
    "use_ema": False,
}


def resolve(optimizer, **given):
    """The settings in `SHARED`: those given, or else the inner
    optimizer's; both at once only with the same value."""
    settings = {}
    for key, value in given.items():
        inner = getattr(optimizer, key)
        if value is not None and inner is not None and value != inner:
            raise ValueError(
                f"`{key}` is set on the LayerwiseOptimizer and, to another "
                "value, on its inner optimizer: set it once. "
                f"Received: {key}={value!r}, optimizer.{key}={inner!r}"
            )
        settings[key] = value if value is not None else inner
    return settings


def resolve_ema(optimizer, use_ema, ema_momentum, ema_overwrite_frequency):
    """The EMA settings: those given, or else the inner optimizer's."""
    given = {
        "use_ema": use_ema,
        "ema_momentum": ema_momentum,
        "ema_overwrite_frequency": ema_overwrite_frequency,
    }
    if not optimizer.use_ema:
        return given
    inner = {key: getattr(optimizer, key) for key in EMA}
    if use_ema and given != inner:
        raise ValueError(
            "The EMA settings are set on the LayerwiseOptimizer and, to "
            "other values, on its inner optimizer: set them once. "
            f"Received: {', '.join(f'{k}={v!r}' for k, v in given.items())}"
            f", optimizer: {inner}"
        )
    return inner


def check_clipping_in_one_place(clips, optimizer, optimizers):
    """Keras allows one clipping setting: refuses gradients clipped twice,
    by the LayerwiseOptimizer and by a group's optimizer."""
    outer = {k: v for k, v in clips.items() if v is not None}
    received = ", ".join(f"{k}={v!r}" for k, v in clips.items())
    if len(outer) > 1:
        raise ValueError(
            "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can "
            f"be set (also from the inner optimizer). Received: {received}"
        )
    if not outer:
        return
    sources = {"optimizer": optimizer}
    sources.update(
        {f"optimizers[{name!r}]": given for name, given in optimizers.items()}
    )
    for label, source in sources.items():
        for key in ("clipnorm", "clipvalue"):
            value = getattr(source, key)
            if value is not None:
                raise ValueError(
                    "Gradients would be clipped twice, by the "
                    f"LayerwiseOptimizer and by `{label}`: set one clipping "
                    f"setting. Received: {received}, {label}.{key}={value!r}"
                )
