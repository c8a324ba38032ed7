"""Which layers of a model with adapters train, and undoing flag changes."""

import weakref

from kfinetune import matcher
from kfinetune import walk
from kfinetune.peft import injected


def capture(model):
    """Every layer's and variable's trainable flag, for `restore`."""
    layers = [(s.layer, s.layer.trainable) for s in walk.sites(model)]
    variables = [(v, v.trainable) for v in model.weights]
    return layers, variables


def restore(flags):
    """Sets the flags `capture` returned back."""
    layers, variables = flags
    # Layers first: a layer's flag propagates to its variables.
    for layer, value in layers:
        layer.trainable = value
    for variable, value in variables:
        variable.trainable = value


def refresh(model):
    """Sets every trainable flag of a `PEFTModel` from its adapters' state.

    Base layers are frozen unless a `trainable` pattern of an active adapter
    matches them or an enclosing layer; injected layers train when their
    adapter is active and not merged.
    """
    patterns = [p for n in model.active for p in model.adapters[n].trainable]
    selected = set(matcher.match_paths(walk.layer_paths(model.base), patterns))

    def visit(layer, keep, adapter_trains):
        for child, *_ in walk.children(layer):
            if isinstance(child, injected.WRAPPERS):
                record = model.adapters.get(child.adapter_name)
                trains = child.adapter_name in model.active and not (
                    record and record.merged
                )
                child.trainable = trains
                visit(child, keep, trains)
            elif injected.is_injected(child):
                child.trainable = bool(adapter_trains)
            else:
                inside = keep or child.path in selected
                if any(True for _ in walk.children(child)):
                    child.trainable = True
                    _set_own_variables(child, inside)
                    visit(child, inside, adapter_trains)
                else:
                    child.trainable = inside

    # A container's flag propagates to its sublayers; `visit` goes top down
    # and sets each sublayer again right after its container, so every
    # layer ends with its own rule.
    model.base.trainable = True
    visit(model.base, False, None)


# The variables `_set_own_variables` froze, so that it can unfreeze exactly
# those (a variable that is not trainable by design, such as a counter,
# stays frozen).
# By id: Keras variables are not hashable.
_FROZEN = weakref.WeakValueDictionary()


def _set_own_variables(layer, trainable):
    """Freezes or unfreezes the variables a layer with sublayers holds
    itself (T5's relative attention bias, in its attention layer): setting
    such a layer's `trainable` to `True`, which its sublayers need, would
    otherwise leave them trainable."""
    nested = {
        id(v) for child, *_ in walk.children(layer) for v in child.weights
    }
    for variable in layer.weights:
        if id(variable) in nested:
            continue
        if not trainable and variable.trainable:
            variable.trainable = False
            _FROZEN[id(variable)] = variable
        elif trainable and _FROZEN.get(id(variable)) is variable:
            variable.trainable = True
            del _FROZEN[id(variable)]
