"""`PrefixAttention`: multi-head attention with learned key/value prefixes."""

import math

import keras
import keras_hub
from keras import ops

from kfinetune import checks
from kfinetune import compat
from kfinetune.layers import einsum

# The attention layers whose computation `PrefixAttention` reproduces.
SUPPORTED = (keras.layers.MultiHeadAttention,)
# keras-hub's rotary, grouped-query decoder attention layers (Llama,
# Mistral, Qwen, Gemma), whose own key/value cache path `PrefixAttention`
# runs with the prefix in the cache. keras-hub does not export them: they
# are recognised by class name, subclasses included.
DECODER_ATTENTION = (
    "LlamaAttention",
    "CachedMistralAttention",
    "QwenAttention",
    "CachedGemmaAttention",
)
# A large negative logit for masked positions, representable in bfloat16
# and float16.
_MASKED = -3e4


def is_decoder_attention(layer):
    """Whether `layer` is one of keras-hub's rotary decoder attention
    layers (`DECODER_ATTENTION`)."""
    return any(cls.__name__ in DECODER_ATTENTION for cls in type(layer).__mro__)


# Why DeBERTa-v3's attention (keras-hub's `DisentangledSelfAttention`, not
# exported, so recognised by its class name) takes no prefix.
DISENTANGLED = (
    "DeBERTa-v3's disentangled attention scores every key by its content "
    "and by its relative position to the query (content-to-position and "
    "position-to-content terms), and learned prefix keys have no position: "
    "there is no score to give them"
)


def is_supported(layer):
    """Whether `PrefixAttention` wraps layers of `layer`'s kind."""
    return isinstance(layer, SUPPORTED) or is_decoder_attention(layer)


def why_not_wrappable(layer):
    """Why `PrefixAttention` cannot wrap `layer`, or `None` when it can."""
    if isinstance(layer, PrefixAttention):
        return None
    if is_decoder_attention(layer):
        return None if layer.built else "not built"
    if type(layer).__name__ == "DisentangledSelfAttention":
        return DISENTANGLED
    if not isinstance(layer, SUPPORTED):
        return f"{type(layer).__name__} is not a MultiHeadAttention"
    config = layer.get_config()
    if config.get("use_gate") or config.get("sliding_window"):
        return "a gated or sliding-window MultiHeadAttention"
    if layer.attention_axes not in (None, (1,), [1]):
        return f"attends over axes {layer.attention_axes}, not the sequence"
    if not layer.built:
        return "not built"
    return None


