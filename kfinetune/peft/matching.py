"""Finds the layers of a model and matches them against target patterns.

One matcher for every method: a pattern is tried as an exact `layer.path`
first, then with `re.fullmatch` against every path.
"""

import dataclasses
import difflib
import re

import keras

from kfinetune import compat
from kfinetune.layers import adapter
from kfinetune.layers import adapter_wrapper
from kfinetune.layers import ia3
from kfinetune.layers import lora
from kfinetune.layers import prefix_attention
from kfinetune.layers import prompt_wrappers

# Layers that kfinetune injects; never targets themselves.
WRAPPERS = (
    lora.LoRA,
    ia3.IA3,
    adapter_wrapper.AdapterWrapper,
    adapter_wrapper.ParallelAdapterTap,
    prefix_attention.PrefixAttention,
    prompt_wrappers.PromptInsertion,
    prompt_wrappers.PromptMask,
)
INJECTED = (*WRAPPERS, adapter.Adapter)


@dataclasses.dataclass(frozen=True)
class Site:
    """Where a layer sits in a model, and whether it can be replaced.

    Attributes:
        layer: the layer.
        parent: the layer or model holding it.
        attribute: the attribute of `parent` that holds it.
        index: its index when that attribute is a list, else `None`.
        graph_node: `True` when the layer is a node of a functional graph;
            replacing such an attribute would not change what runs.
    """

    layer: keras.layers.Layer
    parent: keras.layers.Layer
    attribute: str
    index: int | None
    graph_node: bool

    @property
    def path(self):
        return self.layer.path

    @property
    def swappable(self):
        return not self.graph_node


def children(layer):
    """Yields `(sublayer, attribute, index, graph_node)` for each direct
    sublayer of `layer`."""
    if compat.is_functional(layer):
        for op in layer.layers:
            if not isinstance(op, keras.layers.InputLayer):
                yield op, None, None, True
        return
    for attribute, value in vars(layer).items():
        if isinstance(value, keras.layers.Layer):
            yield value, attribute, None, False
        elif isinstance(value, list | tuple) and attribute != "_layers":
            for index, item in enumerate(value):
                if isinstance(item, keras.layers.Layer):
                    yield item, attribute, index, False


def sites(model):
    """Lists every layer below `model` with where it sits, in call order of
    discovery (depth first). Layers that are nodes of a functional graph are
    listed with `graph_node=True`; their own sublayers are swappable when
    the node is not itself functional."""
    found = []
    seen = set()

    def visit(layer):
        for child, attribute, index, graph_node in children(layer):
            if attribute is None:
                # Graph nodes have no attribute to reassign.
                attribute = ""
            site = Site(child, layer, attribute, index, graph_node)
            key = (id(child), id(layer), attribute, index)
            if key in seen:
                continue
            seen.add(key)
            found.append(site)
            visit(child)

    visit(model)
    return found


def layer_paths(model):
    """All distinct layer paths below `model` (layers without weights have
    no path and are left out)."""
    paths = []
    for site in sites(model):
        if site.path and site.path not in paths:
            paths.append(site.path)
    return paths


def duplicate_paths(candidates):
    """Paths shared by two distinct layer objects among `candidates`."""
    owners = {}
    for site in candidates:
        owners.setdefault(site.path, set()).add(id(site.layer))
    return sorted(path for path, ids in owners.items() if len(ids) > 1)


def match(candidates, patterns):
    """Selects the sites whose layer path matches any of `patterns`.

    Args:
        candidates: `Site`s to choose from.
        patterns: a string or a list of strings. Each is an exact path, or
            else a regular expression that must match a whole path.

    Returns:
        The matching sites, in the order of `candidates`, each once.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    paths = {site.path for site in candidates if site.path}
    chosen = set()
    for pattern in patterns:
        if pattern in paths:
            chosen.add(pattern)
            continue
        regex = re.compile(pattern)
        chosen.update(p for p in paths if regex.fullmatch(p))
    result = []
    taken = set()
    for site in candidates:
        if site.path in chosen and id(site.layer) not in taken:
            taken.add(id(site.layer))
            result.append(site)
    return result


def similar_paths(paths, patterns, n=5):
    """Paths that look like `patterns`, for error messages."""
    if isinstance(patterns, str):
        patterns = [patterns]
    similar = []
    for pattern in patterns:
        plain = re.sub(r"[^\w/]", "", pattern)
        for path in difflib.get_close_matches(plain, paths, n=n, cutoff=0.3):
            if path not in similar:
                similar.append(path)
    if not similar:
        similar = list(paths)[:n]
    return similar[:n]


def is_injected(layer):
    """Whether kfinetune put `layer` there (a wrapper or its adapter)."""
    return isinstance(layer, INJECTED)


def outermost(site, sites):
    """Climbs from a wrapped layer's site to the site of the outermost
    kfinetune wrapper around it."""
    by_layer = {id(s.layer): s for s in sites}
    while isinstance(site.parent, WRAPPERS) and site.attribute == "layer":
        site = by_layer[id(site.parent)]
    return site


def candidates(model):
    """The sites a method may target: every layer with a path that
    kfinetune did not inject."""
    return [s for s in sites(model) if s.path and not is_injected(s.layer)]
