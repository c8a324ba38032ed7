"""`Stages`: which layer groups of a model train, one stage at a time."""

import keras

from kfinetune import walk
from kfinetune.optimizers.layerwise_optimizer import LayerwiseOptimizer


class Stages:
    """Trains the top `stage + 1` layer groups of a model; the others are
    frozen.

    The part that `GradualUnfreezing` and `AdaptiveFineTuning` share; each
    callback decides when the stage changes. Flipping `layer.trainable`
    inside `fit` does nothing in Keras (the train function was traced
    once), so a group is frozen in one of two ways:

    - `retrace=True`: the trainable flags change and the train function is
      retraced, so frozen groups cost no backward compute.
    - `retrace=False`: one graph for the whole run; every group computes
      gradients and the `LayerwiseOptimizer` skips the frozen ones.

    What may train is what was trainable before the first `fit` on the
    model: weights frozen by a parameter-efficient method, or by the user,
    are never unfrozen, and neither are BatchNormalization layers. `end`
    puts every flag back.

    Args:
        groups: the `LayerGroups` of the model, bottom to top.
        retrace: freeze by trainable flags and retracing (`True`) or by
            optimizer masking (`False`).
        train_batchnorm: keep BatchNormalization layers of frozen groups
            training (needs `retrace=True`).
        caller: the name of the callback, for error messages.
    """

    def __init__(self, groups, retrace, train_batchnorm, caller):
        self.groups = groups
        self.retrace = retrace
        self.train_batchnorm = train_batchnorm
        self.caller = caller
        self.stage = None
        self._model = None

    @property
    def count(self):
        """The number of stages: one per group."""
        return len(self.groups)

    def trainable_groups(self, stage):
        """The names of the groups that train in `stage`."""
        return self.groups.names[self.count - 1 - stage :]

    def describe(self):
        """The current stage, e.g. `"stage 1/8, training ['head']"`."""
        return (
            f"stage {self.stage + 1}/{self.count}, "
            f"training {self.trainable_groups(self.stage)}"
        )

    def optimizer(self):
        """The model's `LayerwiseOptimizer` (checked to be over `groups`)."""
        return layerwise_optimizer(self._model, self.caller, self.groups)

    def begin(self, model):
        """Prepares `model` at the start of `fit`; the stage is unset."""
        optimizer = layerwise_optimizer(model, self.caller, self.groups)
        if model is not self._model:
            self._model = model
            self._record(model)
        if not optimizer.built:
            optimizer.build(self._eligible)
        optimizer.masking = not self.retrace
        self.stage = None
        # `fit` traced its train function before calling the callbacks.
        model.make_train_function(force=True)

    def set(self, stage):
        """Trains the top `stage + 1` groups. Returns whether that changed
        the stage."""
        if stage == self.stage:
            return False
        self.stage = stage
        training = set(self.trainable_groups(stage))
        if not self.retrace:
            optimizer = self.optimizer()
            for name in self.groups.names:
                optimizer.active[name].assign(1.0 if name in training else 0.0)
            return True
        # Layers first: a layer's flag propagates to its variables.
        for layer, owners in self._batchnorm_layers:
            layer.trainable = self.train_batchnorm or bool(owners & training)
        for variable in self._managed:
            variable.trainable = self._may_train(variable) and (
                self.groups.group_of(variable.path) in training
                or (self.train_batchnorm and id(variable) in self._batchnorm)
            )
        self._model.make_train_function(force=True)
        return True

    def end(self):
        """Puts back the trainable flags of before `fit`, so that the next
        `fit` (or a saved file) sees what may train, not a stage."""
        for layer, _ in self._batchnorm_layers:
            layer.trainable = True
        for variable in self._managed:
            variable.trainable = self._may_train(variable)
        self.optimizer().masking = False
        self._model.make_train_function(force=True)

    def _record(self, model):
        variables = list({id(v): v for v in model.weights}.values())
        self._eligible = [v for v in variables if v.trainable]
        self._eligible_ids = {id(v) for v in self._eligible}
        batchnorm = [
            layer
            for layer in _layers(model)
            if isinstance(layer, keras.layers.BatchNormalization)
            and layer.trainable
        ]
        self._batchnorm_layers = [
            (layer, {self.groups.group_of(v.path) for v in layer.weights})
            for layer in batchnorm
        ]
        self._batchnorm = {id(v) for layer in batchnorm for v in layer.weights}
        # The variables whose flags a stage sets: those of the groups, and
        # those of BatchNormalization layers (a layer's flag reaches them).
        self._managed = [
            v
            for v in variables
            if self.groups.group_of(v.path) is not None
            or id(v) in self._batchnorm
        ]

    def _may_train(self, variable):
        return id(variable) in self._eligible_ids


def layerwise_optimizer(model, caller, groups=None):
    """The `LayerwiseOptimizer` of a compiled model (also inside a
    `LossScaleOptimizer`), over `groups` when given, or a clear error."""
    optimizer = model.optimizer
    inner = getattr(optimizer, "inner_optimizer", None)
    if isinstance(inner, LayerwiseOptimizer):
        optimizer = inner
    required = "a kfinetune.optimizers.LayerwiseOptimizer"
    if groups is not None:
        required += (
            f" over the same groups ({groups.names}), which keeps state for"
            " every group from the start"
        )
    if not isinstance(optimizer, LayerwiseOptimizer):
        received = type(optimizer).__name__
    elif groups is not None and optimizer.groups.names != groups.names:
        received = f"LayerwiseOptimizer over {optimizer.groups.names}"
    else:
        return optimizer
    raise ValueError(
        f"{caller} needs the model compiled with {required}. "
        f"Received: optimizer={received}"
    )


def _layers(model):
    return [site.layer for site in walk.sites(model)]
