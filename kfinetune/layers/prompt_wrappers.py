"""The two wrappers prompt tuning injects into a transformer's graph.

`PromptInsertion` wraps the layer whose output is the embedding sequence and
inserts the soft prompts there; `PromptMask` wraps each transformer layer,
extends the padding mask the graph hands it over the inserted positions and,
on the last layer, strips the prompts again so the model's outputs keep
their shapes. In keras-hub's Llama, Mistral, Qwen and Gemma backbones, whose
token embedding feeds the first decoder layer directly, the `PromptMask` of
the first layer inserts the prompts itself. `kfinetune.peft.PromptConfig`
places both; to write a new model, use `kfinetune.layers.PromptEmbedding`.
"""

import keras
from keras import ops

from kfinetune import checks
from kfinetune.layers import prompt_embedding

_PADDING_MASKS = ("padding_mask", "decoder_padding_mask")
_ATTENTION_MASKS = ("attention_mask", "decoder_attention_mask")
# The key/value cache arguments of keras-hub decoder layers, with their
# update index: Llama, Mistral, Qwen and `TransformerDecoder` name them
# `self_attention_cache`, Gemma `cache`.
_CACHES = {
    "self_attention_cache": "self_attention_cache_update_index",
    "cache": "cache_update_index",
}


@keras.saving.register_keras_serializable(package="kfinetune")
class PromptInsertion(keras.layers.Wrapper):
    """Runs `layer`, then inserts `length` learned vectors into its output
    sequence before index `position`.

    Args:
        layer: the layer whose output is the embedding sequence (e.g. a
            keras-hub BERT's `embeddings_layer_norm`).
        length: number of prompt vectors, a positive integer.
        position: index to insert at. Defaults to `0`.
        **kwargs: base layer arguments such as `name`.
    """

    def __init__(self, layer, length, position=0, **kwargs):
        checks.positive_integer("length", length)
        checks.non_negative_integer("position", position)
        super().__init__(layer, **kwargs)
        self.length = length
        self.position = position
        self.enabled = True
        # Values to start from (set by `PromptConfig`, not serialized: a
        # reloaded model loads its trained values).
        self.initial_values = None

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        try:
            hidden = self.layer.output.shape[-1]
        except (AttributeError, ValueError):
            hidden = input_shape[-1]
        self.layer.trainable = False
        self.prompt_embeddings = self.add_weight(
            name="prompt_embeddings",
            shape=(self.length, hidden),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
        )
        if self.initial_values is not None:
            self.prompt_embeddings.assign(self.initial_values)
        self.built = True

    def call(self, inputs):
        outputs = self.layer(inputs)
        if not self.enabled:
            return outputs
        return prompt_embedding.insert(
            outputs, self.prompt_embeddings, self.position
        )

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "length": self.length,
            "position": self.position,
        }


