"""`set_active`, `disable` and `delete`: choose among a model's named
adapters."""

import contextlib

from kfinetune.peft import adapter_state
from kfinetune.peft import injected
from kfinetune.peft import injection
from kfinetune.peft.peft_model import require


def set_active(model, names):
    """Makes the named adapters active: they compute and they train; every
    other adapter is disabled and frozen (and unmerged, if it was merged).

    Args:
        model: a model returned by `apply`.
        names: an adapter name or a list of names (several methods can be
            active together, e.g. LoRA and adapters). `[]` disables all.

    Example:

    ```python
    kfinetune.peft.set_active(model, "sentiment")
    ```
    """
    names = [names] if isinstance(names, str) else list(names)
    require(model, names)
    adapter_state.activate(model, names)


@contextlib.contextmanager
def disable(model):
    """Inside the block, the model computes exactly the base model's
    outputs; the active adapters come back afterwards, merged again if
    they were merged.

    Example:

    ```python
    with kfinetune.peft.disable(model):
        base_predictions = model.predict(x)
    ```
    """
    require(model)
    active = list(model.active)
    merged = [name for name in active if model.adapters[name].merged]
    adapter_state.activate(model, [])
    try:
        yield model
    finally:
        adapter_state.activate(model, active)
        adapter_state.set_merged(model, merged, True)


def delete(model, name):
    """Removes an adapter: its layers leave the model (a merged adapter is
    unmerged first, and a PiSSA or OLoRA adapter gives its initial update
    back to the kernels, so the base weights are restored).

    Example:

    ```python
    kfinetune.peft.delete(model, "old_task")
    ```
    """
    require(model, [name])
    adapter_state.set_merged(model, [name], False)
    for wrapper in injected.wrappers(model.base, name):
        # A PiSSA or OLoRA adapter's kernels hold the residual: the
        # original weights come back.
        injection.release(wrapper)
        injection.remove(model.base, wrapper)
    del model.adapters[name]
    adapter_state.activate(model, [n for n in model.active if n != name])
