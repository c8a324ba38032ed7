"""`summary`: trainable and total parameters, per method and per layer."""

import numpy as np

from kfinetune.peft import injected
from kfinetune.peft.peft_model import require


def _size(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def summary(model, print_fn=print):
    """Prints and returns the parameter counts of a model with adapters.

    Lists every adapter (method, whether active or merged, its parameters
    and the layers it touches), the base layers kept trainable, and the
    model's trainable and total parameters.

    Args:
        model: a model returned by `kfinetune.peft.apply`.
        print_fn: called with each line. Defaults to `print`; pass
            `lambda line: None` to only get the dict.

    Returns:
        A dict with `trainable`, `total`, `trainable_percent`, and per
        adapter name: `method`, `active`, `merged`, `parameters` and
        `layers` (path → parameters); plus `other_trainable` (path →
        parameters of trainable base weights).

    Example:

    ```python
    kfinetune.peft.summary(model)
    ```
    """
    require(model)
    added = set()
    adapters = {}
    for name, record in model.adapters.items():
        layers = {}
        for wrapper in injected.wrappers(model.base, name):
            own = injected.own_weights(wrapper)
            added.update(id(v) for v in own)
            if own:
                layers[wrapper.path] = _size(own)
        adapters[name] = {
            "method": record.config.method,
            "active": name in model.active,
            "merged": record.merged,
            "parameters": sum(layers.values()),
            "layers": layers,
            "skipped": record.skipped,
        }
    other = {}
    for v in model.trainable_weights:
        if id(v) not in added:
            other[v.path] = _size([v])
    trainable = _size(model.trainable_weights)
    total = _size(model.weights)
    result = {
        "trainable": trainable,
        "total": total,
        "trainable_percent": 100.0 * trainable / total,
        "adapters": adapters,
        "other_trainable": other,
    }
    width = max([len(p) for a in adapters.values() for p in a["layers"]] + [30])
    print_fn(f"Model {model.name!r}: adapters over {model.base.name!r}")
    for name, info in adapters.items():
        state = ", ".join(
            s
            for s, on in (
                ("active", info["active"]),
                ("merged", info["merged"]),
            )
            if on
        )
        print_fn(
            f"  {name} ({info['method']}{', ' + state if state else ''}): "
            f"{info['parameters']:,} parameters in {len(info['layers'])} "
            + ("layer" if len(info["layers"]) == 1 else "layers")
        )
        for path, count in info["layers"].items():
            print_fn(f"    {path:{width}}  {count:>10,}")
        for path, reason in info["skipped"]:
            print_fn(f"    skipped {path}: {reason}")
    if other:
        print_fn("  base weights kept trainable:")
        for path, count in other.items():
            print_fn(f"    {path:{width}}  {count:>10,}")
    print_fn(
        f"  trainable: {trainable:,} of {total:,} parameters "
        f"({result['trainable_percent']:.2f} %)"
    )
    return result
