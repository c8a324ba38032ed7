"""`remat`: recompute transformer-block activations in the backward pass."""

import keras
import keras_hub

from kfinetune import matcher
from kfinetune import walk
from kfinetune.optimizers.layer_groups import BLOCK_NAME
from kfinetune.peft.compiled_functions import reset_compiled_functions

# The blocks `remat` targets by default: keras-hub's transformer layers,
# and the blocks of keras-hub backbones, which most generators build from
# their own classes (Llama's `LlamaTransformerDecoder`, Gemma's
# `GemmaDecoderBlock`), found by name as `layer_groups` finds them.
BLOCKS = (
    keras_hub.layers.TransformerEncoder,
    keras_hub.layers.TransformerDecoder,
)


def remat(model, enabled=True, targets=None):
    """Rematerialises transformer blocks: their activations are recomputed
    in the backward pass instead of being kept from the forward pass.

    Each targeted layer's `call` runs under `keras.remat`, which keeps only
    the block's inputs for the backward pass and runs the block again to
    get the rest: training holds about one block's activations instead of
    all of them, at the cost of a second forward pass through the blocks
    (measured on MiniLM under XLA: 1.4× the step time of full fine-tuning,
    1.6× that of LoRA, whose step has no base weight gradients to dilute
    the extra forward pass). Losses and gradients are the same
    as without it. It works for full fine-tuning and with every
    `kfinetune.peft` method (the adapters inside a block are recomputed
    with it), and under `jit_compile=True`.

    It changes how the layers run, not the model's weights or config:
    a saved model reloads without it; call `remat` again after
    `keras.models.load_model`. With dropout, the recomputed pass draws new
    dropout masks, so gradients are those of a slightly different mask
    than the forward pass used (as with Keras's own `keras.RematScope`);
    with dropout off they are exactly the same.

    Args:
        model: a built Keras model, or a model returned by
            `kfinetune.peft.apply`. Changed in place.
        enabled: `True` to rematerialise the targets, `False` to go back to
            keeping their activations. Defaults to `True`.
        targets: layer paths or regular expressions of the layers to
            rematerialise, matched as in `kfinetune.peft` configs. Defaults
            to every keras-hub `TransformerEncoder` and `TransformerDecoder`
            layer and every transformer block of a keras-hub backbone
            (`transformer_layer_<i>`, Gemma's `decoder_block_<i>`, BART's
            `transformer_encoder_layer_<i>` and
            `transformer_decoder_layer_<i>`), so the blocks of every
            keras-hub generator.

    Returns:
        The paths of the layers changed, in model order.

    Raises:
        ValueError: `model` is not a built Keras model, or no layer
            matches the targets.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    model = kfinetune.peft.apply(model, kfinetune.peft.LoRAConfig(rank=8))
    kfinetune.peft.remat(model)
    model.compile(optimizer="adam", loss=loss, jit_compile=True)
    ```
    """
    if not isinstance(model, keras.Model) or not model.built:
        raise ValueError(
            "`model` must be a built Keras model. "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    if not isinstance(enabled, bool):
        raise ValueError(f"`enabled` must be a bool. Received: {enabled=}")
    sites = [s for s in walk.sites(model) if s.path]
    if targets is None:
        chosen = [s for s in sites if _is_block(s)]
        if not chosen:
            raise ValueError(
                "`model` has no keras-hub TransformerEncoder or "
                "TransformerDecoder layer and no transformer block of a "
                "keras-hub backbone: name the layers to rematerialise "
                f"with `targets`. Received: targets={targets!r}"
            )
    else:
        chosen = matcher.match(sites, targets)
        if not chosen:
            raise ValueError(
                "No layer matches `targets`. Similar paths: "
                f"{matcher.similar_paths([s.path for s in sites], targets)}."
                f" Received: targets={targets!r}"
            )
    changed = []
    seen = set()
    for site in chosen:
        if id(site.layer) in seen:
            continue
        seen.add(id(site.layer))
        _set(site.layer, enabled)
        changed.append(site.path)
    reset_compiled_functions(model)
    return changed


def is_rematerialised(layer):
    """Whether `remat` made `layer` recompute its activations."""
    return getattr(layer.__dict__.get("call"), "kfinetune_remat", False)


def _is_block(site):
    if isinstance(site.layer, BLOCKS):
        return True
    # By the last part of the path, which a wrapper around the block (prompt
    # tuning's) does not share.
    return BLOCK_NAME.fullmatch(site.path.rsplit("/", 1)[-1]) is not None


def _set(layer, enabled):
    if is_rematerialised(layer) == enabled:
        return
    if not enabled:
        # The class's own `call` shows through again.
        del layer.call
        return
    original = layer.call

    def rematerialised_call(*args, **kwargs):
        # Only positional arguments reach `keras.remat` (TensorFlow's
        # recomputation takes no keyword arguments inside a graph), so
        # floating-point keyword tensors, which may need gradients, are
        # passed positionally; the rest (masks, flags) are closed over.
        names = [k for k, v in kwargs.items() if _is_float_tensor(v)]
        rest = {k: v for k, v in kwargs.items() if k not in names}
        count = len(args)

        def block(*values):
            named = dict(zip(names, values[count:], strict=True))
            return original(*values[:count], **rest, **named)

        return keras.remat(block)(*args, *(kwargs[k] for k in names))

    rematerialised_call.kfinetune_remat = True
    layer.call = rematerialised_call


def _is_float_tensor(value):
    dtype = getattr(value, "dtype", None)
    return dtype is not None and "float" in str(dtype)
