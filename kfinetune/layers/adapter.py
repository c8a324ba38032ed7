"""`Adapter`: a bottleneck adapter, `h + W_up · σ(W_down · h)`."""

import keras
from keras import ops

from kfinetune import checks


@keras.saving.register_keras_serializable(package="kfinetune")
class Adapter(keras.layers.Layer):
    """Bottleneck adapter (Houlsby et al., 2019): `h + W_up · σ(W_down · h)`.

    Projects the last axis down to `size`, applies `activation`, projects
    back up and adds the input. `W_up` and its bias start at zero, so the
    layer is the identity until training moves them.

    Args:
        size: the bottleneck width, a positive integer.
        activation: the activation between the projections. Defaults to
            `"relu"`.
        init_scale: standard deviation of the down-projection's initial
            (truncated normal) weights. Defaults to `1e-2`.
        residual: add the input to the output. `False` returns only the
            adapter's update (for a parallel adapter). Defaults to `True`.
        **kwargs: base layer arguments such as `name`.

    Input shape:
        `(..., d)`.

    Output shape:
        `(..., d)`.

    Example:

    ```python
    inputs = keras.Input((16, 64))
    x = kfinetune.layers.Adapter(size=8)(inputs)
    model = keras.Model(inputs, x)
    ```
    """

    def __init__(
        self,
        size,
        activation="relu",
        init_scale=1e-2,
        residual=True,
        **kwargs,
    ):
        checks.positive_integer("size", size)
        checks.positive_number("init_scale", init_scale)
        super().__init__(**kwargs)
        self.size = size
        self.activation = keras.activations.get(activation)
        self.init_scale = init_scale
        self.residual = residual

    def build(self, input_shape):
        dim = input_shape[-1]
        self.adapter_down_kernel = self.add_weight(
            name="adapter_down_kernel",
            shape=(dim, self.size),
            initializer=keras.initializers.TruncatedNormal(
                stddev=self.init_scale
            ),
        )
        self.adapter_down_bias = self.add_weight(
            name="adapter_down_bias", shape=(self.size,), initializer="zeros"
        )
        self.adapter_up_kernel = self.add_weight(
            name="adapter_up_kernel",
            shape=(self.size, dim),
            initializer="zeros",
        )
        self.adapter_up_bias = self.add_weight(
            name="adapter_up_bias", shape=(dim,), initializer="zeros"
        )

    def call(self, inputs):
        h = (
            ops.matmul(inputs, self.adapter_down_kernel)
            + self.adapter_down_bias
        )
        h = self.activation(h)
        update = ops.matmul(h, self.adapter_up_kernel) + self.adapter_up_bias
        if self.residual:
            return inputs + update
        return update

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "activation": keras.activations.serialize(self.activation),
            "init_scale": self.init_scale,
            "residual": self.residual,
        }
