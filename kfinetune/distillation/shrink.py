"""`shrink`: a smaller student made of some layers of a teacher."""

import numbers
import re

import keras_hub

from kfinetune.peft import peft_model

_BLOCK = re.compile(r"transformer_layer_(\d+)")


def _is_index(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_layers(layers, num_layers):
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(
            "`layers` must be a non-empty list of transformer layer indices "
            f"to keep, e.g. [0, 2, 4]. Received: layers={layers!r}"
        )
    for index in layers:
        if not _is_index(index) or not 0 <= index < num_layers:
            raise ValueError(
                f"Every index in `layers` must be an integer in [0, "
                f"{num_layers}) (the model has {num_layers} transformer "
                f"layers). Received: layers={layers!r}"
            )
    if len(set(layers)) != len(layers):
        raise ValueError(
            "`layers` must not repeat an index: the copies would start "
            f"equal and only add cost. Received: layers={layers!r}"
        )
    if list(layers) != sorted(layers):
        # Reordering pretrained layers breaks what each one learned to
        # expect from the layer below it.
        raise ValueError(
            "`layers` must be in increasing order (the student keeps the "
            f"teacher's order). Received: layers={layers!r}"
        )


def _source_name(name, layers):
    match = _BLOCK.fullmatch(name)
    if match is None:
        return name
    return f"transformer_layer_{layers[int(match.group(1))]}"


def _copy_weights(source_model, target_model, rename):
    for layer in target_model.layers:
        if not layer.weights:
            continue
        source = source_model.get_layer(rename(layer.name))
        values = source.get_weights()
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            raise ValueError(
                f"Cannot copy the weights of {source.name!r} into "
                f"{layer.name!r}: their shapes differ "
                f"({[v.shape for v in values]} vs {shapes}). "
                f"Received: layer={layer.name!r}"
            )
        layer.set_weights(values)


def _shrink_backbone(backbone, layers, name):
    config = backbone.get_config()
    num_layers = config.get("num_layers")
    if not isinstance(num_layers, int) or not any(
        _BLOCK.fullmatch(layer.name) for layer in backbone.layers
    ):
        raise ValueError(
            "`shrink` takes a keras-hub encoder backbone whose config has "
            "`num_layers` and whose blocks are named `transformer_layer_<i>` "
            "(e.g. a `BertBackbone`). Received: "
            f"model={backbone.name!r} ({type(backbone).__name__})"
        )
    _check_layers(layers, num_layers)
    config["num_layers"] = len(layers)
    # A frozen teacher (e.g. inside a Distiller) still gives a student
    # meant for training.
    config["trainable"] = True
    if name is not None:
        config["name"] = name
    student = type(backbone).from_config(config)
    _copy_weights(backbone, student, lambda layer: _source_name(layer, layers))
    return student


def shrink(model, layers, name=None):
    """Builds a smaller copy of a keras-hub encoder from some of its layers.

    As DistilBERT initialises its student: the new backbone has
    `num_layers=len(layers)` and otherwise the same configuration; its
    embeddings, its pooler and its transformer layer `k` are exact copies
    of the original's embeddings, pooler and transformer layer
    `layers[k]`. Given a keras-hub task (e.g. a `BertTextClassifier`), it
    returns the same kind of task on the shrunk backbone, with the head's
    weights copied and the same preprocessor (shared, not copied: the
    student reads the same tokens).

    The result is a plain, trainable keras-hub model: it saves, exports
    and takes every `kfinetune.peft` method like the original. Its weight
    paths are the original's (`transformer_layer_0/...`), so a model holding
    both (a `kfinetune.distillation.Distiller`) has duplicate paths: apply
    PEFT methods to the student before building the distiller.

    Args:
        model: a keras-hub encoder backbone with `transformer_layer_<i>`
            blocks (e.g. `BertBackbone`), or a keras-hub task holding one.
            It is not modified.
        layers: the indices of the transformer layers to keep, in
            increasing order, without repeats, e.g. `[0, 2, 4]`.
        name: the name of the new backbone. Defaults to `None` (the
            original backbone's name).

    Returns:
        A new backbone of the same class, or a new task of the same class
        when `model` is a task.

    Raises:
        ValueError: `model` is not such a backbone or task, or `layers` is
            empty, out of range, repeats an index or is not increasing.

    Example:

    ```python
    teacher = kfinetune.presets.text_classifier(num_classes=2)
    student = kfinetune.presets.shrink(teacher, layers=[0, 2, 4])
    student.backbone.num_layers  # 3
    ```
    """
    if isinstance(model, keras_hub.models.Backbone):
        return _shrink_backbone(model, layers, name)
    backbone = getattr(model, "backbone", None)
    if (
        not isinstance(model, keras_hub.models.Task)
        or isinstance(model, peft_model.PEFTModel)
        or not isinstance(backbone, keras_hub.models.Backbone)
    ):
        raise ValueError(
            "`shrink` takes a keras-hub backbone or a keras-hub task with a "
            "`backbone` (e.g. a `BertTextClassifier`); for a model returned "
            "by `kfinetune.peft.apply`, shrink its base before applying. "
            f"Received: model={getattr(model, 'name', model)!r} "
            f"({type(model).__name__})"
        )
    student_backbone = _shrink_backbone(backbone, layers, name)
    config = model.get_config()
    config["backbone"] = student_backbone
    config["preprocessor"] = model.preprocessor
    student = type(model).from_config(config)
    student.trainable = True
    for layer in student.layers:
        if layer is student_backbone or not layer.weights:
            continue
        layer.set_weights(model.get_layer(layer.name).get_weights())
    return student
