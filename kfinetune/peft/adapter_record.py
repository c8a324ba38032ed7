"""`AdapterRecord`: what a `PEFTModel` keeps about each of its adapters."""

import dataclasses

import keras


@dataclasses.dataclass
class AdapterRecord:
    """One adapter of a `kfinetune.peft.PEFTModel`, by its name in
    `model.adapters`.

    Attributes:
        config: the method's config (`LoRAConfig`, `AdapterConfig`, ...).
        trainable: the patterns of base layers this adapter keeps trainable
            while it is active (the config's `trainable`, resolved against
            the model).
        merged: whether `kfinetune.peft.merge` folded it.
        skipped: `(path, reason)` of each matched layer the method could
            not wrap.
    """

    config: object
    trainable: list
    merged: bool = False
    skipped: list = dataclasses.field(default_factory=list)


def serialize(adapters):
    """The configs and merged states of `adapters` (name → record), in
    order: what `.keras` files and adapter files store to re-apply them."""
    return [
        {
            "name": name,
            "config": keras.saving.serialize_keras_object(record.config),
            "merged": record.merged,
        }
        for name, record in adapters.items()
    ]
