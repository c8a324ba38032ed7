"""Wrappers that place an `Adapter` after, or beside, an existing layer."""

import keras
from keras import ops

from kfinetune.layers.adapter import Adapter


@keras.saving.register_keras_serializable(package="kfinetune")
class AdapterWrapper(keras.layers.Wrapper):
    """Runs a layer, then a bottleneck adapter on its output.

    `kfinetune.peft.AdapterConfig` places these after the attention output
    projection and the feed-forward output of transformer encoders
    (Houlsby) or after the feed-forward output only (Pfeiffer), before the
    residual add and layer norm. With `parallel=True` the adapter instead
    reads the input that a `ParallelAdapterTap` attached to the feature
    axis, and adds its update to the layer's output (He et al., 2022).

    Args:
        layer: the wrapped layer.
        size: the adapter's bottleneck width.
        activation: the adapter's activation. Defaults to `"relu"`.
        init_scale: see `Adapter`. Defaults to `1e-2`.
        parallel: see above; the wrapped layer must then be a built `Dense`
            (or a `LoRA` or `IA3` around one). Defaults to `False`.
        **kwargs: base layer arguments such as `name`.

    Example:

    ```python
    dense = keras.layers.Dense(32)
    x = kfinetune.layers.AdapterWrapper(dense, size=8)(keras.Input((32,)))
    ```
    """

    def __init__(
        self,
        layer,
        size,
        activation="relu",
        init_scale=1e-2,
        parallel=False,
        **kwargs,
    ):
        super().__init__(layer, **kwargs)
        self.size = size
        self.activation = activation
        self.init_scale = init_scale
        self.parallel = parallel
        self.enabled = True
        self.adapter = Adapter(
            size,
            activation=activation,
            init_scale=init_scale,
            residual=not parallel,
            name="adapter",
        )

    def build(self, input_shape=None):
        if self.parallel:
            # The tap appended the block input to the features: the first
            # d_in features feed the wrapped Dense (kernel d_in × d), the
            # rest is the block input, of the block's width d.
            kernel_shape = _kernel_shape(self.layer)
            self.split = kernel_shape[0]
            self.adapter.build((*input_shape[:-1], kernel_shape[-1]))
        else:
            if not self.layer.built:
                self.layer.build(input_shape)
            self.adapter.build(self.layer.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs, training=None):
        if self.parallel:
            features = inputs[..., : self.split]
            block_input = inputs[..., self.split :]
            outputs = self.layer(features, training=training)
            if self.enabled:
                outputs = outputs + self.adapter(block_input)
            return outputs
        outputs = self.layer(inputs, training=training)
        if self.enabled:
            outputs = self.adapter(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        if self.parallel:
            input_shape = (*input_shape[:-1], self.split)
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "activation": self.activation,
            "init_scale": self.init_scale,
            "parallel": self.parallel,
        }


def _kernel_shape(layer):
    """The kernel shape of the Dense inside `layer` and the wrappers around
    it (an `IA3` has no kernel of its own)."""
    while getattr(layer, "kernel", None) is None and isinstance(
        layer, keras.layers.Wrapper
    ):
        layer = layer.layer
    return layer.kernel.shape


@keras.saving.register_keras_serializable(package="kfinetune")
class ParallelAdapterTap(keras.layers.Wrapper):
    """Appends a layer's input to its output on the last axis.

    The other half of a parallel adapter: placed on the first layer of a
    feed-forward block, it carries the block's input through to the
    `AdapterWrapper(parallel=True)` on the block's last layer. It has no
    weights.

    Args:
        layer: the wrapped layer.
        **kwargs: base layer arguments such as `name`.
    """

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        outputs = self.layer(inputs, training=training)
        inputs = ops.cast(inputs, outputs.dtype)
        return ops.concatenate([outputs, inputs], axis=-1)

    def compute_output_shape(self, input_shape):
        shape = self.layer.compute_output_shape(input_shape)
        if shape[-1] is None or input_shape[-1] is None:
            return (*shape[:-1], None)
        return (*shape[:-1], shape[-1] + input_shape[-1])
