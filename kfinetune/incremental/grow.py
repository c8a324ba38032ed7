"""`grow_head`: a classifier with more classes that keeps the old ones."""

import keras
import keras_hub
import numpy as np

from kfinetune import checks
from kfinetune.peft.peft_model import PEFTModel

HEAD = "logits"


def _head(model):
    try:
        head = model.get_layer(HEAD)
    except ValueError:
        head = None
    if not isinstance(head, keras.layers.Dense) or head.units != getattr(
        model, "num_classes", None
    ):
        raise ValueError(
            "`model` must be a keras-hub text classifier whose "
            f"`{HEAD}` Dense layer scores its `num_classes` classes (such as "
            "`keras_hub.models.BertTextClassifier`). "
            f"Received: model={model.name!r} of type {type(model).__name__}"
        )
    return head


def grow_head(model, num_classes):
    """Builds a copy of a keras-hub text classifier with more classes.

    The new model has the class, configuration, preprocessor and every
    weight of `model`, except that its `logits` layer scores `num_classes`
    classes: the old classes keep their indices and their kernel columns
    and biases exactly, so the old classes' logits are unchanged for every
    input, and the new classes (indices `model.num_classes` to
    `num_classes - 1`) get fresh columns from the layer's initializer
    (keras-hub's: a truncated normal with standard deviation 0.02) and zero
    biases. The backbone is a copy: training the new model leaves `model`
    as it was. Compile the new model before training it.

    Grow the head before `kfinetune.peft.apply`: a `PEFTModel` rebuilds
    its base from the base's saved configuration, which the new head would
    not match.

    Args:
        model: a built `keras_hub.models.TextClassifier` with a `logits`
            Dense head, such as a `BertTextClassifier`.
        num_classes: the new number of classes, more than
            `model.num_classes`.

    Returns:
        A new model of the same class as `model`.

    Raises:
        ValueError: `model` is a `kfinetune.peft.PEFTModel` or not a
            keras-hub text classifier with a `logits` head, or
            `num_classes` is not larger than `model.num_classes`.

    Example:

    ```python
    binary = kfinetune.presets.text_classifier(num_classes=2)
    binary.fit(...)  # negative, positive
    three = kfinetune.incremental.grow_head(binary, 3)  # ..., neutral
    ```
    """
    if isinstance(model, PEFTModel):
        raise ValueError(
            "Grow the head of the base model before "
            "`kfinetune.peft.apply`: a `PEFTModel` rebuilds its base from "
            "the base's saved configuration, which the new head would not "
            f"match. Received: model={model.name!r} (a PEFTModel)"
        )
    if not isinstance(model, keras_hub.models.TextClassifier):
        raise ValueError(
            "`model` must be a keras-hub `TextClassifier` (such as "
            "`BertTextClassifier`). "
            f"Received: model of type {type(model).__name__}"
        )
    head = _head(model)
    old = head.units
    checks.positive_integer("num_classes", num_classes)
    if num_classes <= old:
        raise ValueError(
            f"`num_classes` must be more than the model's {old} classes. "
            f"Received: num_classes={num_classes}"
        )
    backbone = model.backbone
    # A copy, so that training the grown model leaves `model` unchanged.
    new_backbone = type(backbone).from_config(backbone.get_config())
    new_backbone.set_weights(backbone.get_weights())
    config = model.get_config()
    config.update(
        backbone=new_backbone,
        preprocessor=model.preprocessor,
        num_classes=num_classes,
    )
    grown = type(model)(**config)
    old_values = {v.path: v for v in model.weights}
    new_head = grown.get_layer(HEAD)
    for variable in grown.weights:
        value = keras.ops.convert_to_numpy(old_values[variable.path])
        if variable is new_head.kernel:
            kernel = np.array(keras.ops.convert_to_numpy(variable))
            kernel[:, :old] = value
            value = kernel
        elif variable is new_head.bias:
            bias = np.zeros(variable.shape, value.dtype)
            bias[:old] = value
            value = bias
        variable.assign(value)
    return grown
