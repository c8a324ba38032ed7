"""`LoRA`: low-rank adaptation of a Dense, EinsumDense or Embedding layer."""

import math

import keras
import numpy as np
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
# How the factors start (PEFT's `init_lora_weights`): `"default"` (A
# He-uniform, B zero), `"gaussian"` (A normal with standard deviation
# 1 / rank, B zero), and the two that start from the base kernel and leave
# the residual in it, `"pissa"` (principal singular vectors) and `"olora"`
# (QR decomposition).
INITS = ("default", "gaussian", "pissa", "olora")
RESIDUAL_INITS = ("pissa", "olora")


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


def why_not_variant(layer, use_dora=False, init="default"):
    """Why `LoRA(layer, use_dora=..., init=...)` cannot be built, as
    `(argument, reason)`, or `None` when it can. Checked for a layer
    `why_not_wrappable` accepts."""
    base = layer
    chain = []
    while isinstance(base, LoRA):
        chain.append(base)
        base = base.layer
    quantized = getattr(base, "quantization_mode", None)
    for argument, wanted, value in (
        ("use_dora", use_dora, "True"),
        ("init", init in RESIDUAL_INITS, repr(init)),
    ):
        if not wanted:
            continue
        if quantized:
            what = (
                "DoRA normalises the columns of the kernel"
                if argument == "use_dora"
                else f"{init} subtracts its initial update from the kernel"
            )
            return argument, (
                f"{base.name!r} is quantized ({quantized}) and {what}, "
                "which an integer kernel cannot take exactly; LoRA, rsLoRA "
                "and LoRA+ train over quantized layers"
            )
        if isinstance(base, keras.layers.Embedding):
            return argument, (
                f"{argument}={value} is for Dense and EinsumDense "
                f"layers, and {base.name!r} is an Embedding"
            )
    if use_dora and isinstance(base, keras.layers.EinsumDense):
        _, kernel, output = einsum.parts(base.equation)
        _, b_axes = einsum.kernel_axes(base.equation)
        if not output.endswith("".join(kernel[i] for i in b_axes)):
            return "use_dora", (
                f"the output features of {base.name!r} "
                f"({base.equation!r}) are not the last axes of its output"
            )
    if use_dora and chain:
        return "use_dora", (
            f"{base.name!r} already has a LoRA ({chain[0].name!r}); DoRA "
            "normalises the whole kernel, so it cannot share a layer with "
            "another LoRA"
        )
    if any(w.use_dora for w in chain):
        return "use_dora", (
            f"{base.name!r} already has a DoRA ({chain[0].name!r}), which "
            "cannot share its layer with another LoRA"
        )
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
        alpha: scale numerator; the update is scaled by `alpha / rank`
            (by `alpha / sqrt(rank)` with `use_rslora`). Defaults to
            `rank` (scale 1).
        dropout: dropout rate on the input of the low-rank path, in
            `[0, 1)`. Not used for `Embedding`. Defaults to `0.0`.
        use_rslora: rank-stabilised LoRA (Kalajdzievski, 2023): scale the
            update by `alpha / sqrt(rank)`, so that higher ranks do not
            learn more slowly. Defaults to `False`.
        use_dora: weight-decomposed LoRA (DoRA, Liu et al., 2024), as
            PEFT's `use_dora`: a trainable magnitude `m` per output unit
            (`lora_magnitude`, shaped as the kernel's output axes) starts
            at the column norms of the kernel, and the layer computes
            `m / ||W + s·A·B|| * (x·(W + s·A·B))`, the norm taken over
            the kernel's input axes for each output unit (for an
            attention `EinsumDense`, that of PyTorch's `(out, in)` weight
            row). As in PEFT, the norm is treated as a constant (no
            gradient flows through it) and the product is computed in
            factored form: `x·W + (m/||·|| - 1)·dropout(x)·W +
            (m/||·||)·s·dropout(x)·A·B`. Dense and EinsumDense only, not
            over quantized layers, and not together with another LoRA on
            the same layer. Defaults to `False`.
        init: how `A` and `B` start, PEFT's `init_lora_weights`:
            `"default"` (`A` He-uniform, `B` zero), `"gaussian"` (`A`
            normal with standard deviation `1 / rank`, `B` zero),
            `"pissa"` (Meng et al., 2024: `s·A·B` is the part of the
            kernel along its `rank` principal singular vectors, `A =
            U_r·sqrt(S_r / s)`, `B = sqrt(S_r / s)·V_r^T`) or `"olora"`
            (Büyükakyüz, 2024: `A` and `B` from the QR decomposition of
            the kernel). `"pissa"` and `"olora"` subtract `s·A·B` from the
            kernel when the layer is built, so the output is unchanged:
            the wrapped layer then holds the *residual*, and the initial
            factors are kept (`lora_a_init`, `lora_b_init`, frozen) so that
            a disabled wrapper still computes the original layer and
            `release()` puts the kernel back. Dense and EinsumDense only,
            not over quantized layers. Defaults to `"default"`.
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
        self,
        layer,
        rank,
        alpha=None,
        dropout=0.0,
        use_rslora=False,
        use_dora=False,
        init="default",
        merged=False,
        **kwargs,
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
        checks.boolean("use_rslora", use_rslora)
        checks.boolean("use_dora", use_dora)
        checks.one_of("init", init, INITS)
        refused = why_not_variant(layer, use_dora, init)
        if refused:
            argument, reason = refused
            value = use_dora if argument == "use_dora" else init
            raise ValueError(
                f"LoRA cannot wrap {layer.name!r} with this option: "
                f"{reason}. Received: {argument}={value!r}"
            )
        super().__init__(layer, **kwargs)
        self.rank = rank
        self.alpha = rank if alpha is None else alpha
        self.dropout = dropout
        self.use_rslora = use_rslora
        self.use_dora = use_dora
        self.init = init
        self.scale = scale_of(self.alpha, rank, use_rslora)
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
        if embedding:
            initializer = "zeros"
        elif self.init == "gaussian":
            # PEFT's `init_lora_weights="gaussian"`.
            initializer = keras.initializers.RandomNormal(
                stddev=1.0 / self.rank
            )
        else:
            initializer = keras.initializers.HeUniform()
        self.lora_a = self.add_weight(
            name="lora_a", shape=(*a_in, self.rank), initializer=initializer
        )
        self.lora_b = self.add_weight(
            name="lora_b",
            shape=(self.rank, *b_out),
            initializer=keras.initializers.RandomNormal()
            if embedding
            else "zeros",
        )
        if self.init in RESIDUAL_INITS:
            self.lora_a_init = self.add_weight(
                name="lora_a_init",
                shape=(*a_in, self.rank),
                initializer="zeros",
                trainable=False,
            )
            self.lora_b_init = self.add_weight(
                name="lora_b_init",
                shape=(self.rank, *b_out),
                initializer="zeros",
                trainable=False,
            )
            self._initialise_from_kernel()
        if self.use_dora:
            self.lora_magnitude = self.add_weight(
                name="lora_magnitude", shape=b_out, initializer="ones"
            )
            # The column norms of the kernel when merged: unmerging
            # divides by the magnitude and multiplies by them again.
            self.merged_norm = self.add_weight(
                name="merged_norm",
                shape=b_out,
                initializer="ones",
                trainable=False,
            )
            self.lora_magnitude.assign(
                ops.reshape(self._column_norm(self.delta()), b_out)
            )
        self.built = True

    def _kernel_matrix(self, kernel):
        """The kernel as a `(d_in, d_out)` NumPy float64 matrix, and the
        function that turns such a matrix back into the kernel's shape."""
        kernel = np.asarray(ops.convert_to_numpy(kernel), "float64")
        a_axes, b_axes = self._axes()
        order = [*a_axes, *b_axes]
        moved = np.transpose(kernel, order)
        matrix = np.reshape(moved, (_prod(moved.shape[: len(a_axes)]), -1))

        def back(value):
            value = np.reshape(value, moved.shape)
            return np.transpose(value, np.argsort(order))

        return matrix, back

    def _axes(self):
        base = self.base_layer
        if isinstance(base, keras.layers.EinsumDense):
            return einsum.kernel_axes(base.equation)
        return [0], [1]

    def _initialise_from_kernel(self):
        """PiSSA or OLoRA: `A` and `B` from the kernel (as PEFT's
        `pissa_init` and `olora_init`, in Keras's `(in, out)` layout), and
        the kernel replaced by the residual `W - s·A·B`."""
        matrix, back = self._kernel_matrix(self.kernel)
        r, scale = self.rank, self.scale
        if self.init == "pissa":
            u, singular, vh = np.linalg.svd(matrix, full_matrices=False)
            root = np.sqrt(singular[:r] / scale)
            a = u[:, :r] * root
            b = root[:, None] * vh[:r]
        else:
            # PEFT factors PyTorch's `(out, in)` weight: Q (out, r) is B,
            # R (r, in) is A.
            q, upper = np.linalg.qr(matrix.T)
            a, b = upper[:r].T, q[:, :r].T
        residual = matrix - scale * (a @ b)
        for variable, value in (
            (self.lora_a, a),
            (self.lora_b, b),
            (self.lora_a_init, a),
            (self.lora_b_init, b),
        ):
            variable.assign(np.reshape(value, variable.shape))
        self.kernel.assign(back(residual).astype(self.kernel.dtype))

    def release(self):
        """Puts the initial update of a PiSSA or OLoRA adapter back into
        the kernel, which then holds the original weight again (no-op for
        the other inits and when merged: a merged kernel holds the
        adapter's whole weight). `kfinetune.peft.delete` calls it."""
        if self.init in RESIDUAL_INITS and not self.merged:
            self.kernel.assign(
                self.kernel + self._product(self.lora_a_init, self.lora_b_init)
            )

    def _column_norm(self, delta):
        """`||W + delta||` over the kernel's input axes, one per output
        unit, with the kernel's shape (size 1 on the input axes)."""
        weight = ops.cast(self.kernel, "float32") + ops.cast(delta, "float32")
        a_axes, _ = self._axes()
        return ops.sqrt(
            ops.sum(ops.square(weight), axis=tuple(a_axes), keepdims=True)
        )

    def pre_activation(self, inputs, training=None):
        """The base layer's output before its activation, plus the update
        of every enabled, unmerged LoRA in the chain."""
        if isinstance(self.layer, LoRA):
            x = self.layer.pre_activation(inputs, training)
        else:
            x = _base_pre_activation(self.layer, inputs)
        if self.merged:
            return x
        if not self.enabled:
            if self.init in RESIDUAL_INITS:
                # The kernel holds the residual: add the initial update
                # back, so that a disabled adapter computes the original
                # layer.
                x = x + self.scale * self._apply_factors(
                    inputs, self.lora_a_init, self.lora_b_init
                )
            return x
        if self.use_dora:
            return self._dora(x, inputs, training)
        return x + self.scale * self._low_rank(inputs, training)

    def _dora(self, x, inputs, training):
        """`x` plus DoRA's correction, as PEFT's `DoraLinearLayer`:
        `(m / n - 1)·dropout(inputs)·W + (m / n)·s·dropout(inputs)·A·B`,
        `n` the column norms of `W + s·A·B`, held constant."""
        base = self.base_layer
        delta = ops.stop_gradient(self.delta())
        norm = ops.stop_gradient(self._column_norm(delta))
        factor = self.lora_magnitude / ops.reshape(norm, self.lora_b.shape[1:])
        factor = ops.cast(factor, x.dtype)
        dropped = self._dropout_layer(inputs, training=training)
        if self.dropout == 0:
            # The base output without its bias (PEFT reuses it too).
            base_out = x if base.bias is None else x - base.bias
        elif isinstance(base, keras.layers.EinsumDense):
            base_out = ops.einsum(base.equation, dropped, base.kernel)
        else:
            base_out = ops.matmul(dropped, base.kernel)
        low_rank = self._apply_factors(dropped, self.lora_a, self.lora_b)
        return x + (factor - 1) * base_out + factor * self.scale * low_rank

    def _low_rank(self, inputs, training):
        base = self.base_layer
        if isinstance(base, keras.layers.Embedding):
            return ops.matmul(
                ops.take(self.lora_a, inputs, axis=0), self.lora_b
            )
        x = self._dropout_layer(inputs, training=training)
        return self._apply_factors(x, self.lora_a, self.lora_b)

    def _apply_factors(self, x, a, b):
        """`x·a·b` for a Dense or EinsumDense base, in factored form."""
        base = self.base_layer
        if isinstance(base, keras.layers.EinsumDense):
            eq = einsum.low_rank_equations(base.equation)
            return ops.einsum(eq["up"], ops.einsum(eq["down"], x, a), b)
        return ops.matmul(ops.matmul(x, a), b)

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
        """`s · A · B` in the base kernel's shape (`s` the scale)."""
        return self._product(self.lora_a, self.lora_b)

    def _product(self, a, b):
        base = self.base_layer
        if isinstance(base, keras.layers.EinsumDense):
            equation = einsum.low_rank_equations(base.equation)["delta"]
            product = ops.einsum(equation, a, b)
        else:
            product = ops.matmul(a, b)
        return self.scale * ops.cast(product, self.kernel.dtype)

    def merged_kernel(self):
        """The kernel with the update folded in: `W + s·A·B`, or for DoRA
        `m * (W + s·A·B) / ||W + s·A·B||` (the norm per output unit)."""
        delta = self.delta()
        weight = self.kernel + delta
        if not self.use_dora:
            return weight
        factor = self._magnitude() / self._column_norm(delta)
        return ops.cast(weight * factor, self.kernel.dtype)

    def _magnitude(self):
        """`m` with the kernel's rank (size 1 on the input axes)."""
        a_axes, _ = self._axes()
        shape = [
            1 if i in a_axes else size
            for i, size in enumerate(self.kernel.shape)
        ]
        return ops.reshape(self.lora_magnitude, shape)

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
            if self.use_dora:
                self.merged_norm.assign(
                    ops.reshape(
                        self._column_norm(self.delta()),
                        self.merged_norm.shape,
                    )
                )
            self.kernel.assign(self.merged_kernel())
            self.merged = True

    def unmerge(self):
        """Takes a merged update out of the base kernel (no-op when
        unmerged). For DoRA: `W = merged · ||W + s·A·B|| / m - s·A·B`,
        with the norms recorded when it merged."""
        if self.merged:
            weight = self.kernel
            if self.use_dora:
                norm = ops.reshape(self.merged_norm, self._magnitude().shape)
                weight = weight * (norm / self._magnitude())
            self.kernel.assign(weight - self.delta())
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
            "use_rslora": self.use_rslora,
            "use_dora": self.use_dora,
            "init": self.init,
            "merged": self.merged,
        }


def scale_of(alpha, rank, use_rslora):
    """The update's scale: `alpha / rank`, or `alpha / sqrt(rank)` for
    rsLoRA."""
    return alpha / (math.sqrt(rank) if use_rslora else rank)


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
