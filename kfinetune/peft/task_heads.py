"""`task_heads`: the base layers a method keeps trainable by default."""

import keras_hub

from kfinetune import walk
from kfinetune.peft import injected


def task_heads(model):
    """Paths of the layers of `model` that make up its task's head.

    The head is every layer with weights outside the model's keras-hub
    `Backbone`: a classifier's `logits`, a token classifier's `emissions`
    and `crf`, a question answerer's span head, each head of a multi-task
    model, and the head a user puts on a keras-hub backbone in their own
    functional model. These layers are initialised for the task, so a
    parameter-efficient method that froze them would train adapters in
    front of a random head. A model without a keras-hub backbone has no
    such boundary: its head is a layer named `logits`, if it has one. A
    backbone alone has no head.

    Args:
        model: a Keras model (with kfinetune's layers injected or not).

    Returns:
        A list of layer paths, in the order of the model's layers.

    Example:

    >>> model = kfinetune.presets.token_classifier(num_labels=5, crf=True)
    >>> kfinetune.peft.task_heads(model)
    ['emissions', 'crf']
    """
    if isinstance(model, keras_hub.models.Backbone):
        return []
    sites = walk.sites(model)
    backbones = [
        s.layer for s in sites if isinstance(s.layer, keras_hub.models.Backbone)
    ]
    if not backbones:
        return ["logits"] if "logits" in walk.layer_paths(model) else []
    inside = {id(b) for b in backbones}
    inside.update(id(s.layer) for b in backbones for s in walk.sites(b))
    heads = []
    for site in sites:
        layer = site.layer
        if (
            id(layer) in inside
            or injected.is_injected(layer)
            or any(True for _ in walk.children(layer))
            or not layer.weights
            or site.path in heads
        ):
            continue
        heads.append(site.path)
    return heads
