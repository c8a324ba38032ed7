"""`apply`: adds a parameter-efficient method to a model."""

import re

import keras

from kfinetune import compat
from kfinetune.peft import config as config_lib
from kfinetune.peft import injection
from kfinetune.peft.peft_model import PEFTModel

_NAME = re.compile(r"[A-Za-z0-9_]+")


def apply(model, config, name="default"):
    """Applies a parameter-efficient method to a built Keras model.

    The base model's layers are frozen, except those matched by the
    config's `trainable` patterns (by default the task's head, every layer
    with weights outside the keras-hub backbone: see `task_heads`); the
    new adapter is made active and trainable. The
    change is atomic: when anything fails, the model is exactly as before
    (structure, weights, trainable flags).

    The layers are injected into `model` in place; use the returned model,
    which also saves and reloads with its adapters.

    Args:
        model: a built Keras model (functional, Sequential, subclassed, a
            keras-hub backbone or task), or a model returned by `apply`
            (to add a second, named adapter).
        config: a `kfinetune.peft` config such as `LoRAConfig` or
            `AdapterConfig`.
        name: the adapter's name, letters, digits and `_`. Defaults to
            `"default"`.

    Returns:
        A `kfinetune.peft.PEFTModel` wrapping `model`.

    Raises:
        ValueError: the model is not built, the name is taken or invalid, no
            layer matches the targets, or the method cannot wrap any
            matched layer.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    model = kfinetune.peft.apply(model, kfinetune.peft.LoRAConfig(rank=8))
    kfinetune.peft.summary(model)
    ```
    """
    if not isinstance(config, config_lib.PEFTConfig):
        raise ValueError(
            "`config` must be a kfinetune.peft config such as "
            f"`LoRAConfig(...)`. Received: config={config!r}"
        )
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            "`name` must be a non-empty string of letters, digits and _. "
            f"Received: name={name!r}"
        )
    base = model.base if isinstance(model, PEFTModel) else model
    if not isinstance(base, keras.Model) or not base.built or not base.weights:
        raise ValueError(
            "`model` must be a built Keras model: call it on data or "
            "`model.build(input_shape)` first. "
            f"Received: model={getattr(model, 'name', model)!r} "
            f"(built={getattr(model, 'built', None)})"
        )
    if isinstance(model, PEFTModel) and name in model.adapters:
        raise ValueError(
            f"An adapter named {name!r} is already applied to this model "
            f"(adapters: {list(model.adapters)}). Pick another name or "
            f"`kfinetune.peft.delete(model, {name!r})` first. "
            f"Received: name={name!r}"
        )
    # Planned before a new `PEFTModel` calls `base`: a plan that fails
    # leaves the base exactly as it was.
    plan = injection.make_plan(base, config, name)
    if not isinstance(model, PEFTModel):
        with compat.distribution_strategy(base).scope():
            # The base's configuration is recorded before anything changes:
            # `PEFTModel.from_config` rebuilds it and re-applies the
            # adapters.
            model = PEFTModel(
                base,
                base_config=keras.saving.serialize_keras_object(base),
                build_config=base.get_build_config(),
            )
    return injection.inject(model, config, name, plan)
