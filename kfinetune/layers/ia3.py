"""`IA3`: learned rescaling of a layer's output or input features."""

import keras
from keras import ops

from kfinetune import checks
from kfinetune.layers import einsum

POSITIONS = ("output", "input")
SUPPORTED = (keras.layers.Dense, keras.layers.EinsumDense)


@keras.saving.register_keras_serializable(package="kfinetune")
class IA3(keras.layers.Wrapper):
    """IA3 (Liu et al., 2022): a learned vector that rescales features.

    `position="output"` multiplies the wrapped layer's output features by
    `ia3_scale` (IA3 on attention keys and values); `position="input"`
    multiplies its input features (IA3 on the feed-forward: scaling the
    input of the block's second projection is scaling the intermediate
    activation). The vector starts at ones, so the output is unchanged until
    training moves it. `merge()` folds the vector into the kernel (and bias)
    for inference at the base layer's cost; `unmerge()` takes it out.

    Args:
        layer: a built `keras.layers.Dense` or `keras.layers.EinsumDense`
            (its output features are the kernel's last axes, its input
            features the first).
        position: `"output"` or `"input"`. Defaults to `"output"`.
        merged: whether the kernel already holds the scaling (set by
            `get_config` of a merged layer). Defaults to `False`.
        **kwargs: base layer arguments such as `name`.

    Example:

    ```python
    x = kfinetune.layers.IA3(keras.layers.Dense(64))(keras.Input((32,)))
    ```
    """

    def __init__(self, layer, position="output", merged=False, **kwargs):
        if not isinstance(layer, SUPPORTED):
            raise ValueError(
                "IA3 wraps Dense or EinsumDense layers. "
                f"Received: layer={layer.name!r} ({type(layer).__name__})"
            )
        checks.one_of("position", position, POSITIONS)
        super().__init__(layer, **kwargs)
        self.position = position
        self.merged = merged
        self.enabled = True

    def _scaled_axes(self):
        """Kernel axes the vector scales, and the vector's shape."""
        kernel = self.layer.kernel
        if isinstance(self.layer, keras.layers.EinsumDense):
            # The kernel as a matrix, as LoRA treats it: `a_axes` are the
            # input features, `b_axes` the output features.
            inputs, outputs = einsum.kernel_axes(self.layer.equation)
            axes = outputs if self.position == "output" else inputs
        else:
            axes = [1] if self.position == "output" else [0]
        return axes, tuple(kernel.shape[i] for i in axes)

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        activation = getattr(self.layer, "activation", None)
        if self.position == "output" and activation not in (
            None,
            keras.activations.linear,
        ):
            raise ValueError(
                "IA3 on the output of a layer with an activation would scale "
                "after it; use position='input' on the next layer. "
                f"Received: layer={self.layer.name!r}"
            )
        self.layer.trainable = False
        _, shape = self._scaled_axes()
        self.ia3_scale = self.add_weight(
            name="ia3_scale", shape=shape, initializer="ones"
        )
        self.built = True

    def call(self, inputs, training=None):
        if self.merged or not self.enabled:
            return self.layer(inputs, training=training)
        if self.position == "input":
            # Input features are the trailing axes of the input.
            return self.layer(inputs * self.ia3_scale, training=training)
        return self.layer(inputs, training=training) * self.ia3_scale

    def _kernel_factor(self):
        axes, shape = self._scaled_axes()
        rank = len(self.layer.kernel.shape)
        # Broadcast the vector over the kernel's other axes.
        full = [1] * rank
        for axis, size in zip(axes, shape, strict=True):
            full[axis] = size
        return ops.reshape(self.ia3_scale, full)

    def merge(self):
        """Folds the scaling into the kernel (and, for output scaling, the
        bias). A model's traced functions must be reset afterwards
        (`kfinetune.peft.merge` does)."""
        if self.merged:
            return
        self.layer.kernel.assign(self.layer.kernel * self._kernel_factor())
        if self.position == "output" and self.layer.bias is not None:
            self.layer.bias.assign(self.layer.bias * self.ia3_scale)
        self.merged = True

    def unmerge(self):
        """Takes a merged scaling out of the kernel again."""
        if not self.merged:
            return
        self.layer.kernel.assign(self.layer.kernel / self._kernel_factor())
        if self.position == "output" and self.layer.bias is not None:
            self.layer.bias.assign(self.layer.bias / self.ia3_scale)
        self.merged = False

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "position": self.position,
            "merged": self.merged,
        }