@keras.saving.register_keras_serializable(package="kfinetune")
class PrefixAttention(keras.layers.Wrapper):
    """Prefix tuning (Li and Liang, 2021) on a multi-head attention layer.

    Learned keys and values for `length` extra positions are prepended to
    the wrapped layer's projected keys and values (`[P_k; K]`, `[P_v; V]`),
    so every query also attends to the prefix. Attention masks are
    extended: every query may attend to the prefix, and positions the mask
    hides (padding, future tokens) stay hidden. The queries, outputs and
    sequence length are unchanged.

    With `reparameterize=True` the prefix is the output of a small MLP
    (`embedding → Dense(hidden, tanh) → Dense(keys and values)`), which
    trains more stably; `merge()` folds the MLP's output into plain prefix
    weights for inference and export, and `unmerge()` goes back to the MLP.
    Without it, the prefix keys and values are trained directly.

    Works for `keras.layers.MultiHeadAttention` (keras-hub BERT-family
    encoders) and `keras_hub.layers.CachedMultiHeadAttention` (keras-hub
    GPT-2-style decoders), with or without a key/value cache: the cache
    holds the real tokens only, and the prefix is prepended at every step.

    It also wraps the rotary, grouped-query attention layers of keras-hub's
    Llama, Mistral, Qwen and Gemma decoders (`DECODER_ATTENTION`). There the
    prefix lives in the layer's key/value cache space, as in Hugging Face
    PEFT: `num_key_value_heads` heads, keys taken as already rotated (the
    prefix is not rotated). The wrapper runs the layer's own cache code path
    with the prefix written at cache positions `0 .. length - 1` and the
    real tokens behind it (`cache_update_index` shifted by `length`), in
    training too (with a cache of the prefix and the sequence), so the
    layer's own query scaling, logit soft-capping, biases and grouped-query
    attention apply unchanged. Shifting every real token by `length`
    positions changes no rotary score (they depend on relative positions
    only). Sliding windows the attention layer applies itself (Gemma 2's
    and Qwen's) count the prefix positions, as in Hugging Face PEFT, so a
    token more than `window - length` positions in no longer sees the
    whole prefix; Mistral's, applied by its decoder block, counts real
    tokens only.

    Args:
        layer: a built `keras.layers.MultiHeadAttention` (or subclass), or
            a built keras-hub decoder attention layer (`DECODER_ATTENTION`).
            To write a new model, pass an unbuilt `MultiHeadAttention`: it
            is built on the first call.
        length: number of prefix positions, a positive integer.
        reparameterize: train the prefix through an MLP. Defaults to
            `True`.
        hidden: the MLP's hidden width. Defaults to `512`.
        merged: whether the MLP is folded into the plain prefix (set by
            `get_config` of a merged layer). Defaults to `False`.
        **kwargs: base layer arguments such as `name`.

    Call arguments: those of `keras.layers.MultiHeadAttention` (and of
    `CachedMultiHeadAttention`: `cache`, `cache_update_index`); around a
    keras-hub decoder attention layer, those of that layer: the sequence
    (first, or as `hidden_states`), `attention_mask`, `cache`,
    `cache_update_index`.

    Example:

    ```python
    attention = kfinetune.layers.PrefixAttention(
        keras.layers.MultiHeadAttention(num_heads=4, key_dim=16), length=8
    )
    x = keras.Input((None, 64))
    y = attention(x, x)
    ```
    """

    def __init__(
        self,
        layer,
        length,
        reparameterize=True,
        hidden=512,
        merged=False,
        **kwargs,
    ):
        if not is_supported(layer):
            raise ValueError(
                "PrefixAttention wraps keras.layers.MultiHeadAttention "
                "layers and keras-hub's Llama, Mistral, Qwen and Gemma "
                "attention layers. Received: "
                f"layer={getattr(layer, 'name', layer)!r} "
                f"({type(layer).__name__})"
            )
        checks.positive_integer("length", length)
        checks.positive_integer("hidden", hidden)
        super().__init__(layer, **kwargs)
        self.length = length
        self.reparameterize = reparameterize
        self.hidden = hidden
        self.merged = merged
        self.enabled = True

    def build(self, query_shape=None, value_shape=None, key_shape=None):
        reason = why_not_wrappable(self.layer)
        if reason == "not built" and not is_decoder_attention(self.layer):
            if query_shape is None:
                raise ValueError(
                    "PrefixAttention needs the query shape to build the "
                    f"attention layer {self.layer.name!r}: call it on data."
                )
            self.layer.build(query_shape, value_shape or query_shape, key_shape)
            reason = why_not_wrappable(self.layer)
        if reason:
            raise ValueError(
                f"PrefixAttention cannot wrap {self.layer.name!r}: {reason}."
            )
        self.layer.trainable = False
        if is_decoder_attention(self.layer):
            key_dense, value_dense = compat.key_value_projections(self.layer)
            heads, key_dim = key_dense.partial_output_shape[-2:]
            value_dim = value_dense.partial_output_shape[-1]
            contracted, _ = einsum.kernel_axes(key_dense.equation)
            width = math.prod(key_dense.kernel.shape[i] for i in contracted)
            dropout = 0.0
            # The layer writes keys and values into its cache with
            # `slice_update`, which training now differentiates.
            compat.differentiable_slice_update()
        else:
            heads, key_dim = self.layer.key_dense.kernel.shape[-2:]
            value_dim = self.layer.value_dense.kernel.shape[-1]
            width = self.layer.query_dense.kernel.shape[0]
            dropout = self.layer.dropout
        self._shapes = {
            "key": (self.length, heads, key_dim),
            "value": (self.length, heads, value_dim),
        }
        self.prefix_key = self.add_weight(
            name="prefix_key",
            shape=self._shapes["key"],
            initializer=keras.initializers.RandomNormal(stddev=0.5),
            trainable=not self.reparameterize,
        )
        self.prefix_value = self.add_weight(
            name="prefix_value",
            shape=self._shapes["value"],
            initializer=keras.initializers.RandomNormal(stddev=0.5),
            trainable=not self.reparameterize,
        )
        if self.reparameterize:
            outputs = heads * (key_dim + value_dim)
            self.prefix_embedding = self.add_weight(
                name="prefix_embedding",
                shape=(self.length, width),
                initializer=keras.initializers.RandomNormal(stddev=1.0),
            )
            self.prefix_mlp_kernel_1 = self.add_weight(
                name="prefix_mlp_kernel_1",
                shape=(width, self.hidden),
                initializer="glorot_uniform",
            )
            self.prefix_mlp_bias_1 = self.add_weight(
                name="prefix_mlp_bias_1",
                shape=(self.hidden,),
                initializer="zeros",
            )
            self.prefix_mlp_kernel_2 = self.add_weight(
                name="prefix_mlp_kernel_2",
                shape=(self.hidden, outputs),
                initializer="glorot_uniform",
            )
            self.prefix_mlp_bias_2 = self.add_weight(
                name="prefix_mlp_bias_2", shape=(outputs,), initializer="zeros"
            )
        self.prefix_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="prefix_dropout"
        )
        self.built = True

    def prefix(self):
        """The prefix keys and values, each `(length, heads, size)`."""
        if not self.reparameterize or self.merged:
            return self.prefix_key, self.prefix_value
        h = ops.tanh(
            ops.matmul(self.prefix_embedding, self.prefix_mlp_kernel_1)
            + self.prefix_mlp_bias_1
        )
        kv = ops.matmul(h, self.prefix_mlp_kernel_2) + self.prefix_mlp_bias_2
        split = math.prod(self._shapes["key"][1:])
        key = ops.reshape(kv[:, :split], self._shapes["key"])
        value = ops.reshape(kv[:, split:], self._shapes["value"])
        return key, value

    def merge(self):
        """Folds the reparameterisation MLP into the plain prefix weights
        (a no-op without reparameterisation). A model's traced functions
        must be reset afterwards (`kfinetune.peft.merge` does)."""
        if self.merged or not self.reparameterize:
            return
        key, value = self.prefix()
        self.prefix_key.assign(key)
        self.prefix_value.assign(value)
        self.merged = True

    def unmerge(self):
        """Goes back to computing the prefix with the MLP."""
        self.merged = False

    def call(
        self,
        query=None,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        cache=None,
        cache_update_index=None,
        hidden_states=None,
    ):
        layer = self.layer
        if is_decoder_attention(layer):
            return self._call_decoder_attention(
                query if hidden_states is None else hidden_states,
                attention_mask,
                cache,
                cache_update_index,
                training,
            )
        cached = isinstance(layer, keras_hub.layers.CachedMultiHeadAttention)
        if not self.enabled:
            kwargs = {}
            if cached:
                kwargs = {
                    "cache": cache,
                    "cache_update_index": cache_update_index,
                }
            elif use_causal_mask:
                kwargs = {"use_causal_mask": True}
            return layer(
                query,
                value,
                key=key,
                attention_mask=attention_mask,
                return_attention_scores=return_attention_scores,
                training=training,
                **kwargs,
            )
        if cache is not None and not cached:
            raise ValueError(
                f"{type(layer).__name__} {layer.name!r} takes no `cache`."
            )
        if value is None:
            raise ValueError(
                f"{type(layer).__name__} {layer.name!r} needs a `value`. "
                "Received: value=None"
            )
        if key is None:
            key = value
        mask = _combine_masks(
            query, value, query_mask, value_mask, key_mask, attention_mask
        )
        if use_causal_mask:
            mask = _and(mask, _causal_mask(query, value))
        q = layer.query_dense(query)
        if cache is not None:
            k, v = cache[:, 0, ...], cache[:, 1, ...]
            if cache_update_index is not None:
                start = [0, cache_update_index, 0, 0]
                k = ops.slice_update(k, start, layer.key_dense(key))
                v = ops.slice_update(v, start, layer.value_dense(value))
                cache = ops.stack((k, v), axis=1)
        else:
            if cache_update_index is not None:
                raise ValueError(
                    "`cache_update_index` needs a `cache`. Received: "
                    f"cache_update_index={cache_update_index!r}"
                )
            k = layer.key_dense(key)
            v = layer.value_dense(value)

        prefix_key, prefix_value = self.prefix()
        batch = ops.shape(q)[0]
        k = ops.concatenate([_tile(prefix_key, batch, k.dtype), k], axis=1)
        v = ops.concatenate([_tile(prefix_value, batch, v.dtype), v], axis=1)
        if mask is not None:
            mask = _extend(mask, self.length)

        scores = ops.einsum(
            "btnh,bsnh->bnts",
            q * ops.cast(1 / math.sqrt(q.shape[-1]), q.dtype),
            k,
        )
        if mask is not None:
            scores = ops.where(
                ops.expand_dims(ops.cast(mask, "bool"), 1),
                scores,
                ops.cast(_MASKED, scores.dtype),
            )
        weights = ops.cast(ops.softmax(ops.cast(scores, "float32")), v.dtype)
        dropped = self.prefix_dropout(weights, training=training)
        output = layer.output_dense(ops.einsum("bnts,bsnh->btnh", dropped, v))
        if cached:
            if return_attention_scores and cache is not None:
                return output, weights, cache
            if cache is not None:
                return output, cache
        if return_attention_scores:
            return output, weights
        return output

    def _call_decoder_attention(
        self, hidden, attention_mask, cache, cache_update_index, training
    ):
        layer = self.layer
        if not self.enabled:
            kwargs = {"attention_mask": attention_mask, "training": training}
            if cache is not None:
                kwargs["cache"] = cache
                kwargs["cache_update_index"] = cache_update_index
            return layer(hidden, **kwargs)
        if cache is not None and cache_update_index is None:
            raise ValueError(
                f"{type(layer).__name__} {layer.name!r} with a prefix needs "
                "the `cache_update_index` of the tokens with its `cache`. "
                "Received: cache_update_index=None"
            )
        batch = ops.shape(hidden)[0]
        dtype = layer.compute_dtype
        prefix_key, prefix_value = self.prefix()
        prefix = ops.stack(
            [
                _tile(prefix_key, batch, dtype),
                _tile(prefix_value, batch, dtype),
            ],
            axis=1,
        )
        if cache is None:
            # No cache (training, scoring): one holding the prefix, and room
            # behind it for the keys and values the layer computes.
            shape = ops.shape(prefix)
            room = (batch, 2, ops.shape(hidden)[1], shape[3], shape[4])
            extended = ops.concatenate([prefix, ops.zeros(room, dtype)], 2)
            index = self.length
        else:
            extended = ops.concatenate([prefix, ops.cast(cache, dtype)], 2)
            index = cache_update_index + self.length
        if attention_mask is not None:
            attention_mask = _extend(attention_mask, self.length)
        output, extended = layer(
            hidden,
            attention_mask=attention_mask,
            cache=extended,
            cache_update_index=index,
            training=training,
        )
        if cache is None:
            return output
        return output, extended[:, :, self.length :]

    def compute_output_shape(
        self, query_shape=None, value_shape=None, key_shape=None
    ):
        if is_decoder_attention(self.layer):
            return query_shape
        return self.layer.compute_output_shape(
            query_shape, value_shape or query_shape, key_shape
        )

    def get_config(self):
        return {
            **super().get_config(),
            "length": self.length,
            "reparameterize": self.reparameterize,
            "hidden": self.hidden,
            "merged": self.merged,
        }


