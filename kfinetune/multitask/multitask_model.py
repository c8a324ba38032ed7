"""`build`: one shared backbone with one head per task."""

import re

import keras
import keras_hub

from kfinetune import encoders
from kfinetune.multitask import heads as heads_lib

_TASK = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _head_spec(task, spec):
    if isinstance(spec, heads_lib.Head):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        try:
            return heads_lib.Classification(spec)
        except ValueError:
            pass
    raise ValueError(
        f"The head of task {task!r} must be a number of classes (an integer "
        "of at least 2) or a head spec such as "
        "`kfinetune.multitask.TokenClassification(9)`. "
        f"Received: heads[{task!r}]={spec!r}"
    )


def _check_heads(heads, backbone):
    if not isinstance(heads, dict) or not heads:
        raise ValueError(
            "`heads` must be a non-empty dict of task name → head, e.g. "
            f'{{"sentiment": 2}}. Received: heads={heads!r}'
        )
    specs = {}
    for task, spec in heads.items():
        if not isinstance(task, str) or not _TASK.fullmatch(task):
            raise ValueError(
                "Task names must start with a letter and hold only letters, "
                f"digits and _. Received: task={task!r}"
            )
        specs[task] = _head_spec(task, spec)
    names = [
        backbone.name,
        *specs,
        *(f"{task}_{layer}" for task in specs for layer in ("dropout", "mean")),
    ]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(
            "Task names must differ from the backbone's name and from the "
            "other heads' `<task>_dropout` and `<task>_mean` layers. "
            f"Received: task={clashes[0]!r}"
        )
    return specs


def build(backbone, heads, name="multitask"):
    """Builds a multi-task model: a shared backbone, one head per task.

    The result is a plain functional `keras.Model` over the backbone's
    inputs (the dict of `token_ids`, `padding_mask` and, for the families
    that take them, `segment_ids`, that a keras-hub preprocessor produces)
    whose output is a dict keyed by task name. A sentence-level head with
    `pooling="pooler"` reads the pooler's `pooled_output` of BERT, ELECTRA
    and ALBERT, and the first token's hidden state of the families without
    a pooler (RoBERTa, XLM-RoBERTa, DistilBERT, DeBERTa-v3), the vector
    keras-hub's classifiers of those families read (see
    `kfinetune.encoders.outputs`). Each head is a dropout layer named
    `<task>_dropout` and a dense layer named `<task>` (its logits or value),
    after a `GlobalAveragePooling1D` named `<task>_mean` for a head with
    `pooling="mean"`.
    It saves as `.keras`, exports as a SavedModel, and compiles with dicts
    keyed by task name, so Keras logs `<task>_loss` and `<task>_<metric>`.
    Pass the metrics as `weighted_metrics`: Keras applies sample weights,
    which mask the other tasks' examples in `kfinetune.data.mix` data, only
    to those (its `metrics` would count every example for every task).

    Args:
        backbone: a built keras-hub backbone of a family of
            `kfinetune.encoders` (e.g. a `BertBackbone`, or a keras-hub
            text classifier's `.backbone`). Its weights are shared by every
            task.
        heads: a dict of task name → an integer number of classes (a
            `Classification` head) or a head spec: `Classification`,
            `TokenClassification` or `Regression`.
        name: the model's name. Defaults to `"multitask"`.

    Returns:
        A `keras.Model` with a dict output keyed by task name.

    Raises:
        ValueError: `backbone` is not a keras-hub backbone of a supported
            family (the message names the supported ones), `heads` is
            empty, or a task name or a head is invalid.

    Example:

    ```python
    backbone = kfinetune.presets.text_classifier(num_classes=2).backbone
    model = kfinetune.multitask.build(
        backbone,
        heads={
            "sentiment": 3,
            "tags": kfinetune.multitask.TokenClassification(9),
            "score": kfinetune.multitask.Regression(),
        },
    )
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=keras.optimizers.AdamW(5e-5),
        loss={"sentiment": sparse, "tags": sparse, "score": "mse"},
        loss_weights={"sentiment": 1.0, "tags": 0.5, "score": 1.0},
        weighted_metrics={"sentiment": ["accuracy"], "score": ["mae"]},
    )
    ```
    """
    if not isinstance(backbone, keras_hub.models.Backbone):
        hint = (
            " Pass its `.backbone`."
            if isinstance(getattr(backbone, "backbone", None), keras.Model)
            else ""
        )
        raise ValueError(
            f"`backbone` must be a keras-hub backbone such as `BertBackbone`."
            f"{hint} Received: backbone={getattr(backbone, 'name', backbone)!r}"
            f" ({type(backbone).__name__})"
        )
    encoders.family_of(backbone)
    specs = _check_heads(heads, backbone)
    inputs = backbone.input
    features = encoders.outputs(backbone, inputs)
    outputs = {}
    for task, spec in specs.items():
        x = features[spec.features]
        if spec.pooling == "mean":
            x = keras.layers.GlobalAveragePooling1D(
                dtype=backbone.dtype_policy, name=f"{task}_mean"
            )(x, mask=inputs["padding_mask"])
        x = keras.layers.Dropout(
            spec.dropout, dtype=backbone.dtype_policy, name=f"{task}_dropout"
        )(x)
        outputs[task] = keras.layers.Dense(
            spec.units,
            # keras-hub's BERT heads are initialised this way.
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=backbone.dtype_policy,
            name=task,
        )(x)
    return keras.Model(inputs, outputs, name=name)
