"""`PromptConfig`: prompt tuning, applied by `kfinetune.peft.apply`."""

import math

import keras
import keras_hub
import numpy as np

from kfinetune import checks
from kfinetune import compat
from kfinetune import walk
from kfinetune.layers import prompt_wrappers
from kfinetune.peft import config

INITS = ("random", "vocab", "text")
TRANSFORMERS = (
    keras_hub.layers.TransformerEncoder,
    keras_hub.layers.TransformerDecoder,
)
# Decoder-only backbones whose token embedding feeds the first of their
# `transformer_layers` directly (no layer in between to wrap): the wrapper
# of that first decoder layer inserts the prompts.
DECODER_BACKBONES = (
    keras_hub.models.LlamaBackbone,
    keras_hub.models.MistralBackbone,
    keras_hub.models.QwenBackbone,
    keras_hub.models.GemmaBackbone,
)


@config.register
class PromptConfig(config.PEFTConfig):
    """Prompt tuning (Lester et al., 2021): `length` learned soft-prompt
    vectors in front of the text, the only new weights.

    In a keras-hub BERT the token, position and segment embeddings are
    summed at equal lengths and every encoder receives the graph's padding
    mask, so the prompts cannot simply be prepended to the token ids'
    embeddings. Instead they are inserted into the embedding sequence after
    the embedding layer norm (before the embedding dropout), at positions
    `1 .. length`, right after `[CLS]`, with no position embedding of their
    own; every encoder's padding mask is extended so that all real tokens
    attend to them; and they are stripped from the last encoder's output,
    so `sequence_output` keeps its length and the pooler still reads
    `[CLS]`. The other keras-hub encoders work alike (ELECTRA and ALBERT
    get the prompts after the projection up to the hidden size; DeBERTa-v3
    after its embedding layer norm, its relative positions untouched); an
    ALBERT whose layers are shared across depth is refused.
    In GPT-2-style decoders the prompts go before the first token
    (position 0), after the embedding sum, where the causal mask lets every
    token attend to them.

    In keras-hub's Llama, Mistral, Qwen and Gemma decoders the prompts go
    before the first token too, inserted by the wrapper of the first
    decoder layer into the token embeddings it receives; with rotary
    position embeddings the real tokens then sit at positions `length ..`.
    In Gemma they live where token embeddings do, before Gemma's
    `sqrt(hidden_dim)` scaling (the wrapper scales them on the way in), as
    in Hugging Face PEFT, which prepends them to `inputs_embeds`: so
    `init="vocab"` and `"text"` start from the token embeddings themselves
    and the prompts keep the scale, and the learning rates, of Hugging Face
    PEFT's. Cached generation (`generate()`) works in these decoders: each
    decoder layer recomputes the prompts' keys and values, which depend on
    the prompts alone, in front of the cache at every step (`length` more
    positions per step), and in GPT-2 the same way. In an encoder-decoder
    model (BART) the prompts go before the encoder only, as in Hugging Face
    PEFT, and `generate()` works too.

    Args:
        length: number of prompt vectors, a positive integer.
        init: how the vectors start: `"random"` (normal, at the scale of
            the embedding sequence), `"vocab"` (the embeddings of random
            vocabulary tokens) or `"text"` (the embeddings of `text`'s
            tokens, repeated to fill `length`). Defaults to `"random"`.
        text: the text for `init="text"`: a string, tokenized with
            `tokenizer` (or the model's preprocessor's tokenizer), or a
            list of token ids; at most `length` tokens.
        tokenizer: a keras-hub tokenizer for `text`. Not saved: the text is
            stored as token ids.
        position: where the prompts go. Defaults to `1` (after `[CLS]`) in
            encoders and `0` in decoders.
        seed: seed of the random initialisations. Defaults to `0`.
        targets: path or pattern of the layer whose output is the
            embedding sequence. Defaults to the layer whose output, through
            the dropout, feeds the first transformer layer
            (`embeddings_layer_norm` in BERT, DistilBERT, RoBERTa,
            XLM-RoBERTa and DeBERTa-v3, the projection to the hidden size
            in ALBERT and ELECTRA, `embeddings_add` in GPT-2);
            in Llama, Mistral, Qwen and Gemma, the first decoder layer
            (`transformer_layer_0`, `decoder_block_0`).
        trainable: see `PEFTConfig`.

    Example:

    ```python
    config = kfinetune.peft.PromptConfig(length=20, init="vocab")
    model = kfinetune.peft.apply(model, config)
    ```
    """

    method = "prompt"

    def __init__(
        self,
        length,
        init="random",
        text=None,
        tokenizer=None,
        position=None,
        seed=0,
        targets=None,
        trainable=None,
    ):
        checks.positive_integer("length", length)
        checks.one_of("init", init, INITS)
        if init == "text" and not text:
            raise ValueError(
                "init='text' needs the `text` to start from. "
                f"Received: text={text!r}"
            )
        if init != "text" and text is not None:
            raise ValueError(
                "`text` is only used with init='text'. "
                f"Received: init={init!r}, text={text!r}"
            )
        if position is not None:
            checks.non_negative_integer("position", position)
        super().__init__(targets=targets, trainable=trainable)
        self.length = length
        self.init = init
        self.position = position
        self.seed = seed
        self.text = text
        if isinstance(text, str) and tokenizer is not None:
            self.text = _token_ids(tokenizer, text)
        if self.text is not None and not isinstance(self.text, str):
            self.text = [int(i) for i in self.text]
            self._check_text_length(self.text)

    def _check_text_length(self, ids):
        if len(ids) > self.length:
            raise ValueError(
                f"`text` has {len(ids)} tokens, more than length="
                f"{self.length}. Received: text={self.text!r}"
            )
        if not ids:
            raise ValueError(
                f"`text` has no tokens. Received: text={self.text!r}"
            )

    def _resolve_text(self, model):
        if not isinstance(self.text, str):
            return self.text
        preprocessor = getattr(model, "preprocessor", None)
        tokenizer = getattr(preprocessor, "tokenizer", None)
        if tokenizer is None:
            raise ValueError(
                "init='text' with a string needs a tokenizer, and the model "
                "has no preprocessor: pass `tokenizer=` or token ids. "
                f"Received: text={self.text!r}"
            )
        ids = _token_ids(tokenizer, self.text)
        self._check_text_length(ids)
        return ids

    def default_targets(self, model):
        backbone = _decoder_backbone(model)
        if backbone is not None:
            return [backbone.transformer_layers[0].path]
        graph, layers = _transformer_graph(model)
        stack = _encoder_stack(layers)
        if len(stack) < len(layers):
            # Encoder-decoder: the graph lists both embeddings before both
            # stacks, so follow the encoder's input back instead.
            return [_embedding_output(graph, stack[0]).path]
        # Followed back from the first transformer layer's input rather
        # than taken as the last layer before it: DeBERTa-v3 computes its
        # relative position embeddings in between.
        first = next(layer for layer in graph.layers if layer in layers)
        return [_embedding_output(graph, first).path]

    def injections(self, site, name, sites):
        if not site.graph_node or not compat.is_functional(site.parent):
            return None, (
                "not a node of a functional graph, so its output cannot be "
                "extended with prompts"
            )
        graph = site.parent
        if isinstance(graph, DECODER_BACKBONES):
            return self._decoder_injections(site, name, sites)
        transformers = [
            s
            for s in sites
            if s.parent is graph
            and s.graph_node
            and _is_transformer(s.layer, graph)
        ]
        kept = _encoder_stack([s.layer for s in transformers])
        transformers = [s for s in transformers if s.layer in kept]
        if not transformers:
            return None, (
                f"{graph.name!r} has no keras-hub TransformerEncoder or "
                "TransformerDecoder layers to extend the masks of"
            )
        position = self.position
        if position is None:
            decoder = isinstance(
                transformers[0].layer, keras_hub.layers.TransformerDecoder
            )
            position = 0 if decoder else 1
        values = self._initial_values(site.layer, graph)

        def make_insertion():
            wrapper = prompt_wrappers.PromptInsertion(
                site.layer,
                length=self.length,
                position=position,
                name=f"prompt_{name}",
            )
            wrapper.initial_values = values
            return wrapper

        def make_mask(transformer, last):
            def make():
                return prompt_wrappers.PromptMask(
                    transformer.layer,
                    length=self.length,
                    position=position,
                    strip=last,
                    name=f"prompt_{name}_{transformer.layer.name}",
                )

            return make

        planned = [config.Injection(site, make_insertion, rewire=True)]
        for index, transformer in enumerate(transformers):
            last = index == len(transformers) - 1
            planned.append(
                config.Injection(
                    transformer, make_mask(transformer, last), rewire=True
                )
            )
        return planned, None

    def _decoder_injections(self, site, name, sites):
        """The wrappers for a Llama, Mistral, Qwen or Gemma backbone: the
        first decoder layer's inserts the prompts."""
        graph = site.parent
        layers = graph.transformer_layers
        if site.layer is not layers[0]:
            return None, (
                f"prompts enter before the first decoder layer of "
                f"{graph.name!r}: target {layers[0].path!r}"
            )
        position = 0 if self.position is None else self.position
        values = self._initial_values(None, graph)
        scale = 1.0
        if isinstance(graph, keras_hub.models.GemmaBackbone):
            scale = math.sqrt(graph.hidden_dim)
        by_layer = {id(s.layer): s for s in sites if s.parent is graph}

        def make(layer, index):
            def make_wrapper():
                first = index == 0
                wrapper = prompt_wrappers.PromptMask(
                    layer,
                    length=self.length,
                    position=position,
                    strip=index == len(layers) - 1,
                    insert=first,
                    scale=scale,
                    name=f"prompt_{name}"
                    if first
                    else (f"prompt_{name}_{layer.name}"),
                )
                wrapper.initial_values = values
                return wrapper

            return make_wrapper

        planned = [
            config.Injection(by_layer[id(layer)], make(layer, i), rewire=True)
            for i, layer in enumerate(layers)
        ]
        return planned, None

    def check(self, model):
        for layer in [model, *(s.layer for s in walk.sites(model))]:
            if _shares_layers_across_depth(layer):
                raise ValueError(
                    "Prompt tuning cannot run in an ALBERT whose transformer "
                    "layers are shared across depth (num_layers="
                    f"{layer.num_layers}, num_groups={layer.num_groups}): "
                    "the prompts are stripped from the output of the last "
                    "transformer layer, and here that layer also runs at "
                    "the depths below it. Build the ALBERT with num_groups "
                    "equal to num_layers, or use LoRA, adapters, IA3 or "
                    "prefix tuning, which share their weights across depth "
                    "as ALBERT "
                    f"does. Received: model={model.name!r}"
                )
        taken = [
            s.layer.adapter_name
            for s in walk.sites(model)
            if _inserts_prompts(s.layer)
        ]
        if taken:
            raise ValueError(
                "This model already has soft prompts (adapter "
                f"{taken[0]!r}); a model takes one prompt adapter. Delete it "
                "first with `kfinetune.peft.delete`. Received: "
                f"config={self!r}"
            )
        if self.init == "text":
            self._ids = self._resolve_text(model)

    def _initial_values(self, layer, graph):
        """The prompts' starting values, `(length, hidden)`."""
        rng = np.random.default_rng(self.seed)
        embedding = getattr(graph, "token_embedding", None)
        table = getattr(embedding, "embeddings", None)
        if table is None:
            if self.init != "random":
                raise ValueError(
                    f"init={self.init!r} needs the model's token embedding "
                    f"(`{graph.name}.token_embedding`), which it lacks. "
                    f"Received: init={self.init!r}"
                )
            hidden = layer.output.shape[-1]
            return rng.normal(0.0, 1.0, (self.length, hidden)).astype("float32")
        table = keras.ops.convert_to_numpy(table)
        if self.init == "text":
            ids = np.resize(np.array(self._ids), self.length)
        else:
            ids = rng.integers(0, table.shape[0], self.length)
        rows = table[ids]
        if layer is not None and rows.shape[-1] != layer.output.shape[-1]:
            # ALBERT and ELECTRA embed narrower than their hidden size and
            # project the normalized embeddings up: the prompts enter after
            # that projection, where these tokens would be.
            norm = _embedding_output(graph, layer)
            rows = keras.ops.convert_to_numpy(layer(norm(rows)))
        elif isinstance(layer, keras.layers.LayerNormalization):
            # The prompts enter after the layer norm: start them at the
            # scale of normalized embeddings.
            rows = keras.ops.convert_to_numpy(layer(rows))
        rows = rows.astype("float32")
        if self.init == "random":
            return rng.normal(0.0, rows.std(), rows.shape).astype("float32")
        return rows

    def get_config(self):
        return {
            "length": self.length,
            "init": self.init,
            "text": self.text,
            "position": self.position,
            "seed": self.seed,
            **super().get_config(),
        }


