"""`LoRA`: low-rank adaptation of a Dense, EinsumDense or Embedding layer."""

import keras
from keras import ops

from kfinetune import checks
from kfinetune.layers import einsum

WRAPPABLE = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Embedding,
)
# The quantization modes of a frozen base layer LoRA trains over: their
# kernels are integer variables that do not train. (float8 layers train
# their scales with the kernel; GPTQ and AWQ are calibrated per model.)
QUANTIZED_MODES = ("int8", "int4")


def why_not_wrappable(layer):
    """Why `LoRA` cannot wrap `layer`, or `None` when it can."""
    if isinstance(layer, LoRA):
        return None
    if not isinstance(layer, WRAPPABLE):
        return f"{type(layer).__name__} is not Dense, EinsumDense or Embedding"
    mode = getattr(layer, "quantization_mode", None)
    if mode and (
        mode not in QUANTIZED_MODES or isinstance(layer, keras.layers.Embedding)
    ):
        kind = type(layer).__name__
        return (
            f"quantized ({mode}); LoRA wraps Dense and EinsumDense layers "
            f"quantized to {' or '.join(QUANTIZED_MODES)}, not a {mode} {kind}"
        )
    if getattr(layer, "lora_enabled", False):
        return "Keras's built-in LoRA is enabled on it"
    return None


