"""The layers kfinetune injects into a model: which they are, where they
are, and the layers a method may target instead."""

from kfinetune import walk
from kfinetune.layers import adapter
from kfinetune.layers import adapter_wrapper
from kfinetune.layers import ia3
from kfinetune.layers import lora
from kfinetune.layers import prefix_attention
from kfinetune.layers import prompt_wrappers

# The wrappers `kfinetune.peft.apply` puts around a model's layers.
WRAPPERS = (
    lora.LoRA,
    ia3.IA3,
    adapter_wrapper.AdapterWrapper,
    adapter_wrapper.ParallelAdapterTap,
    prefix_attention.PrefixAttention,
    prompt_wrappers.PromptInsertion,
    prompt_wrappers.PromptMask,
)
# Every injected layer: the wrappers and the layers inside them that are
# not the model's own. Never targets themselves.
INJECTED = (*WRAPPERS, adapter.Adapter)


def is_injected(layer):
    """Whether kfinetune put `layer` there (a wrapper or its adapter)."""
    return isinstance(layer, INJECTED)


def candidates(model):
    """The sites a method may target: every layer with a path that
    kfinetune did not inject."""
    return [s for s in walk.sites(model) if s.path and not is_injected(s.layer)]


def outermost(site, sites):
    """Climbs from a wrapped layer's site to the site of the outermost
    kfinetune wrapper around it."""
    by_layer = {id(s.layer): s for s in sites}
    while isinstance(site.parent, WRAPPERS) and site.attribute == "layer":
        site = by_layer[id(site.parent)]
    return site


def enclosing(site, sites):
    """The kfinetune wrappers around the layer at `site`, innermost
    first."""
    by_layer = {id(s.layer): s for s in sites}
    found = []
    while isinstance(site.parent, WRAPPERS) and site.attribute == "layer":
        site = by_layer[id(site.parent)]
        found.append(site.layer)
    return found


def wrappers(model, name=None):
    """The wrappers injected into `model` (a `PEFTModel` or its base), for
    the adapter `name` only when given, outermost first."""
    found = []
    for site in walk.sites(model):
        layer = site.layer
        if isinstance(layer, WRAPPERS) and layer not in found:
            if name is None or getattr(layer, "adapter_name", None) == name:
                found.append(layer)
    return found


def own_weights(wrapper):
    """The weights a wrapper adds (not those of the layer it wraps)."""
    inner = {id(v) for v in wrapper.layer.weights}
    return [v for v in wrapper.weights if id(v) not in inner]