def _tile(prefix, batch, dtype):
    return ops.cast(
        ops.tile(ops.expand_dims(prefix, 0), [batch, 1, 1, 1]), dtype
    )


def _and(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return ops.logical_and(ops.cast(a, "bool"), ops.cast(b, "bool"))


def _combine_masks(query, value, query_mask, value_mask, key_mask, mask):
    """The `(B, T, S)` (or broadcastable) mask from every mask argument."""
    if query_mask is not None:
        mask = _and(mask, ops.expand_dims(query_mask, -1))
    if value_mask is not None:
        mask = _and(mask, ops.expand_dims(value_mask, 1))
    if key_mask is not None:
        mask = _and(mask, ops.expand_dims(key_mask, 1))
    return mask


def _causal_mask(query, value):
    q_len, v_len = ops.shape(query)[1], ops.shape(value)[1]
    rows = ops.expand_dims(ops.arange(q_len), -1) + (v_len - q_len)
    return ops.expand_dims(rows >= ops.arange(v_len), 0)


def _extend(mask, length):
    """Lets every query attend to `length` prefix positions in front (the
    mask keeps its dtype)."""
    ones = ops.ones_like(mask[..., :1])
    return ops.concatenate([ops.repeat(ones, length, axis=-1), mask], axis=-1)