@keras.saving.register_keras_serializable(package="kfinetune")
class PromptMask(keras.layers.Wrapper):
    """Runs a transformer layer on a sequence holding `length` inserted
    prompts: extends its padding (and attention) masks over them and, with
    `strip=True`, removes them from its output. With `insert=True` it
    inserts them first: it holds the learned prompts (`prompt_embeddings`,
    multiplied by `scale` on the way in).

    Cached decoding (keras-hub's `generate()`, which runs the decoder layers
    on one token at a time with a key/value cache of the real tokens) works
    for prompts before the first token (`position=0`) in keras-hub's Llama,
    Mistral, Qwen and Gemma decoder layers: the sequence carries the prompts
    from layer to layer as in training, and each layer first runs on them
    alone, with a cache of their own, then on the real tokens with the
    prompts' keys and values in front of the cache it was given, so the
    real tokens sit behind the prompts as in training (the returned cache
    holds the real tokens only). The prompts' keys and values depend on
    the prompts alone, so they are the same at every step; recomputing them
    costs `length` extra positions per layer and step. Caches of keras-hub
    `TransformerDecoder` layers (GPT-2, BART) are refused.

    Args:
        layer: a transformer layer called with `padding_mask=` or
            `decoder_padding_mask=` (keras-hub `TransformerEncoder`,
            `TransformerDecoder`, DeBERTa-v3's encoder layers, and the
            decoder layers of keras-hub's Llama, Mistral, Qwen and Gemma
            backbones). DeBERTa-v3's `rel_embeddings` are passed on
            unchanged: they are a table of relative distances, whatever
            the sequence's length.
        length: number of inserted prompts, a positive integer.
        position: where they were inserted. Defaults to `0`.
        strip: remove them from the output. Defaults to `False`.
        insert: insert them into the layer's input first. Defaults to
            `False`.
        scale: what the inserted prompts are multiplied by (Gemma scales
            its token embeddings by `sqrt(hidden_dim)` before the first
            decoder layer; prompts live where token embeddings do). Only
            with `insert=True`. Defaults to `1.0`.
        **kwargs: base layer arguments such as `name`.
    """

    def __init__(
        self,
        layer,
        length,
        position=0,
        strip=False,
        insert=False,
        scale=1.0,
        **kwargs,
    ):
        checks.positive_integer("length", length)
        checks.non_negative_integer("position", position)
        checks.boolean("insert", insert)
        checks.positive_number("scale", scale)
        super().__init__(layer, **kwargs)
        self.length = length
        self.position = position
        self.strip = strip
        self.insert = insert
        self.scale = scale
        self.enabled = True
        # With `insert`: values to start from (set by `PromptConfig`, not
        # serialized: a reloaded model loads its trained values).
        self.initial_values = None

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        if self.insert:
            hidden = (
                self.initial_values.shape[-1]
                if input_shape is None
                else input_shape[-1]
            )
            self.prompt_embeddings = self.add_weight(
                name="prompt_embeddings",
                shape=(self.length, hidden),
                initializer=keras.initializers.RandomNormal(stddev=1.0),
            )
            if self.initial_values is not None:
                self.prompt_embeddings.assign(self.initial_values)
        self.built = True

    def call(
        self,
        inputs,
        rel_embeddings=None,
        padding_mask=None,
        attention_mask=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_sequence=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        cross_attention_cache_update_index=None,
        cache=None,
        cache_update_index=None,
        return_attention_scores=None,
        use_causal_mask=None,
    ):
        # Explicit arguments: Keras refuses a `**kwargs` mixing tensors and
        # Python values. Only those given are passed on.
        kwargs = {
            name: value
            for name, value in locals().items()
            if name not in ("self", "inputs") and value is not None
        }
        if not self.enabled:
            return self.layer(inputs, **kwargs)
        if self.insert:
            prompts = ops.cast(self.prompt_embeddings, inputs.dtype)
            prompts = prompts * ops.cast(self.scale, inputs.dtype)
            inputs = prompt_embedding.insert(inputs, prompts, self.position)
        caches = [name for name in _CACHES if name in kwargs]
        if caches or "cross_attention_cache" in kwargs:
            self._check_cached_call(caches, kwargs)
            return self._call_with_cache(inputs, caches[0], kwargs)
        self._check_prompts_inserted(inputs, kwargs)
        for name in _PADDING_MASKS:
            if name in kwargs:
                kwargs[name] = prompt_embedding.extend_padding_mask(
                    kwargs[name], self.length, self.position
                )
        for name in _ATTENTION_MASKS:
            if name in kwargs:
                kwargs[name] = prompt_embedding.extend_attention_mask(
                    kwargs[name], self.length, self.position
                )
        outputs = self.layer(inputs, **kwargs)
        if not self.strip:
            return outputs
        if isinstance(outputs, tuple | list):
            first = prompt_embedding.strip(
                outputs[0], self.length, self.position
            )
            return (first, *outputs[1:])
        return prompt_embedding.strip(outputs, self.length, self.position)

    def _check_prompts_inserted(self, inputs, kwargs):
        """Refuses a call whose sequence has no room for the prompts (the
        layer called outside the model's graph, as keras-hub's
        `Seq2SeqLM.generate()` calls a BART encoder), where extending the
        masks would fail inside the attention with a shape error."""
        length = inputs.shape[1]
        for name in _PADDING_MASKS:
            mask = kwargs.get(name)
            if mask is None or length is None or mask.shape[-1] is None:
                continue
            if mask.shape[-1] + self.length != length:
                raise NotImplementedError(
                    f"{self.layer.name!r} was called on a sequence without "
                    "its prompts: something ran it outside the model's "
                    "graph, which inserts them (keras-hub's `generate()` "
                    "of an encoder-decoder model such as BART does). "
                    "Prompt tuning supports `fit`, `predict` and `export` "
                    "there, and `generate()` in decoder-only models. "
                    f"Received: inputs.shape={tuple(inputs.shape)}, "
                    f"{name}.shape={tuple(mask.shape)}"
                )

    def _check_cached_call(self, caches, kwargs):
        reason = None
        if "cross_attention_cache" in kwargs:
            reason = (
                "prompts in a decoder with cross-attention are not "
                "supported (by default an encoder-decoder model such as "
                "BART gets its prompts before the encoder, which works)"
            )
        elif self.position != 0:
            reason = (
                "the real tokens before the prompts would have to be in "
                "the cache before them"
            )
        elif any(name in kwargs for name in _PADDING_MASKS + _ATTENTION_MASKS):
            reason = "keras-hub passes no masks with a cache"
        elif not caches or _CACHES[caches[0]] not in kwargs:
            reason = "a cache needs the index of the tokens in it"
        if reason:
            raise NotImplementedError(
                "Prompt tuning does not support cached generation "
                f"(`generate()`) in {self.layer.name!r}: {reason}. "
                f"Received: position={self.position}, "
                f"arguments={sorted(kwargs)}"
            )

    def _call_with_cache(self, inputs, name, kwargs):
        update_index = _CACHES[name]
        cache, index = kwargs[name], kwargs[update_index]
        length = self.length
        batch = ops.shape(inputs)[0]
        # The prompts are the same in every row: run them once.
        prompts, tokens = inputs[:1, :length], inputs[:, length:]
        shape = ops.shape(cache)
        empty = ops.zeros((1, 2, length, *shape[3:]), cache.dtype)
        prompts, prompt_cache = self.layer(
            prompts, **{name: empty, update_index: 0}
        )
        cache = ops.concatenate(
            [ops.tile(prompt_cache, [batch, 1, 1, 1, 1]), cache], axis=2
        )
        outputs, cache = self.layer(
            tokens, **{name: cache, update_index: index + length}
        )
        if not self.strip:
            prompts = ops.tile(prompts, [batch, 1, 1])
            outputs = ops.concatenate([prompts, outputs], axis=1)
        return outputs, cache[:, :, length:]

    def compute_output_shape(self, inputs_shape):
        return self.layer.compute_output_shape(inputs_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "length": self.length,
            "position": self.position,
            "strip": self.strip,
            "insert": self.insert,
            "scale": self.scale,
        }
