"""`Mixup`: mixup of hidden features, and `MixupLoss`, its mixed targets."""

import keras
from keras import ops

from kfinetune import checks

# Marsaglia-Tsang candidates drawn at once: each is accepted with
# probability above 0.95, so all 32 fail with probability below 1e-40.
_GAMMA_CANDIDATES = 32


def _log_gamma_sample(alpha, seed):
    """`log X` for one `X ~ Gamma(alpha, 1)`, from uniform and normal draws.

    Keras's TensorFlow `keras.random.beta` draws gammas with an op XLA
    cannot compile (`StatelessRandomGammaV3`), so training under
    `jit_compile=True` needs this: Marsaglia and Tsang's method on
    `alpha + 1` with a fixed number of candidates (no loop), then the boost
    `X(alpha) = X(alpha + 1) · U^(1 / alpha)`, taken in logs so that a tiny
    `alpha` does not underflow to zero.
    """
    d = alpha + 1.0 - 1.0 / 3.0
    c = 1.0 / ops.sqrt(9.0 * d)
    x = keras.random.normal((_GAMMA_CANDIDATES,), seed=seed)
    u = keras.random.uniform((_GAMMA_CANDIDATES,), seed=seed)
    v = (1.0 + c * x) ** 3
    safe_v = ops.maximum(v, 1e-12)
    accept = ops.logical_and(
        v > 0,
        ops.log(u) < 0.5 * x**2 + d - d * safe_v + d * ops.log(safe_v),
    )
    first = ops.argmax(ops.cast(accept, "int32"))
    log_gamma = ops.log(d) + ops.log(ops.take(safe_v, first))
    boost = keras.random.uniform((), minval=1e-30, maxval=1.0, seed=seed)
    return log_gamma + ops.log(boost) / alpha