def _token_ids(tokenizer, text):
    ids = keras.ops.convert_to_numpy(tokenizer(text))
    return [int(i) for i in np.reshape(ids, -1)]


def _inserts_prompts(layer):
    return isinstance(layer, prompt_wrappers.PromptInsertion) or (
        isinstance(layer, prompt_wrappers.PromptMask) and layer.insert
    )


def _shares_layers_across_depth(layer):
    """Whether `layer` is an ALBERT backbone that runs each transformer
    layer at several depths."""
    return (
        isinstance(layer, keras_hub.models.AlbertBackbone)
        and layer.num_layers > layer.num_groups
    )


def _decoder_backbone(model):
    """The Llama, Mistral, Qwen or Gemma backbone of `model`, or `None`."""
    for layer in [model, *(s.layer for s in walk.sites(model))]:
        if isinstance(layer, DECODER_BACKBONES):
            return layer
    return None


def _encoder_stack(layers):
    """The transformer layers the prompts pass through: in an
    encoder-decoder graph (BART) the encoder's only, as Hugging Face PEFT
    prepends the prompts to the encoder's input; otherwise all of them."""
    encoders = [
        layer
        for layer in layers
        if isinstance(layer, keras_hub.layers.TransformerEncoder)
    ]
    if encoders and len(encoders) < len(layers):
        return encoders
    return layers


