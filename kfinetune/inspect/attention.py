"""`attention`: per-layer, per-head attention weights of a keras-hub
encoder, aligned with the word pieces."""

import dataclasses

import keras
import keras_hub
import numpy as np

from kfinetune import compat
from kfinetune import walk
from kfinetune.inspect import inputs as inputs_lib


@dataclasses.dataclass(frozen=True)
class AttentionMap:
    """The attention weights of one text.

    Attributes:
        tokens: the word pieces of the text (padding left out), with the
            soft prompts of prompt tuning labelled `<prompt i>` where they
            were inserted.
        weights: a `(layers, heads, len(tokens), len(tokens))` float array;
            `weights[l, h, i, j]` is how much position `i` attends to `j`
            in layer `l`, head `h`.
        prefix: a `(layers, heads, len(tokens), prefix_length)` array of
            the weights on the learned prefix keys of prefix tuning (zeros
            for layers without a prefix; `prefix_length` is `0` without
            prefix tuning). Each row of `weights` and `prefix` together
            sums to 1.
    """

    tokens: tuple
    weights: np.ndarray
    prefix: np.ndarray

    def plot(self, path, layer=-1, head=None, dpi=120):
        """Draws this text's attention as a PNG heatmap; see
        `plot_attention`."""
        return plot_attention(self, path, layer=layer, head=head, dpi=dpi)


def _encoders(backbone):
    """The keras-hub `TransformerEncoder`s the backbone runs, in order."""
    found = []
    for site in walk.sites(backbone):
        if isinstance(site.layer, keras_hub.layers.TransformerEncoder):
            if not any(site.layer is layer for layer in found):
                found.append(site.layer)
    return found


def attention(model, texts, tokenizer=None):
    """Computes the attention weights of every layer and head.

    The model runs once, eagerly, with each encoder's attention layer
    asked for its attention scores, so what is returned is exactly what
    the model computes, PEFT methods included: LoRA, adapters and IA3
    change the projections, prefix tuning adds keys (returned apart, in
    `prefix`), and prompt tuning adds positions (labelled `<prompt i>` in
    `tokens`). Dropout is off.

    Args:
        model: a keras-hub task (e.g. a `TextClassifier`) or backbone whose
            transformer layers are keras-hub `TransformerEncoder`s.
        texts: a list of strings, which the model's preprocessor turns into
            inputs; or, for a model without a preprocessor, the dict of
            preprocessed inputs (`token_ids`, `padding_mask`, ...).
        tokenizer: the keras-hub tokenizer naming the word pieces.
            Defaults to `None`: the preprocessor's tokenizer, or the token
            ids as text when there is no preprocessor.

    Returns:
        A list with one `AttentionMap` per text.

    Raises:
        ValueError: the model is not a keras-hub encoder, or `texts` is
            neither strings (with a preprocessor) nor preprocessed inputs.

    Example:

    ```python
    maps = kfinetune.inspect.attention(model, ["what a great day"])
    maps[0].tokens  # ('[CLS]', 'what', 'a', 'great', 'day', '[SEP]')
    maps[0].weights.shape  # (layers, heads, 6, 6)
    kfinetune.inspect.plot_attention(maps[0], "attention.png")
    ```
    """
    backbone = inputs_lib.backbone_of(model, "attention")
    encoders = _encoders(backbone)
    if not encoders:
        raise ValueError(
            "`attention` needs a model with keras-hub TransformerEncoder "
            f"layers. Received: model={model.name!r}"
        )
    x, tokenizer = inputs_lib.prepare(model, texts, tokenizer, "attention")
    recorded = [None] * len(encoders)

    def recorder(index):
        def call(original, *args, **kwargs):
            asked = kwargs.get("return_attention_scores", False)
            kwargs["return_attention_scores"] = True
            outputs = original(*args, **kwargs)
            recorded[index] = keras.ops.convert_to_numpy(
                keras.ops.cast(outputs[1], "float32")
            )
            if asked:
                return outputs
            return outputs[0]

        return call

    backbone_inputs = {k: x[k] for k in backbone.input if k in x}
    with _recording(encoders, recorder):
        backbone(backbone_inputs, training=False)
    length, position = inputs_lib.prompt_insertion(backbone)
    padding = np.asarray(x["padding_mask"]).astype(bool)
    return [
        _one_text(row, x, padding, recorded, length, position, tokenizer)
        for row in range(len(padding))
    ]


