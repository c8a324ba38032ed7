"""Walks a model's layer tree: every layer, where it sits, and its path.

Sublayers are found the way the parent runs them: a functional model (a
keras-hub backbone or task, a functional or Sequential model) runs the
nodes of its graph; any other layer calls the layers held in its
attributes (keras-hub encoders' attention and feed-forward layers, a
subclassed model's attributes).
"""

import dataclasses

import keras

from kfinetune import compat


@dataclasses.dataclass(frozen=True)
class Site:
    """Where a layer sits in a model, and whether it can be replaced.

    Attributes:
        layer: the layer.
        parent: the layer or model holding it.
        attribute: the attribute of `parent` that holds it (`""` for a
            node of a functional graph).
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


def children(layer):
    """Yields `(sublayer, attribute, index, graph_node)` for each direct
    sublayer of `layer` (`attribute` is `None` for graph nodes)."""
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
    """Lists every layer below `model` with where it sits, depth first.

    Layers that are nodes of a functional graph are listed with
    `graph_node=True`; their own sublayers are replaceable when the node is
    not itself functional. A layer held in two places is listed at each.

    Example:

    ```python
    paths = [site.path for site in kfinetune.walk.sites(model)]
    ```
    """
    found = []
    seen = set()

    def visit(layer):
        for child, attribute, index, graph_node in children(layer):
            site = Site(child, layer, attribute or "", index, graph_node)
            key = (id(child), id(layer), site.attribute, index)
            if key in seen:
                continue
            seen.add(key)
            found.append(site)
            visit(child)

    visit(model)
    return found


def layer_paths(model):
    """All distinct, non-empty layer paths below `model`, depth first."""
    return list(dict.fromkeys(s.path for s in sites(model) if s.path))


def duplicate_paths(candidates):
    """Paths shared by two distinct layer objects among the sites
    `candidates` (a model holding two copies of a backbone)."""
    owners = {}
    for site in candidates:
        if site.path:
            owners.setdefault(site.path, set()).add(id(site.layer))
    return sorted(path for path, ids in owners.items() if len(ids) > 1)
