"""`PEFTConfig`: what every parameter-efficient method's config shares."""

import dataclasses

import keras

from kfinetune import walk
from kfinetune.peft.task_heads import task_heads


@dataclasses.dataclass
class Injection:
    """One planned change: replace `site`'s layer by `make()`'s result.

    `rewire=True` replaces a node of a functional graph in place (inside a
    keras-hub backbone too) rather than rebuilding the graph.
    """

    site: walk.Site
    make: object
    rewire: bool = False


class PEFTConfig:
    """Base class of the method configs (`LoRAConfig`, `AdapterConfig`).

    A config says what to inject and where; `kfinetune.peft.apply` does the
    injecting. Subclasses define `method` (the weight-name prefix, e.g.
    `"lora"`), `default_targets(model)` and `injections(site, name, sites)`,
    and say whether `kfinetune.peft.merge` folds them (`mergeable`) and
    whether their layers then compute nothing beyond the base layers, so
    that `kfinetune.peft.merge_and_unload` can remove them
    (`folds_into_base`).

    Args:
        targets: layer paths or regular expressions (matched with
            `re.fullmatch`) of the layers to adapt. Defaults to the method's
            defaults for keras-hub transformers.
        trainable: paths or regular expressions of base layers to keep
            trainable, like PEFT's `modules_to_save`; `[]` freezes every
            base layer. Defaults to the task's head
            (`kfinetune.peft.task_heads`): every layer with weights
            outside the model's keras-hub backbone, such as a classifier's
            `logits` or a token classifier's `emissions` and `crf`.
    """

    method = None
    mergeable = False
    folds_into_base = False

    def __init__(self, targets=None, trainable=None):
        self.targets = _patterns("targets", targets)
        self.trainable = _patterns("trainable", trainable)

    def check(self, model):
        """Validates the config against `model` before anything changes
        (raises `ValueError`)."""

    def default_targets(self, model):
        raise NotImplementedError

    def injections(self, site, name, sites):
        """Plans the changes for one matched layer.

        Args:
            site: the matched `Site`.
            name: the adapter name.
            sites: every `Site` of the model.

        Returns:
            `(list of Injection, None)`, or `(None, reason)` when the layer
            cannot take this method and is skipped.
        """
        raise NotImplementedError

    def resolved_trainable(self, model):
        if self.trainable is not None:
            return list(self.trainable)
        return task_heads(model)

    def get_config(self):
        return {"targets": self.targets, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and (
            self.get_config() == other.get_config()
        )

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _patterns(name, value):
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) for v in value
    ):
        raise ValueError(
            f"`{name}` must be a string or a list of strings (layer paths or "
            f"regular expressions). Received: {name}={value!r}"
        )
    return list(value)


def register(cls):
    """Registers a config class for Keras serialization."""
    return keras.saving.register_keras_serializable(package="kfinetune")(cls)
