"""Every use of a private attribute of a public Keras class, in one place.

kfinetune uses only public APIs (`keras`, `keras.ops`, `keras_hub`,
`tensorflow`) except here. Each function below names the private attribute
it touches and why there is no public route; `tests/test_compat.py` checks
each against the installed versions, so an upgrade that breaks one fails
there first (design.md fact 8).

Uses:
- `Layer._tracker` (`unlock` / `lock`): a built layer refuses new attributes
  that hold state ("You cannot add new elements of state"); Keras's own
  `enable_lora` unlocks it the same way.
- `Layer._layers`: the list of tracked sublayers; a replaced sublayer must
  leave it, or its weights stay in `layer.weights`.
- `Functional` (the class of functional models, and of keras-hub backbones
  and tasks) is not exported; `is_functional` recognises it by name in the
  class hierarchy, which needs no private attribute.
- `KerasVariable.value` is public, but the distribution strategy of a
  variable is only on the TensorFlow variable behind it
  (`Variable._value.distribute_strategy`, public on `tf.Variable` subclasses).
"""

import contextlib

import keras
import tensorflow as tf


@contextlib.contextmanager
def unlocked(layer):
    """Lets a built layer take new state attributes inside the block."""
    tracker = getattr(layer, "_tracker", None)
    if tracker is None:
        yield
        return
    tracker.unlock()
    try:
        yield
    finally:
        tracker.lock()


def set_sublayer(parent, attribute, index, new):
    """Replaces the sublayer `parent.<attribute>[index]` (or the attribute
    itself when `index` is None) with `new`, and untracks the old one."""
    old = getattr(parent, attribute)
    if index is not None:
        old = old[index]
    with unlocked(parent):
        if index is None:
            setattr(parent, attribute, new)
        else:
            container = getattr(parent, attribute)
            container[index] = new
    tracked = getattr(parent, "_layers", None)
    if tracked is not None:
        if any(layer is old for layer in tracked):
            tracked[:] = [layer for layer in tracked if layer is not old]
        if not any(layer is new for layer in tracked):
            tracked.append(new)


def distribution_strategy(model):
    """The `tf.distribute.Strategy` the model's variables were created
    under (the default strategy when none)."""
    for variable in model.weights:
        tf_variable = getattr(variable, "_value", None)
        strategy = getattr(tf_variable, "distribute_strategy", None)
        if strategy is not None:
            return strategy
    return tf.distribute.get_strategy()


def is_functional(layer):
    """Whether `layer` is a functional model (it runs a graph of layers, so
    reassigning one of its attributes changes nothing that runs)."""
    if isinstance(layer, keras.Sequential):
        return True
    return any(cls.__name__ == "Functional" for cls in type(layer).__mro__)
