"""The two wrappers prompt tuning injects into a transformer's graph.

`PromptInsertion` wraps the layer whose output is the embedding sequence and
inserts the soft prompts there; `PromptMask` wraps each transformer layer,
extends the padding mask the graph hands it over the inserted positions and,
on the last layer, strips the prompts again so the model's outputs keep
their shapes. `kfinetune.peft.PromptConfig` places both; to write a new
model, use `kfinetune.layers.PromptEmbedding`.
"""

import keras

from kfinetune import checks
from kfinetune.layers import prompt_embedding

_PADDING_MASKS = ("padding_mask", "decoder_padding_mask")
_ATTENTION_MASKS = ("attention_mask", "decoder_attention_mask")
_CACHES = ("self_attention_cache", "cross_attention_cache")


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
    `strip=True`, removes them from its output.

    Cached decoding (`self_attention_cache`) is refused: keras-hub's
    `generate()` runs the layers one token at a time without the inserted
    prompts.

    Args:
        layer: a transformer layer called with `padding_mask=` or
            `decoder_padding_mask=` (keras-hub `TransformerEncoder`,
            `TransformerDecoder`).
        length: number of inserted prompts, a positive integer.
        position: where they were inserted. Defaults to `0`.
        strip: remove them from the output. Defaults to `False`.
        **kwargs: base layer arguments such as `name`.
    """

    def __init__(self, layer, length, position=0, strip=False, **kwargs):
        checks.positive_integer("length", length)
        checks.non_negative_integer("position", position)
        super().__init__(layer, **kwargs)
        self.length = length
        self.position = position
        self.strip = strip
        self.enabled = True

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(
        self,
        inputs,
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
        if any(name in kwargs for name in _CACHES):
            raise NotImplementedError(
                "Prompt tuning does not support cached generation "
                "(`generate()`) yet: keras-hub decodes one token at a time "
                "without the inserted prompts. Received a cache in "
                f"{self.layer.name!r}."
            )
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

    def compute_output_shape(self, inputs_shape):
        return self.layer.compute_output_shape(inputs_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "length": self.length,
            "position": self.position,
            "strip": self.strip,
        }
