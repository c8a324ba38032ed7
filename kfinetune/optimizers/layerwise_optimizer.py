"""`LayerwiseOptimizer`: per-group learning rates over one inner optimizer."""

import keras
import tensorflow as tf
from keras import ops

from kfinetune import checks
from kfinetune import compat
from kfinetune.optimizers import gradients
from kfinetune.optimizers import shared_settings
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
      use their own optimizer and rate; the others a copy of `optimizer`;
    - `multipliers={"lora_b": 16.0}`: those groups train at that multiple
      of the inner rate, the others at the rate `decay` or `lr` give them
      (LoRA+: `kfinetune.optimizers.lora_plus`).

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

    The gradient settings of `keras.optimizers.Optimizer` work as on a
    plain Keras optimizer over all the groups' weights, in Keras's order:
    gradients are divided by `loss_scale_factor`, accumulated, clipped,
    then each group steps (with its own weight decay); the weights'
    moving average is updated after every batch. Each can be given here or
    on the inner `optimizer`; in both places only with the same value:

    - `global_clipnorm`, `loss_scale_factor`, `gradient_accumulation_steps`
      and the EMA settings span every group, so the `LayerwiseOptimizer`
      applies them and the group copies run without them; a group's own
      optimizer (`optimizers`) must not set them;
    - `clipnorm` and `clipvalue` clip each weight's gradient on its own:
      given here they clip before the groups step; on the inner optimizer
      (or a group's own) that group's optimizer clips. Gradients are
      clipped in one place only, as Keras allows one clipping setting.

    Under a distribution strategy, clipping acts on each replica's
    gradients before they are summed, as in Keras.

    Weight decay is each group optimizer's own (`weight_decay` overrides it
    per group). The weights excluded from it with
    `exclude_from_weight_decay` on the inner optimizer (or on a group's own
    optimizer) stay excluded in the group copies, and
    `exclude_from_weight_decay` on the `LayerwiseOptimizer` excludes
    weights in every group. Call them before the optimizer is built
    (before `fit`): a later call on the `LayerwiseOptimizer` is refused,
    and a later change on the inner optimizer when the train step is next
    traced. Exclusions by name set on the `LayerwiseOptimizer` are saved in
    its config; by weight, or on the inner optimizer, they are not (Keras
    saves no exclusions).

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
        multipliers: `{group name: positive number}`: those groups'
            learning-rate multipliers, in place of those `decay` or `lr`
            give them. Not for groups with their own optimizer. Defaults
            to `None`.
        clipnorm: clip each weight's gradient to this norm. Defaults to
            `None`.
        clipvalue: clip each gradient element to `[-clipvalue, clipvalue]`.
            Defaults to `None`.
        global_clipnorm: clip the gradients of all groups together to this
            global norm. Defaults to `None` (the inner optimizer's).
        use_ema: keep an exponential moving average of every weight of the
            groups, also of those not trained yet; `fit` ends by setting
            the weights to their averages (`finalize_variable_values`).
            Defaults to `False` (the inner optimizer's, with its
            `ema_momentum` and `ema_overwrite_frequency`).
        ema_momentum: the average's momentum, with `use_ema`. Defaults to
            `0.99`.
        ema_overwrite_frequency: with `use_ema`, set the weights to their
            averages every this many steps. Defaults to `None`.
        loss_scale_factor: `fit` multiplies the loss by this and the
            gradients are divided by it. Defaults to `None` (the inner
            optimizer's).
        gradient_accumulation_steps: an integer `>= 2`: the groups step
            every this many batches, on the mean of their gradients; each
            group's step count (`group_optimizers[name].iterations`) and
            `iterations` count steps, learning-rate schedules count batches.
            Defaults to `None` (the inner optimizer's).
        name: the optimizer's name.

    Example:

    ```python
    groups = kfinetune.optimizers.layer_groups(model)
    optimizer = kfinetune.optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(2e-5, global_clipnorm=1.0), groups, decay=0.8)
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
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        multipliers=None,
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
        if decay is not None:
            checks.in_range("decay", decay, 0, 1, False, high_closed=True)
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
        if multipliers is not None and not isinstance(multipliers, dict):
            raise ValueError(
                "`multipliers` must be a dict of group name to a positive "
                f"number. Received: multipliers={multipliers!r}"
            )
        multipliers = dict(multipliers or {})
        for group, value in multipliers.items():
            checks.positive_number(f"multipliers[{group!r}]", value)
            if group in optimizers:
                raise ValueError(
                    f"The group {group!r} has its own optimizer, which keeps "
                    "its own rate: give it no multiplier. "
                    f"Received: multipliers={multipliers!r}"
                )
        for arg, mapping in (
            ("optimizers", optimizers),
            ("weight_decay", weight_decay),
            ("multipliers", multipliers),
        ):
            unknown = [n for n in mapping if n not in groups.names]
            if unknown:
                raise ValueError(
                    f"`{arg}` names groups that do not exist: {unknown}. "
                    f"Groups: {groups.names}. Received: {arg}={mapping!r}"
                )
        for group, given in optimizers.items():
            if not isinstance(given, keras.optimizers.Optimizer):
                raise ValueError(
                    "`optimizers` must map group names to "
                    "keras.optimizers.Optimizer instances. "
                    f"Received: optimizers[{group!r}]={given!r}"
                )
            for key in (*shared_settings.SHARED, "use_ema"):
                if getattr(given, key):
                    raise ValueError(
                        f"`{key}` acts on every group at once, so a group's "
                        "own optimizer cannot set it: set it on the "
                        "LayerwiseOptimizer or its inner optimizer. "
                        f"Received: optimizers[{group!r}].{key}="
                        f"{getattr(given, key)!r}"
                    )
        shared = shared_settings.resolve(
            optimizer,
            global_clipnorm=global_clipnorm,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
        )
        ema = shared_settings.resolve_ema(
            optimizer,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
        )
        clips = {
            "clipnorm": clipnorm,
            "clipvalue": clipvalue,
            "global_clipnorm": shared["global_clipnorm"],
        }
        shared_settings.check_clipping_in_one_place(
            clips, optimizer, optimizers
        )
        super().__init__(
            learning_rate=0.0,
            name=name,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            **shared,
            **ema,
        )
        self.inner = optimizer
        self.groups = groups
        self.decay = decay
        self.lr = lr
        self.group_optimizers_config = optimizers
        self.weight_decay_overrides = weight_decay
        # Set by GradualUnfreezing(mode="static"): groups whose `active`
        # variable is 0 compute gradients but do not step.
        self.masking = False
        self._excluded_names = None
        self._bases = {}
        self.multiplier_overrides = multipliers
        self._multipliers = _multipliers(groups.names, decay, lr)
        self._multipliers.update(
            {group: float(value) for group, value in multipliers.items()}
        )
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
            config.update(
                {
                    k: v
                    for k, v in shared_settings.GROUP_COPY_OFF.items()
                    if k in config
                }
            )
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
        names = [self.groups.group_of(v.path) for v in var_list]
        missing = [
            v.path for v, n in zip(var_list, names, strict=True) if n is None
        ]
        if missing:
            raise ValueError(
                f"{len(missing)} trainable weights are in no group, e.g. "
                f"{missing[:5]}: build the groups from this model "
                "(`kfinetune.optimizers.layer_groups(model)`)."
            )
        if self.gradient_accumulation_steps:
            overwritten = [v.path for v in var_list if gradients.overwrites(v)]
            if overwritten:
                raise ValueError(
                    "`gradient_accumulation_steps` cannot be used with "
                    "weights that take their gradient as their new value "
                    f"(float8 training), e.g. {overwritten[:5]}. Received: "
                    "gradient_accumulation_steps="
                    f"{self.gradient_accumulation_steps!r}"
                )
        # The base class's `build` is not called: it would create its own
        # EMA and accumulator slots, which `apply` here does not use.
        self.scale = self.add_variable(
            (), initializer="ones", name="learning_rate_scale"
        )
        self.active = {
            name: self.add_variable(
                (), initializer="ones", name=f"{name}_active"
            )
            for name in self.groups.names
        }
        self._index = _VariableIndex(var_list, names)
        if self.gradient_accumulation_steps:
            self._accumulators = [
                self.add_variable_from_reference(v, name="gradient_accumulator")
                for v in var_list
            ]
        if self.use_ema:
            self._averages = [
                None
                if gradients.overwrites(v)
                else self.add_variable_from_reference(v, name="average")
                for v in var_list
            ]
        for name in self.groups.names:
            variables = self._index.of_group(name)
            if variables:
                # The copies were made from configs, which do not hold the
                # exclusions: they get them as weights, before they build.
                optimizer = self._group_optimizers[name]
                optimizer.exclude_from_weight_decay(
                    var_list=[v for v in variables if not self._decays(name, v)]
                )
                optimizer.build(variables)
        self.built = True

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Excludes weights from the weight decay of every group.

        As on a Keras optimizer, a new call replaces the exclusions of the
        previous one. They add to those of the inner optimizer and of the
        groups' own optimizers. Exclusions by name are saved in the config
        (`get_config`, `model.save`); by weight, as in Keras, they are not.

        Args:
            var_list: weights not to decay. Defaults to `None`.
            var_names: strings; a weight whose name contains one of them
                (a regular expression search, as in Keras) is not decayed.
                Defaults to `None`.

        Example:

        ```python
        optimizer = kfinetune.optimizers.LayerwiseOptimizer(
            keras.optimizers.AdamW(2e-5, weight_decay=0.01), groups)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        ```
        """
        paths = [getattr(v, "path", v) for v in var_list or ()]
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay` must be called before the "
                "optimizer is built (before `fit`): each group's optimizer "
                "takes the exclusions when it is built. "
                f"Received: var_list={paths!r}, var_names={var_names!r}"
            )
        if var_list is not None and not all(
            isinstance(v, (keras.Variable, tf.Variable)) for v in var_list
        ):
            raise ValueError(
                f"`var_list` must be a list of weights. Received: "
                f"var_list={var_list!r}"
            )
        if var_names is not None and (
            isinstance(var_names, str)
            or not all(isinstance(n, str) for n in var_names)
        ):
            raise ValueError(
                "`var_names` must be a list of strings (a string would be "
                f"read as its characters). Received: var_names={var_names!r}"
            )
        super().exclude_from_weight_decay(
            var_list=var_list, var_names=var_names
        )
        self._excluded_names = list(var_names) if var_names else None

    def _decays(self, group, variable):
        """Whether the optimizer of `group` should decay `variable`: not
        when the LayerwiseOptimizer, or the optimizer the group's copy was
        made from, excludes it."""
        source = self.group_optimizers_config.get(group, self.inner)
        return all(
            compat.uses_weight_decay(optimizer, variable)
            for optimizer in (self, source)
        )

    def _check_exclusions_unchanged(self):
        for name, optimizer in self._group_optimizers.items():
            if optimizer.weight_decay is None:
                continue
            changed = [
                v.path
                for v in self._index.of_group(name)
                if compat.uses_weight_decay(optimizer, v)
                != self._decays(name, v)
            ]
            if changed:
                raise ValueError(
                    "The weights excluded from weight decay changed after "
                    "the LayerwiseOptimizer was built, e.g. for "
                    f"{changed[:5]}: call `exclude_from_weight_decay` (on "
                    "it or on its inner optimizer) before it is built, "
                    f"before `fit`. Received: group={name!r}"
                )

    @property
    def variables(self):
        result = list(super().variables)
        for optimizer in self._group_optimizers.values():
            result.extend(optimizer.variables)
        return result

    def _base(self, group):
        base = self._bases[group]
        if callable(base):
            # Schedules count batches, also with gradient accumulation
            # (as Keras's do).
            step = compat.apply_counter(self)
            return ops.cast(base(step), "float32")
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
            if not self.built:
                raise ValueError(
                    "Pass `trainable_variables` with the first `grads` (or "
                    "build the optimizer first): the gradients are matched "
                    "to weights."
                )
            trainable_variables = self._index.variables
        grads = list(grads)
        variables = list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError(
                "`grads` and `trainable_variables` must match one to one. "
                f"Received: {len(grads)} gradients for {len(variables)} "
                "weights."
            )
        if not grads:
            return
        if not self.built:
            self.build(variables)
        for variable in variables:
            self._index.position(variable)
        self._check_exclusions_unchanged()
        scale = self.loss_scale_factor
        if scale is not None:
            grads = [
                g
                if g is None or gradients.overwrites(v)
                else gradients.divide(g, scale)
                for g, v in zip(grads, variables, strict=True)
            ]
        if self.gradient_accumulation_steps:
            self._accumulate_or_step(grads, variables)
        else:
            self._step(grads, variables)
        if self.use_ema:
            self._update_averages()
        compat.apply_counter(self).assign_add(1)

    def _accumulate_or_step(self, grads, variables):
        steps = self.gradient_accumulation_steps
        accumulators = [
            self._accumulators[self._index.position(v)] for v in variables
        ]

        def step(grads, variables):
            self._step(
                [
                    None if g is None else (g + a) / steps
                    for g, a in zip(grads, accumulators, strict=True)
                ],
                variables,
            )
            for accumulator in self._accumulators:
                accumulator.assign(
                    ops.zeros(accumulator.shape, accumulator.dtype)
                )

        def accumulate(grads, variables):
            for g, a in zip(grads, accumulators, strict=True):
                if g is not None:
                    a.assign(a + g)

        last = (compat.apply_counter(self) + 1) % steps == 0
        gradients.distributed_cond(last, step, accumulate, grads, variables)

    def _step(self, grads, variables):
        grads = self._clip(grads, variables)
        by_group = {name: ([], []) for name in self.groups.names}
        for grad, variable in zip(grads, variables, strict=True):
            group = self._index.group(variable)
            by_group[group][0].append(grad)
            by_group[group][1].append(variable)
        for name, (group_grads, group_variables) in by_group.items():
            if group_variables:
                self._apply_group(name, group_grads, group_variables)

    def _clip(self, grads, variables):
        # As Keras: missing gradients and the gradients that are new values
        # (float8) are neither clipped nor counted in the global norm.
        clipped = [
            i
            for i, (g, v) in enumerate(zip(grads, variables, strict=True))
            if g is not None and not gradients.overwrites(v)
        ]
        values = [grads[i] for i in clipped]
        if not values:
            return grads
        if self.clipnorm and self.clipnorm > 0:
            values = [tf.clip_by_norm(g, self.clipnorm) for g in values]
        elif self.global_clipnorm and self.global_clipnorm > 0:
            values = gradients.clip_by_global_norm(values, self.global_clipnorm)
        elif self.clipvalue and self.clipvalue > 0:
            bound = self.clipvalue
            values = [ops.clip(g, -bound, bound) for g in values]
        else:
            return grads
        grads = list(grads)
        for i, value in zip(clipped, values, strict=True):
            grads[i] = value
        return grads

    def _apply_group(self, name, grads, variables):
        optimizer = self._group_optimizers[name]

        def step(grads, variables):
            optimizer.learning_rate = self.group_learning_rate(name)
            optimizer.apply(grads, variables)

        if not self.masking:
            step(grads, variables)
            return
        # A masked group: no update, no weight decay, no step count.
        gradients.distributed_cond(
            self.active[name] > 0, step, gradients.no_step, grads, variables
        )

    def _update_averages(self):
        # Keras's EMA, over every weight of the groups, after every batch.
        not_first_step = ops.not_equal(self.iterations, 0)
        pairs = list(zip(self._index.variables, self._averages, strict=True))
        for variable, average in pairs:
            if average is None:
                continue
            momentum = ops.multiply(
                ops.cast(not_first_step, variable.dtype), self.ema_momentum
            )
            average.assign(
                ops.add(
                    ops.multiply(momentum, average),
                    ops.multiply(ops.subtract(1, momentum), variable),
                )
            )
        if self.ema_overwrite_frequency:

            def overwrite():
                for variable, average in pairs:
                    if average is not None:
                        variable.assign(average)

            ops.cond(
                (self.iterations + 1) % self.ema_overwrite_frequency == 0,
                overwrite,
                lambda: None,
            )

    def finalize_variable_values(self, var_list):
        if not self.built:
            return
        if self.use_ema:
            for variable in var_list:
                average = self._averages[self._index.position(variable)]
                if average is not None:
                    variable.assign(average)
        for name, optimizer in self._group_optimizers.items():
            variables = [v for v in var_list if self._index.group(v) == name]
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
            "multipliers": self.multiplier_overrides or None,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "exclude_from_weight_decay": (
                None
                if self._excluded_names is None
                else list(self._excluded_names)
            ),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        excluded_names = config.pop("exclude_from_weight_decay", None)
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
        optimizer = cls(**config)
        if excluded_names:
            optimizer.exclude_from_weight_decay(var_names=excluded_names)
        return optimizer


class _VariableIndex:
    """The model weights a `LayerwiseOptimizer` is built over, in order,
    with the group of each.

    Weights are keyed by `id`: the trainer passes the model's own variable
    objects, also under a distribution strategy, and paths are not unique
    (a model can hold two copies of a backbone). A plain object, not an
    optimizer attribute holding the weights: the optimizer's attribute
    tracking would count the model's weights as optimizer state.
    """

    def __init__(self, variables, groups):
        self.variables = list(variables)
        self._groups = [str(g) for g in groups]
        self._positions = {id(v): i for i, v in enumerate(self.variables)}

    def position(self, variable):
        position = self._positions.get(id(variable))
        if position is None:
            raise ValueError(
                f"Unknown weight {variable.path!r}: it is in no group of "
                "the weights this optimizer was built over."
            )
        return position

    def group(self, variable):
        return self._groups[self.position(variable)]

    def of_group(self, name):
        return [
            v
            for v, g in zip(self.variables, self._groups, strict=True)
            if g == name
        ]


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