def _embedding_output(graph, transformer):
    """The layer of `graph` whose output is `transformer`'s input sequence,
    dropout skipped."""
    inputs = transformer.input
    sequence = inputs[0] if isinstance(inputs, list | tuple) else inputs
    for _ in graph.layers:
        producer = next(
            (layer for layer in graph.layers if layer.output is sequence),
            None,
        )
        if not isinstance(producer, keras.layers.Dropout):
            break
        sequence = producer.input
    if producer is None or not producer.path:
        raise ValueError(
            "Prompt tuning cannot find the embedding output before "
            f"{transformer.name!r}. Pass `targets=` the path of the layer "
            "whose output is the embedding sequence. "
            f"Received: model={graph.name!r}"
        )
    return producer


def _is_transformer(layer, graph):
    """Whether `layer` is a transformer layer of the functional `graph`:
    a keras-hub `TransformerEncoder` or `TransformerDecoder`, or one of a
    DeBERTa-v3 backbone's `transformer_layers` (keras-hub does not export
    their class, `DisentangledAttentionEncoder`)."""
    if isinstance(layer, TRANSFORMERS):
        return True
    return isinstance(graph, keras_hub.models.DebertaV3Backbone) and any(
        layer is t for t in graph.transformer_layers
    )


def _transformer_graph(model):
    """The functional graph holding keras-hub transformer layers as nodes,
    and those layers."""
    sites = walk.sites(model)
    for site in sites:
        if site.graph_node and _is_transformer(site.layer, site.parent):
            graph = site.parent
            layers = [
                s.layer
                for s in sites
                if s.parent is graph and _is_transformer(s.layer, graph)
            ]
            return graph, layers
    raise ValueError(
        "Prompt tuning cannot find the embedding output of this model: it "
        "needs a functional graph (a keras-hub backbone) whose transformer "
        "layers are keras-hub TransformerEncoder or TransformerDecoder "
        "layers. For other models, put a `kfinetune.layers.PromptEmbedding` "
        f"in the model yourself. Received: model={model.name!r} "
        f"({type(model).__name__})"
    )
