"""Switches a `PEFTModel`'s adapters on and off, and records merges.

These change the state the model's `AdapterRecord`s and `active` list
describe, and keep the layers in step: which wrappers compute, which
weights train, and fresh compiled functions. They trust their arguments:
`PEFTModel.from_config` restores a saved state with them, and the public
`kfinetune.peft.set_active`, `merge` and `unmerge` check the names first.
"""

from kfinetune.peft import injected
from kfinetune.peft import trainable_flags
from kfinetune.peft.compiled_functions import reset_compiled_functions


def activate(model, names):
    """Makes the adapters `names` compute and train, and every other
    adapter pass its input through, frozen. A merged adapter that stops
    being active is unmerged first: an inactive adapter computes nothing,
    and a fold left in the base kernels would still act."""
    names = list(names)
    _fold(model, [n for n in model.adapters if n not in names], False)
    model.active = names
    for wrapper in injected.wrappers(model.base):
        wrapper.enabled = wrapper.adapter_name in model.active
    trainable_flags.refresh(model)
    reset_compiled_functions(model)


def set_merged(model, names, merged):
    """Folds (`merged=True`) or unfolds the adapters `names`: their
    mergeable layers merge or unmerge, and a merged adapter is frozen."""
    _fold(model, names, merged)
    trainable_flags.refresh(model)
    reset_compiled_functions(model)


def _fold(model, names, merged):
    for name in names:
        record = model.adapters[name]
        if not record.merged and not merged:
            continue
        for wrapper in injected.wrappers(model.base, name):
            if not hasattr(wrapper, "merge"):
                continue
            if merged:
                wrapper.merge()
            else:
                wrapper.unmerge()
        record.merged = merged and record.config.mergeable
