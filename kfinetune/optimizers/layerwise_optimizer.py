"""`LayerwiseOptimizer`: per-group learning rates over one inner optimizer."""

import keras
from keras import ops

from kfinetune.optimizers.layer_groups import LayerGroups
from kfinetune.optimizers.layer_groups import as_layer_groups


@keras.saving.register_keras_serializable(package="kfinetune")
class LayerwiseOptimizer(keras.optimizers.Optimizer):
    """Gives each layer group its own learning rate (and optimizer state).

    Discriminative learning rates (ULMFiT), layer-wise learning-rate decay
    (ELECTRA, BEiT) or a different optimizer per group, all under one
    learning-rate schedule:

    - `decay=0.8`: the top group trains at the inner optimizer's rate, the
      group below at 0.8 times that, and so on down;
    - `lr=slice(lo, hi)` (fastai's form): the top group at `hi`, the bottom
      group at `lo`, geometric in between, in place of the inner rate;
    - `optimizers={"embeddings": keras.optimizers.SGD(1e-4)}`: those groups
      use their own optimizer and rate; the others a copy of `optimizer`.

    Each group has its own copy of the inner optimizer, built over **every**
    weight of the group whether it is trainable now or not, with its own
    step count: a group that starts stepping late (gradual unfreezing) takes
    exactly the first step a fresh optimizer would (Keras's Adam corrects
    its moment estimates by the step count; with a shared count, a group
    unfrozen late would start at about 3× the learning rate). A group
    without gradients in a step does not step: no update, no weight decay,
    no count. Optimizer memory equals the inner optimizer's over the same
    weights.

    The learning rate of group `g` at global step `t` is
    `base_g(t) · multiplier_g · scale`, where `base_g` is the group
    optimizer's own rate (a float or a schedule evaluated at the global
    step) and `scale` is one variable that `ReduceLROnPlateau`,
    `LearningRateScheduler` and kfinetune's callbacks change by assigning
    `optimizer.learning_rate` (the top group's current rate): every group's
    rate follows and the ratios between groups stay.

    Args:
        optimizer: the inner `keras.optimizers.Optimizer`; each group gets a
            copy (`from_config(get_config())`), so it must not be built.
        groups: a `LayerGroups` (from `kfinetune.optimizers.layer_groups`).
        decay: layer-wise decay factor in `(0, 1]`. Defaults to `None` (no
            decay).
        lr: a `slice(lo, hi)` with `0 < lo <= hi`. Defaults to `None`.
        optimizers: `{group name: optimizer}` for groups that use their own
            optimizer. Defaults to `None`.
        weight_decay: `{group name: value}` overriding the weight decay of
            the named groups' optimizers (e.g. `0.0` for embeddings).
            Defaults to `None`.
        name: the optimizer's name.

    Example:

    ```python
    groups = kfinetune.optimizers.layer_groups(model)
    optimizer = kfinetune.optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(2e-5), groups, decay=0.8)
    model.compile(optimizer=optimizer, loss=..., metrics=[...])
    ```
    """

    def __init__(
        self,
        optimizer,
        groups,
        decay=None,
        lr=None,
        optimizers=None,
        weight_decay=None,
        name=None,
        **kwargs,
    ):
        groups = as_layer_groups(groups)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise ValueError(
                "`optimizer` must be a keras.optimizers.Optimizer. "
                f"Received: optimizer={optimizer!r}"
            )
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError(
                "Wrap the LayerwiseOptimizer in a LossScaleOptimizer, not "
                f"the other way round. Received: optimizer={optimizer.name!r}"
            )
        if optimizer.built:
            raise ValueError(
                "`optimizer` is already built over some weights; pass a "
                f"fresh one. Received: optimizer={optimizer.name!r}"
            )
        if decay is not None and lr is not None:
            raise ValueError(
                "Pass `decay` or `lr`, not both. "
                f"Received: decay={decay!r}, lr={lr!r}"
            )
        if decay is not None and not (
            isinstance(decay, (int, float)) and 0 < decay <= 1
        ):
            raise ValueError(
                f"`decay` must be in (0, 1]. Received: decay={decay!r}"
            )
        if lr is not None:
            if not isinstance(lr, slice) or lr.step is not None:
                raise ValueError(
                    f"`lr` must be a slice(lo, hi). Received: lr={lr!r}"
                )
            if not (0 < lr.start <= lr.stop):
                raise ValueError(
                    "`lr` must be slice(lo, hi) with 0 < lo <= hi (the "
                    "bottom group's rate first). "
                    f"Received: lr=slice({lr.start!r}, {lr.stop!r})"
                )
            if callable(_base_rate(optimizer)):
                raise ValueError(
                    "`lr=slice(lo, hi)` replaces the inner optimizer's "
                    "rate, which is a schedule here: pass one or the other."
                )
        optimizers = dict(optimizers or {})
        weight_decay = dict(weight_decay or {})
        for arg, mapping in (
            ("optimizers", optimizers),
            ("weight_decay", weight_decay),
        ):
            unknown = [n for n in mapping if n not in groups.names]
            if unknown:
                raise ValueError(
                    f"`{arg}` names groups that do not exist: {unknown}. "
                    f"Groups: {groups.names}. Received: {arg}={mapping!r}"
                )
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.inner = optimizer
        self.groups = groups
        self.decay = decay
        self.lr = lr
        self.group_optimizers_config = optimizers
        self.weight_decay_overrides = weight_decay
        # Set by GradualUnfreezing(mode="static"): groups whose `active`
        # variable is 0 compute gradients but do not step.
        self.masking = False
        self._bases = {}
        self._multipliers = _multipliers(groups.names, decay, lr)
        self._group_optimizers = {}
        for group in groups.names:
            given = optimizers.get(group)
            source = given if given is not None else optimizer
            if given is not None:
                # A group's own optimizer keeps its own rate.
                self._multipliers[group] = 1.0
                self._bases[group] = _base_rate(given)
            elif lr is not None:
                self._bases[group] = float(lr.stop)
            else:
                self._bases[group] = _base_rate(optimizer)
            config = source.get_config()
            config["learning_rate"] = 0.0
            config["name"] = f"{group}"
            if group in weight_decay:
                config["weight_decay"] = weight_decay[group]
            self._group_optimizers[group] = type(source).from_config(config)

    @property
    def group_optimizers(self):
        """`{group name: the optimizer that steps that group}`."""
        return dict(self._group_optimizers)

    @property
    def multipliers(self):
        """`{group name: learning-rate multiplier}` (top group 1)."""
        return dict(self._multipliers)

    def build(self, var_list):
        if self.built:
            return
        # Every weight of every group, trainable now or not, when the
        # groups know them (built from the model); a group unfrozen later
        # then has its state ready.
        known = {id(v) for v in var_list}
        var_list = list(var_list) + [
            v for v in self.groups.variables if id(v) not in known
        ]
        by_group = {name: [] for name in self.groups.names}
        missing = []
        for variable in var_list:
            group = self.groups.group_of(variable.path)
            if group is None:
                missing.append(variable.path)
            else:
                by_group[group].append(variable)
        if missing:
            raise ValueError(
                f"{len(missing)} trainable weights are in no group, e.g. "
                f"{missing[:5]}: build the groups from this model "
                "(`kfinetune.optimizers.layer_groups(model)`)."
            )
        super().build(var_list)
        self.scale = self.add_variable(
            (), initializer="ones", name="learning_rate_scale"
        )
        self.active = {
            name: self.add_variable(
                (), initializer="ones", name=f"{name}_active"
            )
            for name in self.groups.names
        }
        self._variable_group = {}
        for name, variables in by_group.items():
            optimizer = self._group_optimizers[name]
            if variables:
                optimizer.build(variables)
            for variable in variables:
                self._variable_group[self._var_key(variable)] = name

    @property
    def variables(self):
        result = list(self._variables)
        for optimizer in self._group_optimizers.values():
            result.extend(optimizer.variables)
        return result

    def _base(self, group):
        base = self._bases[group]
        if callable(base):
            return ops.cast(base(self.iterations), "float32")
        return ops.cast(base, "float32")

    def group_learning_rate(self, group):
        """The current learning rate of `group`."""
        rate = self._base(group) * self._multipliers[group]
        if self.built:
            rate = rate * self.scale
        return rate

    @property
    def learning_rate(self):
        """The top group's current learning rate. Assigning a value sets the
        scale that every group's rate is multiplied by."""
        if not hasattr(self, "_bases"):
            return super().learning_rate
        return self.group_learning_rate(self.groups.names[-1])

    @learning_rate.setter
    def learning_rate(self, value):
        if not hasattr(self, "_bases"):
            # The base constructor sets its own (unused) rate.
            keras.optimizers.Optimizer.learning_rate.fset(self, value)
            return
        if not self.built:
            raise ValueError(
                "Build the optimizer (or start `fit`) before setting its "
                "learning rate."
            )
        top = self.groups.names[-1]
        unscaled = self._base(top) * self._multipliers[top]
        self.scale.assign(ops.cast(value, "float32") / unscaled)

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        if not self.built:
            self.build(trainable_variables)
        by_group = {name: ([], []) for name in self.groups.names}
        for grad, variable in zip(grads, trainable_variables, strict=True):
            group = self._variable_group.get(self._var_key(variable))
            if group is None:
                raise ValueError(
                    f"Unknown weight {variable.path!r}: it is in no group."
                )
            by_group[group][0].append(grad)
            by_group[group][1].append(variable)
        for name, (group_grads, variables) in by_group.items():
            if variables:
                self._apply_group(name, group_grads, variables)
        self.iterations.assign_add(1)

    def _apply_group(self, name, grads, variables):
        optimizer = self._group_optimizers[name]

        def step():
            optimizer.learning_rate = self.group_learning_rate(name)
            optimizer.apply(grads, variables)

        if not self.masking:
            step()
            return
        # A masked group: no update, no weight decay, no step count.
        ops.cond(self.active[name] > 0, step, lambda: None)

    def finalize_variable_values(self, var_list):
        for name, optimizer in self._group_optimizers.items():
            variables = [
                v
                for v in var_list
                if self._variable_group.get(self._var_key(v)) == name
            ]
            if variables:
                optimizer.finalize_variable_values(variables)

    def get_config(self):
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner),
            "groups": self.groups.get_config(),
            "decay": self.decay,
            "lr": None if self.lr is None else [self.lr.start, self.lr.stop],
            "optimizers": {
                name: keras.saving.serialize_keras_object(optimizer)
                for name, optimizer in self.group_optimizers_config.items()
            },
            "weight_decay": self.weight_decay_overrides,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(
            config["optimizer"], custom_objects=custom_objects
        )
        config["optimizers"] = {
            name: keras.saving.deserialize_keras_object(
                value, custom_objects=custom_objects
            )
            for name, value in (config.get("optimizers") or {}).items()
        }
        config["groups"] = LayerGroups(config["groups"])
        if config.get("lr") is not None:
            config["lr"] = slice(*config["lr"])
        return cls(**config)


def _base_rate(optimizer):
    """An optimizer's learning rate: a float, or a schedule (a callable of
    the step), read from its config (the public record of it)."""
    rate = optimizer.get_config()["learning_rate"]
    if isinstance(rate, dict):
        return keras.saving.deserialize_keras_object(rate)
    return float(rate)


def _multipliers(names, decay, lr):
    count = len(names)
    if lr is not None:
        lo, hi = lr.start, lr.stop
        if count == 1:
            return {names[0]: 1.0}
        # The base rate is `hi`; bottom group lo, geometric in between.
        return {
            name: (lo / hi) ** ((count - 1 - i) / (count - 1))
            for i, name in enumerate(names)
        }
    decay = 1.0 if decay is None else decay
    return {name: decay ** (count - 1 - i) for i, name in enumerate(names)}
