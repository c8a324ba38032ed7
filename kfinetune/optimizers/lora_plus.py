"""`lora_plus`: LoRA+, a higher learning rate for LoRA's `B` than for `A`."""

import keras

from kfinetune import checks
from kfinetune.optimizers.layer_groups import LayerGroups
from kfinetune.optimizers.layerwise_optimizer import LayerwiseOptimizer

# The groups `lora_plus` makes: every `B` factor, and every other weight.
B_GROUP = "lora_b"
REST_GROUP = "rest"


def lora_plus_groups(model):
    """The weights of a LoRA model in the two groups of LoRA+: `"lora_b"`
    (every LoRA `B` factor, trainable now or not) and `"rest"` (every
    other weight: the `A` factors, DoRA magnitudes, a trained head).

    Args:
        model: a model returned by `kfinetune.peft.apply` with a LoRA
            adapter (or any model whose LoRA `B` weights are named
            `lora_b`).

    Returns:
        A `kfinetune.optimizers.LayerGroups`, `"lora_b"` first.

    Raises:
        ValueError: the model has no LoRA `B` factor.

    Example:

    ```python
    groups = kfinetune.optimizers.lora_plus_groups(model)
    groups.names  # ['lora_b', 'rest']
    ```
    """
    variables, seen = [], set()
    for variable in model.weights:
        if id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    paths = checks.unique_weight_paths(variables, "group weights")
    b_paths = [p for p in paths if p.rsplit("/", 1)[-1] == "lora_b"]
    if not b_paths:
        raise ValueError(
            "LoRA+ sets the learning rate of LoRA's `B` factors, and this "
            "model has none: apply a `kfinetune.peft.LoRAConfig` first. "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    chosen = set(b_paths)
    rest = [p for p in paths if p not in chosen]
    groups = {B_GROUP: b_paths}
    if rest:
        groups[REST_GROUP] = rest
    return LayerGroups(groups, variables)


def lora_plus(optimizer, model, ratio=16.0, **kwargs):
    """LoRA+ (Hayou et al., 2024): trains LoRA's `B` factors at `ratio`
    times the learning rate of everything else.

    The equivalent of PEFT's `create_loraplus_optimizer(model,
    optimizer_cls, lr=lr, loraplus_lr_ratio=ratio)`: `optimizer`'s
    learning rate (a float or a schedule) is that of the `A` factors and
    of every other trained weight, and `B` trains at `ratio` times it. It
    is a `LayerwiseOptimizer` over `lora_plus_groups(model)` with
    `multipliers={"lora_b": ratio}`, so `ReduceLROnPlateau` and
    kfinetune's callbacks scale both rates together, and it saves with
    the model. Unlike PEFT's, DoRA's magnitudes and biases train at the
    base rate, and embedding LoRAs get no rate of their own. It works over
    quantized bases (only the factors train).

    Args:
        optimizer: an unbuilt `keras.optimizers.Optimizer`, the rate of
            `A` and the rest.
        model: a model returned by `kfinetune.peft.apply` with LoRA.
        ratio: `B`'s learning rate over `A`'s, a positive number. The
            paper recommends 16 (2 to 2^4 for the tasks it tried).
            Defaults to `16.0`.
        **kwargs: further `LayerwiseOptimizer` arguments (clipping, EMA,
            gradient accumulation, `weight_decay` per group).

    Returns:
        A `kfinetune.optimizers.LayerwiseOptimizer`.

    Raises:
        ValueError: `ratio` is not a positive number, or the model has no
            LoRA `B` factor.

    Example:

    ```python
    model = kfinetune.peft.apply(model, kfinetune.peft.LoRAConfig(rank=8))
    optimizer = kfinetune.optimizers.lora_plus(
        keras.optimizers.AdamW(2e-4), model, ratio=16)
    model.compile(optimizer=optimizer, loss=loss)
    ```
    """
    checks.positive_number("ratio", ratio)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(
            "`optimizer` must be a keras.optimizers.Optimizer. "
            f"Received: optimizer={optimizer!r}"
        )
    if "multipliers" in kwargs:
        raise ValueError(
            "`lora_plus` sets the multipliers itself, from `ratio`. "
            f"Received: multipliers={kwargs['multipliers']!r}"
        )
    groups = lora_plus_groups(model)
    return LayerwiseOptimizer(
        optimizer, groups, multipliers={B_GROUP: float(ratio)}, **kwargs
    )
