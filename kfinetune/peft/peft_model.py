"""`PEFTModel`: the model `kfinetune.peft.apply` returns."""

import copy

import keras
import keras_hub

from kfinetune.peft import adapter_record
from kfinetune.peft import adapter_state
from kfinetune.peft import injection


@keras.saving.register_keras_serializable(package="kfinetune")
class PEFTModel(keras_hub.models.Task):
    """A model with parameter-efficient adapters injected, that saves and
    reloads with them.

    keras-hub tasks and backbones, and most subclassed models, save only
    their constructor arguments, so a reloaded model would not contain the
    injected layers (loading their weights fails: "expected 2 variables,
    but received 0"). A `PEFTModel` keeps the base model, records the
    configuration it was built from and the adapters applied to it, and in
    `from_config` rebuilds the base and re-applies them, so `model.save` /
    `keras.models.load_model` restore the adapters exactly (unmerged or
    merged as they were).

    It is a keras-hub `Task`: with a keras-hub base it preprocesses raw
    inputs in `fit`, `evaluate` and `predict` like the base would, and
    forwards `backbone` and `preprocessor`. Any other attribute that is not
    found on the `PEFTModel` is looked up on the base.

    Don't build one yourself: `kfinetune.peft.apply` returns it.

    Args:
        base: the model the adapters live in (modified in place).
        base_config: the serialized configuration of `base` before any
            adapter was applied.
        build_config: `base.get_build_config()` for bases that are not
            built by `from_config` (subclassed models).
        **kwargs: `keras.Model` arguments such as `name`.

    Attributes:
        adapters: adapter name → `kfinetune.peft.adapter_record.AdapterRecord`
            (config, trainable patterns, merged, skipped layers), in the
            order applied.
        active: the names of the adapters that compute and train.
    """

    def __init__(self, base, base_config, build_config=None, **kwargs):
        if kwargs.get("name") is None:
            kwargs["name"] = f"peft_{base.name}"
        # A functional model with the base as its one node, like keras-hub's
        # own tasks: keras-hub's Task shares class state between instances
        # that assumes every task is functional.
        inputs = _symbolic_inputs(base, build_config)
        outputs = base(inputs)
        super().__init__(
            inputs=inputs, outputs=outputs, compile=False, **kwargs
        )
        self.base = base
        self.base_config = base_config
        self.build_config = build_config
        self.adapters = {}
        self.active = []
        self.dtype_policy = base.dtype_policy
        self.built = True

    @property
    def backbone(self):
        # `__dict__`: keras-hub's constructor reads this before `base` is set.
        return getattr(self.__dict__.get("base"), "backbone", None)

    @backbone.setter
    def backbone(self, value):
        if value is not None:
            raise AttributeError("A PEFTModel's backbone is its base's.")

    @property
    def preprocessor(self):
        return getattr(self.__dict__.get("base"), "preprocessor", None)

    @preprocessor.setter
    def preprocessor(self, value):
        # keras-hub's Task constructor assigns None; forward real changes.
        if "base" in self.__dict__:
            self.base.preprocessor = value

    def __getattr__(self, name):
        # Only reached when normal lookup fails: forward what users reach
        # for on the base (e.g. `num_classes`, `activation`).
        if name.startswith("_") or name in ("base", "adapters", "active"):
            raise AttributeError(name)
        return getattr(self.__dict__.get("base"), name)

    def compile(self, *args, sampler=None, **kwargs):
        """Configures the model for training, like `keras.Model.compile`.

        A keras-hub generator base (a `CausalLM` or `Seq2SeqLM`, whose
        `generate` the `PEFTModel` forwards) also takes `sampler`, as its
        own `compile` does, and its `generate` follows `jit_compile` and
        `run_eagerly`.

        Args:
            *args: the arguments of `keras.Model.compile`.
            sampler: for a generator base, a `keras_hub.samplers.Sampler`
                or its name (`"greedy"`, `"top_k"`, ...) that `generate`
                uses. Defaults to the base's current sampler.
            **kwargs: the arguments of `keras.Model.compile`.

        Raises:
            ValueError: `sampler` for a base that does not generate.
        """
        if sampler is not None:
            if not callable(getattr(self.base, "generate", None)):
                raise ValueError(
                    "`sampler` configures the `generate` of keras-hub "
                    f"generators, and {self.base.name!r} "
                    f"({type(self.base).__name__}) does not generate. "
                    f"Received: sampler={sampler!r}"
                )
            self.base.sampler = keras_hub.samplers.get(sampler)
        super().compile(*args, **kwargs)
        if callable(getattr(self.base, "generate", None)):
            # `generate` runs on the base: it follows this model's settings
            # (a CPU-only machine would otherwise leave the base without
            # XLA whatever `jit_compile=True` asked).
            self.base.jit_compile = self.jit_compile
            self.base.run_eagerly = self.run_eagerly
            self.base.generate_function = None

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Refuses: quantize the base model before applying adapters.

        `keras.Model.quantize` would quantize the layers inside the
        adapters (it visits every layer without sublayers): the float LoRA
        base would change under its factors, and the adapters' own
        trainable layers would turn into frozen integer ones.

        Raises:
            ValueError: always.
        """
        raise ValueError(
            "Cannot quantize a model that has adapters "
            f"({list(self.adapters)}): quantize the base model first "
            '(e.g. `model.backbone.quantize("int8")`), then '
            "`kfinetune.peft.apply` the adapters, which train in float "
            "over the quantized layers. To quantize a trained adapter's "
            "model, `kfinetune.peft.merge_and_unload` it and quantize the "
            f"result. Received: mode={mode!r}"
        )

    def get_config(self):
        return {
            "name": self.name,
            "base_config": _plain(self.base_config),
            "build_config": _plain(self.build_config),
            "adapters": adapter_record.serialize(self.adapters),
            "active": list(self.active),
        }

    @classmethod
    def from_config(cls, config):
        # Deserializing fills the config it is given with objects.
        base = keras.saving.deserialize_keras_object(
            copy.deepcopy(config["base_config"])
        )
        if not base.built and config.get("build_config"):
            base.build_from_config(config["build_config"])
        model = cls(
            base,
            base_config=config["base_config"],
            build_config=config.get("build_config"),
            name=config["name"],
        )
        for record in config["adapters"]:
            peft_config = keras.saving.deserialize_keras_object(
                record["config"]
            )
            model = injection.inject(model, peft_config, record["name"])
        adapter_state.activate(model, config["active"])
        merged = [
            r["name"]
            for r in config["adapters"]
            if r["merged"] and r["name"] in model.active
        ]
        adapter_state.set_merged(model, merged, True)
        return model


def require(model, names=()):
    """Checks that `model` was returned by `kfinetune.peft.apply` and has
    adapters called `names`."""
    if not isinstance(model, PEFTModel):
        raise ValueError(
            "Expected a model returned by `kfinetune.peft.apply`. "
            f"Received: model={getattr(model, 'name', model)!r} "
            f"({type(model).__name__})"
        )
    for name in names:
        if name not in model.adapters:
            raise ValueError(
                f"No adapter named {name!r} on this model "
                f"(adapters: {list(model.adapters)}). Received: name={name!r}"
            )


def _symbolic_inputs(base, build_config):
    try:
        structure = base.input
    except (AttributeError, ValueError):
        # Subclassed models have no symbolic input.
        structure = None
    if structure is not None:
        return keras.tree.map_structure(
            lambda t: keras.Input(
                batch_shape=t.shape,
                dtype=t.dtype,
                name=getattr(t, "name", None),
            ),
            structure,
        )
    shape = (build_config or {}).get("input_shape")
    if shape is None:
        raise ValueError(
            "Cannot tell the input shape of this model: build it by calling "
            "it on data (or `model.build(input_shape)`) first. "
            f"Received: model={base.name!r}"
        )
    return keras.Input(batch_shape=tuple(shape))


def _plain(value):
    """`value` with plain dicts and lists: a layer's attributes hold
    containers that Keras tracks, which refer back to the layer."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
