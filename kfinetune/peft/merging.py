"""`merge`, `unmerge` and `merge_and_unload`: fold adapters into the base
weights."""

from kfinetune.layers import lora
from kfinetune.peft import adapter_state
from kfinetune.peft import injected
from kfinetune.peft import injection
from kfinetune.peft.compiled_functions import reset_compiled_functions
from kfinetune.peft.peft_model import require


def _names(model, name, active_only):
    require(model)
    if name is not None:
        names = [name]
    else:
        names = list(model.active if active_only else model.adapters)
    require(model, names)
    return names


def _refuse_quantized(model, names):
    """Raises when a LoRA of the adapters `names` wraps a quantized layer,
    before anything merges."""
    for name in names:
        for wrapper in injected.wrappers(model.base, name):
            if isinstance(wrapper, lora.LoRA) and wrapper.quantized:
                raise ValueError(
                    f"The adapter {name!r} cannot be merged: its LoRA "
                    f"{wrapper.name!r} wraps {wrapper.base_layer.name!r}, "
                    f"which is quantized ({wrapper.base_quantization_mode}); "
                    "folding a float update into an integer kernel would "
                    "re-quantize it and lose most of the update. Keep the "
                    "adapter unmerged (the model computes it alongside the "
                    "quantized layers; it saves, loads and exports so), or "
                    "apply it to a float copy of the model. "
                    f"Received: name={name!r}"
                )


def merge(model, name=None):
    """Folds LoRA and IA3 updates into the base kernels, for inference at
    the base model's cost, and prefix tuning's reparameterisation MLP into
    plain prefixes. Outputs stay equal (within float rounding).

    Bottleneck adapters are non-linear and prompts are inputs: they stay as
    they are. A merged adapter does not train until `unmerge`. LoRA over
    quantized layers (int8 or int4) does not merge: a `ValueError` names
    it, and nothing changes. Only active adapters merge (an inactive one
    computes nothing, so folding it in would change the outputs); one
    that stops being active, through `set_active` or `disable`, is
    unmerged.

    Args:
        model: a model returned by `apply`.
        name: the adapter to merge, an active one. Defaults to every
            active adapter.

    Raises:
        ValueError: `name` is not an adapter of the model, or not active,
            or a LoRA to merge wraps a quantized layer.

    Example:

    ```python
    kfinetune.peft.merge(model)
    model.export("saved_model")
    ```
    """
    names = _names(model, name, active_only=True)
    if name is not None and name not in model.active:
        raise ValueError(
            f"The adapter {name!r} is not active (active: {model.active}), "
            "so it computes nothing and merging it would change the "
            "outputs: `kfinetune.peft.set_active` it first. "
            f"Received: name={name!r}"
        )
    _refuse_quantized(model, names)
    adapter_state.set_merged(model, names, True)


def unmerge(model, name=None):
    """Takes merged LoRA and IA3 updates out of the base kernels again,
    and computes prefixes with their MLP again.

    Args:
        model: a model returned by `apply`.
        name: the adapter to unmerge. Defaults to every adapter.

    Example:

    ```python
    kfinetune.peft.unmerge(model)
    ```
    """
    adapter_state.set_merged(
        model, _names(model, name, active_only=False), False
    )


def merge_and_unload(model):
    """Folds the active adapters into the base weights and returns the base
    model with every injected layer removed.

    The equivalent of Hugging Face PEFT's `merge_and_unload`: the result is
    the model given to `apply` (a keras-hub task stays that task), holding
    the merged weights and nothing else, so `save`, `load_model` and
    `export` work as for a model that never had adapters, at the base
    model's cost. Its outputs equal `model`'s (within float rounding).

    Only LoRA and IA3 fold into the base weights. When an active adapter is
    a bottleneck adapter (non-linear), a prompt (extra inputs) or a prefix
    (extra keys and values, which stay even after `merge`), nothing changes
    and a `ValueError` names it: `delete` it or keep the `PEFTModel`.
    Adapters that are not active compute nothing and are dropped, as in
    Hugging Face PEFT; `set_active` them first to fold them in too. Every
    layer of the returned model is trainable, as in a freshly built model.
    Use the returned model from then on: `model` no longer records any
    adapter.

    Args:
        model: a model returned by `apply`.

    Returns:
        The base model, with the merged weights.

    Raises:
        ValueError: an active adapter cannot be folded into the base
            weights (including LoRA over quantized layers).

    Example:

    ```python
    base = kfinetune.peft.merge_and_unload(model)
    base.save("merged.keras")
    ```
    """
    require(model)
    blocked = {
        name: model.adapters[name].config.method
        for name in model.active
        if not model.adapters[name].config.folds_into_base
    }
    if blocked:
        raise ValueError(
            "Only LoRA and IA3 fold into the base weights; these active "
            f"adapters do not: {blocked}. Delete them with "
            "`kfinetune.peft.delete` (or keep the PEFTModel). "
            f"Received: model={model.name!r}"
        )
    _refuse_quantized(model, model.active)
    adapter_state.set_merged(model, model.active, True)
    for name in model.adapters:
        if name not in model.active:
            # Dropped: a PiSSA or OLoRA adapter gives its initial update
            # back to the kernels.
            for wrapper in injected.wrappers(model.base, name):
                injection.release(wrapper)
    base = injection.remove_all(model.base)
    model.adapters.clear()
    model.active = []
    # Keras ignores assigning a layer the flag it already has, and then
    # does not reach the sublayers: clear it first, so `True` reaches every
    # layer and weight.
    base.trainable = False
    base.trainable = True
    reset_compiled_functions(model)
    return base