@keras.saving.register_keras_serializable(package="kfinetune")
class LoRA(keras.layers.Wrapper):
    """Low-rank adaptation (LoRA) of a `Dense`, `EinsumDense` or `Embedding`.

    Computes `layer(x) + (alpha / rank) * dropout(x) · A · B` in factored form
    (before the layer's activation, when it has one):
    the layer's kernel `W` is never combined with `A · B` during training, so
    dropout applies to the low-rank path and the kernel gradient is never
    formed. Treating the kernel as a `(d_in, d_out)` matrix, `A` is
    `d_in × rank` and `B` is `rank × d_out` (also for `EinsumDense` kernels
    with more axes, such as attention projections). `B` starts at zero, so
    the wrapped layer's output is unchanged until training moves it.

    The wrapped layer is frozen: only `lora_a` and `lora_b` train.
    `merge()` folds `A · B` into the kernel for inference at the base
    layer's cost; `unmerge()` takes it out again. A `LoRA` may wrap another
    `LoRA` (two named adapters on one layer); `enabled = False` makes a
    wrapper pass its input through to the layer it wraps unchanged.

    The wrapped layer may be quantized to int8 or int4 (QLoRA-style, with
    Keras's own `layer.quantize("int8")` or `model.quantize("int8")`,
    before wrapping): its integer kernel and scale stay frozen and
    quantized, the base output is the quantized layer's own, and `A` and
    `B` train in float. Such an update cannot be merged (`merge()` raises
    `ValueError`: folding it in would re-quantize the kernel and lose the
    update to rounding). Quantizing the wrapped layer after wrapping is an
    error, as is calling `quantize` on the wrapper.

    Args:
        layer: a `keras.layers.Dense`, `keras.layers.EinsumDense` or
            `keras.layers.Embedding` instance, or another `LoRA`.
        rank: rank of the update, a positive integer no larger than
            `min(d_in, d_out)`.
        alpha: scale numerator; the update is scaled by `alpha / rank`.
            Defaults to `rank` (scale 1).
        dropout: dropout rate on the input of the low-rank path, in
            `[0, 1)`. Not used for `Embedding`. Defaults to `0.0`.
        merged: whether the kernel already holds the update (set by
            `get_config` of a merged layer). Defaults to `False`.
        **kwargs: base layer arguments such as `name`.

    Input shape:
        That of the wrapped layer.

    Output shape:
        That of the wrapped layer.

    Example:

    ```python
    inputs = keras.Input((16,))
    x = kfinetune.layers.LoRA(keras.layers.Dense(64), rank=4)(inputs)
    model = keras.Model(inputs, x)
    ```
    """

    def __init__(
        self, layer, rank, alpha=None, dropout=0.0, merged=False, **kwargs
    ):
        reason = why_not_wrappable(layer)
        if reason:
            raise ValueError(
                f"LoRA cannot wrap this layer: {reason}. "
                f"Received: layer={layer.name!r} ({type(layer).__name__})"
            )
        checks.positive_integer("rank", rank)
        if alpha is not None:
            checks.positive_number("alpha", alpha)
        checks.in_range("dropout", dropout, 0, 1)
        super().__init__(layer, **kwargs)
        self.rank = rank
        self.alpha = rank if alpha is None else alpha
        self.dropout = dropout
        self.scale = self.alpha / rank
        # A merged layer saved to `.keras` reloads merged: its kernel file
        # holds the folded update.
        self.merged = merged
        self.enabled = True
        self._dropout_layer = keras.layers.Dropout(dropout)
        # Checked in `call`: `model.quantize` quantizes the layers inside a
        # wrapper (it only visits layers without sublayers).
        self.base_quantization_mode = self.base_layer.quantization_mode

    @property
    def base_layer(self):
        """The innermost wrapped Dense, EinsumDense or Embedding layer."""
        layer = self.layer
        while isinstance(layer, LoRA):
            layer = layer.layer
        return layer

    @property
    def quantized(self):
        """Whether the wrapped layer is quantized (int8 or int4)."""
        return self.base_quantization_mode is not None

    @property
    def kernel(self):
        """The base layer's kernel (or embedding table)."""
        base = self.base_layer
        if isinstance(base, keras.layers.Embedding):
            return base.embeddings
        return base.kernel

    def _shapes(self):
        # For int4 layers, `kernel` is the unpacked integer kernel.
        kernel_shape = tuple(self.kernel.shape)
        base = self.base_layer
        if isinstance(base, keras.layers.EinsumDense):
            eq = einsum.low_rank_equations(base.equation)
            a_in = tuple(kernel_shape[i] for i in eq["a_axes"])
            b_out = tuple(kernel_shape[i] for i in eq["b_axes"])
            return a_in, b_out
        return kernel_shape[:1], kernel_shape[1:]

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        a_in, b_out = self._shapes()
        d_in, d_out = _prod(a_in), _prod(b_out)
        if self.rank > min(d_in, d_out):
            raise ValueError(
                f"`rank` must be at most min(d_in, d_out) = {min(d_in, d_out)} "
                f"for layer {self.base_layer.name!r} (d_in={d_in}, "
                f"d_out={d_out}). Received: rank={self.rank}"
            )
        # The wrapped layer's weights stay where they are; only A and B train.
        self.layer.trainable = False
        embedding = isinstance(self.base_layer, keras.layers.Embedding)
        # As PEFT: A random and B zero for projections; for embeddings the
        # table lookup replaces x·A, so A is zero and B random.
        self.lora_a = self.add_weight(
            name="lora_a",
            shape=(*a_in, self.rank),
            initializer="zeros"
            if embedding
            else keras.initializers.HeUniform(),
        )
        self.lora_b = self.add_weight(
            name="lora_b",
            shape=(self.rank, *b_out),
            initializer=keras.initializers.RandomNormal()
            if embedding
            else "zeros",
        )
        self.built = True

    def pre_activation(self, inputs, training=None):
        """The base layer's output before its activation, plus the update
        of every enabled, unmerged LoRA in the chain."""
        if isinstance(self.layer, LoRA):
            x = self.layer.pre_activation(inputs, training)
        else:
            x = _base_pre_activation(self.layer, inputs)
        if self.enabled and not self.merged:
            x = x + self.scale * self._low_rank(inputs, training)
        return x

    def _low_rank(self, inputs, training):
        base = self.base_layer
        if isinstance(base, keras.layers.Embedding):
            return ops.matmul(
                ops.take(self.lora_a, inputs, axis=0), self.lora_b
            )
        x = self._dropout_layer(inputs, training=training)
        if isinstance(base, keras.layers.EinsumDense):
            eq = einsum.low_rank_equations(base.equation)
            h = ops.einsum(eq["down"], x, self.lora_a)
            return ops.einsum(eq["up"], h, self.lora_b)
        return ops.matmul(ops.matmul(x, self.lora_a), self.lora_b)

    def call(self, inputs, training=None, reverse=False):
        base = self.base_layer
        if base.quantization_mode != self.base_quantization_mode:
            raise ValueError(
                f"The layer {base.name!r} inside LoRA {self.name!r} was "
                f"quantized ({base.quantization_mode}) after LoRA wrapped it "
                f"(then {self.base_quantization_mode}), so its kernel no "
                "longer matches what LoRA was applied to. Quantize the model "
                "first, then apply LoRA. "
                f"Received: quantization_mode={base.quantization_mode!r}"
            )
        if reverse:
            return self._reverse(inputs)
        if isinstance(base, keras.layers.Embedding):
            if inputs.dtype not in ("int32", "int64"):
                inputs = ops.cast(inputs, "int32")
        x = self.pre_activation(inputs, training)
        activation = getattr(base, "activation", None)
        if activation is not None:
            x = activation(x)
        return ops.cast(x, self.compute_dtype)

    def _reverse(self, inputs):
        """A `ReversibleEmbedding`'s projection back to the vocabulary.

        With tied weights it multiplies by the adapted table, base plus
        every enabled, unmerged update of the chain, as the lookup does:
        one table, one update, so merging changes neither use. An untied
        projection is a weight of its own, which LoRA does not adapt.
        """
        base = self.base_layer
        if not isinstance(base, keras.layers.ReversibleEmbedding):
            raise ValueError(
                f"LoRA {self.name!r} wraps {type(base).__name__} "
                f"{base.name!r}, which has no reverse projection; only a "
                "`ReversibleEmbedding` does. Received: reverse=True"
            )
        if not base.tie_weights:
            return base(inputs, reverse=True)
        table = base.embeddings
        layer = self
        while isinstance(layer, LoRA):
            if layer.enabled and not layer.merged:
                table = table + ops.cast(layer.delta(), table.dtype)
            layer = layer.layer
        kernel = ops.transpose(table)
        if base.reverse_dtype is not None:
            inputs = ops.cast(inputs, base.reverse_dtype)
            kernel = ops.cast(kernel, base.reverse_dtype)
        else:
            kernel = ops.cast(kernel, inputs.dtype)
        logits = ops.matmul(inputs, kernel)
        if base.logit_soft_cap is not None:
            cap = base.logit_soft_cap
            logits = ops.multiply(ops.tanh(ops.divide(logits, cap)), cap)
        return logits

    def delta(self):
        """`(alpha / rank) · A · B` in the base kernel's shape."""
        base = self.base_layer
        if isinstance(base, keras.layers.EinsumDense):
            equation = einsum.low_rank_equations(base.equation)["delta"]
            product = ops.einsum(equation, self.lora_a, self.lora_b)
        else:
            product = ops.matmul(self.lora_a, self.lora_b)
        return self.scale * ops.cast(product, self.kernel.dtype)

    def merge(self):
        """Folds the update into the base kernel (no-op when merged).

        A model's traced predict / train functions keep running the old
        path: reset them afterwards (`kfinetune.peft.merge` does).

        Raises:
            ValueError: the wrapped layer is quantized.
        """
        if self.quantized:
            raise ValueError(
                f"LoRA {self.name!r} cannot merge into "
                f"{self.base_layer.name!r}: that layer is quantized "
                f"({self.base_quantization_mode}), and folding the float "
                "update into its integer kernel would re-quantize it and "
                "lose most of the update to rounding. Keep the adapter "
                "unmerged (it computes the update alongside the quantized "
                "layer), or apply it to a float copy of the model. "
                f"Received: quantization_mode={self.base_quantization_mode!r}"
            )
        if not self.merged:
            self.kernel.assign(self.kernel + self.delta())
            self.merged = True

    def unmerge(self):
        """Takes a merged update out of the base kernel (no-op when
        unmerged)."""
        if self.merged:
            self.kernel.assign(self.kernel - self.delta())
            self.merged = False

    def quantize(self, mode=None, type_check=True, config=None):
        """Refuses: quantize the model before applying LoRA.

        Raises:
            ValueError: always.
        """
        raise ValueError(
            f"LoRA {self.name!r} cannot be quantized: quantize the model "
            "(`model.quantize(...)`) before applying LoRA; the LoRA factors "
            "then train in float over the quantized layer. "
            f"Received: mode={mode!r}"
        )

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def get_config(self):
        return {
            **super().get_config(),
            "rank": self.rank,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "merged": self.merged,
        }


def _base_pre_activation(layer, inputs):
    if layer.quantization_mode is not None:
        return _quantized_pre_activation(layer, inputs)
    if isinstance(layer, keras.layers.Embedding):
        return ops.take(layer.embeddings, inputs, axis=0)
    if isinstance(layer, keras.layers.EinsumDense):
        x = ops.einsum(layer.equation, inputs, layer.kernel)
    else:
        x = ops.matmul(inputs, layer.kernel)
    if layer.bias is not None:
        x = x + layer.bias
    return x


def _quantized_pre_activation(layer, inputs):
    """A quantized layer's own output, before its activation.

    Keras's quantized Dense and EinsumDense compute with the integer kernel
    (and a custom gradient for their inputs) in their call; the activation
    is left out while it runs, so that the update adds before it.
    """
    activation = layer.activation
    if activation is None or activation is keras.activations.linear:
        return layer(inputs)
    layer.activation = None
    try:
        return layer(inputs)
    finally:
        layer.activation = activation


def _prod(shape):
    result = 1
    for size in shape:
        result *= size
    return result