@keras.saving.register_keras_serializable(package="kfinetune")
class Mixup(keras.layers.Layer):
    """Mixup of hidden features (Zhang et al., 2018), active in training.

    In training, each example of the batch is mixed with the example before
    it (the batch rolled by one, `ops.roll(x, 1, axis=0)`):
    `λ · x + (1 − λ) · roll(x)`, with one `λ ~ Beta(alpha, alpha)` per batch
    drawn from the layer's seed. Shuffle the data so that neighbours in a
    batch are random pairs. Outside training the layer is the identity.

    The targets must be mixed the same way, which a layer cannot do: the
    layer keeps the `λ` of its last call in the non-trainable variable
    `mixup_lambda` (1 outside training), and `kfinetune.layers.MixupLoss`
    reads it. Put the layer after the pooled output of a text encoder
    (mixing token ids would be meaningless), as in the example, which
    works on every family of `kfinetune.encoders`.

    Args:
        alpha: the Beta distribution's concentration, positive. Small values
            (0.1 to 0.4) give `λ` near 0 or 1, i.e. mild mixing; 1 mixes
            uniformly. Defaults to `0.2`.
        seed: an integer seed for the `λ` draws, or `None` for a random
            one. Defaults to `None`.
        **kwargs: base layer arguments such as `name`.

    Input shape:
        `(batch, ...)`.

    Output shape:
        The input shape.

    Example:

    ```python
    classifier = kfinetune.presets.text_classifier(num_classes=2)
    backbone = classifier.backbone
    # The pooler's output, or the first token's for a family without one.
    pooled = kfinetune.encoders.outputs(backbone, backbone.input)[
        "pooled_output"
    ]
    mixup = kfinetune.layers.Mixup(alpha=0.2, seed=0, name="mixup")
    logits = keras.layers.Dense(2)(mixup(pooled))
    model = keras.Model(backbone.input, logits)
    model.compile(
        optimizer=keras.optimizers.AdamW(5e-5),
        loss=kfinetune.layers.MixupLoss(
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            mixup,
        ),
    )
    model.fit(data.train.batch(32).map(classifier.preprocessor))
    ```
    """

    def __init__(self, alpha=0.2, seed=None, **kwargs):
        checks.positive_number("alpha", alpha)
        if seed is not None:
            checks.non_negative_integer("seed", seed)
        super().__init__(**kwargs)
        self.alpha = alpha
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        self.mixup_lambda = self.add_weight(
            shape=(),
            initializer="ones",
            trainable=False,
            dtype="float32",
            # Every replica draws the same λ (the seed generator's state
            # is mirrored); the first replica's write stands for all.
            aggregation="only_first_replica",
            name="mixup_lambda",
        )

    def call(self, inputs, training=False):
        if not training:
            self.mixup_lambda.assign(1.0)
            return inputs
        log_x = _log_gamma_sample(self.alpha, self.seed_generator)
        log_y = _log_gamma_sample(self.alpha, self.seed_generator)
        # X / (X + Y) for the two gammas, stable for a tiny `alpha`.
        lam = ops.sigmoid(log_x - log_y)
        self.mixup_lambda.assign(lam)
        lam = ops.cast(lam, inputs.dtype)
        return lam * inputs + (1.0 - lam) * ops.roll(inputs, 1, axis=0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kfinetune")
class MixupLoss(keras.losses.Loss):
    """The loss of mixed targets for a `Mixup` layer.

    Computes `λ · L(y, p) + (1 − λ) · L(roll(y), p)` per example, where `λ`
    is the last value the `mixup` layer drew (`mixup.mixup_lambda`) and
    `roll(y)` is the batch of targets rolled by one, as the layer rolls the
    features. Outside training the layer sets `λ = 1`, so `evaluate`
    reports the plain loss. Works with sparse or one-hot targets.

    A loss cannot hold a reference to a layer across saving: when
    `keras.models.load_model` recompiles a saved model, this loss is
    rebuilt with a new `Mixup` layer of the same config that is not in the
    model, whose `λ` stays 1 (the plain loss). That is right for
    `evaluate`; to train the loaded model with mixup again, compile it with
    `MixupLoss(loss, model.get_layer(name))`.

    Args:
        loss: the per-example loss to mix, a `keras.losses.Loss`, a loss
            function or a loss name.
        mixup: the `kfinetune.layers.Mixup` layer of the model.
        reduction: see `keras.losses.Loss`. Defaults to
            `"sum_over_batch_size"`.
        name: the loss name. Defaults to `"mixup_loss"`.
        dtype: see `keras.losses.Loss`. Defaults to `None`.

    Example:

    ```python
    mixup = model.get_layer("mixup")
    model.compile(
        optimizer="adam",
        loss=kfinetune.layers.MixupLoss(
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            mixup,
        ),
        metrics=["accuracy"],
    )
    ```
    """

    def __init__(
        self,
        loss,
        mixup,
        reduction="sum_over_batch_size",
        name="mixup_loss",
        dtype=None,
    ):
        if not isinstance(mixup, Mixup):
            raise ValueError(
                "`mixup` must be the model's `kfinetune.layers.Mixup` "
                f"layer. Received: mixup={mixup!r}"
            )
        try:
            resolved = keras.losses.get(loss)
        except (ValueError, TypeError) as error:
            raise ValueError(
                "`loss` must be a `keras.losses.Loss`, a loss function or a "
                f"loss name. Received: loss={loss!r}"
            ) from error
        if resolved is None or not callable(resolved):
            raise ValueError(
                "`loss` must be a `keras.losses.Loss`, a loss function or a "
                f"loss name. Received: loss={loss!r}"
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.loss = resolved
        self.mixup = mixup

    def _per_example(self, y_true, y_pred):
        if isinstance(self.loss, keras.losses.Loss):
            return self.loss.call(y_true, y_pred)
        return self.loss(y_true, y_pred)

    def call(self, y_true, y_pred):
        if not self.mixup.built:
            # A rebuilt loss whose layer never ran: no mixing (λ = 1).
            return self._per_example(y_true, y_pred)
        lam = ops.cast(self.mixup.mixup_lambda, y_pred.dtype)
        own = self._per_example(y_true, y_pred)
        rolled = self._per_example(ops.roll(y_true, 1, axis=0), y_pred)
        return lam * own + (1.0 - lam) * rolled

    def get_config(self):
        return {
            **super().get_config(),
            "loss": keras.saving.serialize_keras_object(self.loss),
            # The layer's config only: a serialized layer would be rebuilt
            # built, and `load_model` would then look for its weights.
            "mixup": self.mixup.get_config(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        config["mixup"] = Mixup.from_config(config["mixup"])
        return cls(**config)