class _recording:
    """Records every encoder's attention layer for one forward pass."""

    def __init__(self, encoders, recorder):
        self.contexts = [
            compat.recording_call(
                compat.self_attention_layer(encoder), recorder(index)
            )
            for index, encoder in enumerate(encoders)
        ]

    def __enter__(self):
        for context in self.contexts:
            context.__enter__()

    def __exit__(self, *exc):
        for context in reversed(self.contexts):
            context.__exit__(*exc)


def _one_text(row, x, padding, recorded, length, position, tokenizer):
    real = np.flatnonzero(padding[row])
    tokens = inputs_lib.token_names(x["token_ids"][row][real], tokenizer)
    if length:
        prompts = [f"<prompt {i}>" for i in range(length)]
        tokens = tokens[:position] + prompts + tokens[position:]
        # The prompts sit at `position`; every real token moves behind.
        keep = np.concatenate(
            [
                real[real < position],
                np.arange(position, position + length),
                real[real >= position] + length,
            ]
        )
    else:
        keep = real
    prefixes = [scores.shape[-1] - scores.shape[-2] for scores in recorded]
    widest = max(prefixes)
    layers, heads = len(recorded), recorded[0].shape[1]
    weights = np.zeros((layers, heads, len(keep), len(keep)), "float32")
    prefix = np.zeros((layers, heads, len(keep), widest), "float32")
    for layer, (scores, extra) in enumerate(
        zip(recorded, prefixes, strict=True)
    ):
        scores = scores[row][:, keep]
        weights[layer] = scores[:, :, extra + keep]
        prefix[layer, :, :, :extra] = scores[:, :, :extra]
    return AttentionMap(tuple(tokens), weights, prefix)


def plot_attention(attention_map, path, layer=-1, head=None, dpi=120):
    """Draws attention weights as a PNG heatmap.

    Args:
        attention_map: an `AttentionMap` from `attention`.
        path: the PNG file to write; its folder is created when missing.
        layer: the layer to draw (negative counts from the end). Defaults
            to `-1`, the last layer.
        head: the head to draw, or `None` for the mean over heads, or
            `"all"` for one panel per head. Defaults to `None`.
        dpi: the resolution. Defaults to `120`.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: `layer` or `head` is out of range.

    Example:

    ```python
    maps = kfinetune.inspect.attention(model, ["what a great day"])
    kfinetune.inspect.plot_attention(maps[0], "attention.png", head="all")
    ```
    """
    from kfinetune.inspect import figures

    weights = attention_map.weights
    layers, heads = weights.shape[:2]
    if not isinstance(layer, int) or not -layers <= layer < layers:
        raise ValueError(
            f"`layer` must be an integer in {-layers}..{layers - 1}. "
            f"Received: layer={layer!r}"
        )
    if head == "all":
        panels = [(f"head {h}", weights[layer, h]) for h in range(heads)]
    elif head is None:
        panels = [("mean over heads", weights[layer].mean(axis=0))]
    elif isinstance(head, int) and -heads <= head < heads:
        panels = [(f"head {head % heads}", weights[layer, head])]
    else:
        raise ValueError(
            f"`head` must be None, 'all' or an integer in {-heads}.."
            f"{heads - 1}. Received: head={head!r}"
        )
    title = f"layer {layer % layers}"
    return figures.heatmaps(
        path, panels, attention_map.tokens, title=title, dpi=dpi
    )
