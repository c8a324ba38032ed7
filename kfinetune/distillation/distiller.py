"""`Distiller`: trains a student to imitate a frozen teacher."""

import numbers

import keras
from keras import ops

from kfinetune import checks
from kfinetune.distillation import losses


def _is_index(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _name(model):
    return getattr(model, "name", model)


def _num_outputs(model):
    try:
        shape = model.output.shape
    except (AttributeError, ValueError):
        # Subclassed models have no symbolic output: checked at trace time.
        return None
    return shape[-1] if shape else None


def _num_blocks(model, role):
    backbone = getattr(model, "backbone", None)
    num_layers = getattr(backbone, "num_layers", None)
    if not isinstance(backbone, keras.Model) or not _is_index(num_layers):
        raise ValueError(
            "Hidden-state matching reads the transformer layers of the "
            f"{role}'s backbone, so the {role} must be a keras-hub task (or a "
            "model returned by `kfinetune.peft.apply` on one) whose "
            "`backbone` has `num_layers` and `transformer_layer_<i>` layers. "
            f"Received: {role}={_name(model)!r} ({type(model).__name__})"
        )
    return num_layers


def _default_mapping(num_student, num_teacher):
    # Student layer k imitates the teacher layer ending the k-th of
    # `num_student` equal spans, so the last layers always correspond.
    return {
        k: (k + 1) * num_teacher // num_student - 1 for k in range(num_student)
    }


def _check_mapping(hidden_layers, num_student, num_teacher):
    if not isinstance(hidden_layers, dict) or not hidden_layers:
        raise ValueError(
            "`hidden_layers` must be a non-empty dict of student layer index "
            "→ teacher layer index, e.g. {0: 1, 1: 3, 2: 5}. "
            f"Received: hidden_layers={hidden_layers!r}"
        )
    for student_index, teacher_index in hidden_layers.items():
        valid = (
            _is_index(student_index)
            and _is_index(teacher_index)
            and 0 <= student_index < num_student
            and 0 <= teacher_index < num_teacher
        )
        if not valid:
            raise ValueError(
                "`hidden_layers` maps student layers (indices in [0, "
                f"{num_student})) to teacher layers (indices in [0, "
                f"{num_teacher})). Received: hidden_layers={hidden_layers!r}"
            )


def _taps(model, indices):
    """A functional model over `model.backbone`'s inputs that returns the
    outputs of its transformer layers `indices` (sharing their weights)."""
    backbone = model.backbone
    outputs = [
        backbone.get_layer(f"transformer_layer_{i}").output for i in indices
    ]
    return keras.Model(backbone.input, outputs, name=f"{model.name}_taps")


def _num_replicas():
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _serialize(model):
    config = keras.saving.serialize_keras_object(model)
    # The distiller is what is compiled; a keras-hub task's own default
    # compilation holds generated names (`adam_3`) that change on reload.
    config.pop("compile_config", None)
    return config


def _weighted_mean(values, sample_weight):
    if sample_weight is None:
        return ops.mean(values)
    weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return ops.sum(values * weight) / ops.maximum(ops.sum(weight), 1e-12)


@keras.saving.register_keras_serializable(package="kfinetune")
class Distiller(keras.Model):
    """Trains a student model to imitate a frozen teacher (knowledge
    distillation), with plain `compile` and `fit`.

    Its loss on a labelled batch `(x, y)` is

    `alpha · hard(y, student(x)) + (1 - alpha) · soft(teacher(x),
    student(x)) + hidden_weight · Σ hidden-state MSE + regularisation`

    where `hard` is the compiled loss (sparse categorical cross-entropy on
    logits by default), `soft` is
    `kfinetune.distillation.soft_target_loss`: the KL divergence between
    the temperature-softened class distributions, scaled by `T²`, and
    `regularisation` the models' regularisation losses, at full weight. On
    a batch without labels (a dataset of `x` only), or with `alpha=0`, the
    loss is the soft loss alone (plus the hidden-state and regularisation
    terms): the teacher
    labels the batch as it goes, which is how to distil from unlabelled
    text.

    With `hidden_weight > 0`, chosen student transformer layers also learn
    to reproduce the outputs of chosen teacher transformer layers (mean
    squared difference over the unpadded tokens), as in TinyBERT and
    patient KD. Both models must then be keras-hub tasks whose backbones
    have `transformer_layer_<i>` layers of the same hidden size; the
    student's layers are read by a second, functional pass over its
    backbone (keras-hub tasks expose no per-layer outputs), so a step costs
    about one more student forward and backward pass.

    The teacher is frozen (`teacher.trainable` is set to `False`) and runs
    in inference mode, so its weights never change and it is never among
    `trainable_weights`. Both models take the same inputs: for keras-hub
    tasks, the preprocessed dict (map the dataset through
    `distiller.preprocessor`, the student's). The teacher's and the
    student's outputs must be logits over the same classes.

    The distiller's own output is the student's, so `evaluate` and
    `predict` measure the student. What you keep, save and export is
    `distiller.student`: an ordinary model (a `.keras` file of the
    distiller holds the teacher too). It saves and reloads as `.keras`
    with both models; the two hold equal weight paths when the student is
    a shrunk teacher, which Keras's saving keys apart by attribute
    (`teacher/…`, `student/…`). Apply `kfinetune.peft` methods to the
    student before building the distiller: `kfinetune.peft.apply` on the
    distiller refuses paths that the teacher and the student share.

    Args:
        teacher: a trained `keras.Model` returning logits.
        student: the `keras.Model` to train, returning logits over the
            same classes, e.g. `kfinetune.presets.shrink(teacher, [0, 2,
            4])` or a model returned by `kfinetune.peft.apply`.
        temperature: the softmax temperature of the soft targets. Higher
            values pass on more of the teacher's view of the wrong classes.
            Defaults to `2.0`.
        alpha: the weight of the hard-label loss, in [0, 1]; the soft loss
            gets `1 - alpha`. Defaults to `0.5`.
        hidden_weight: the weight of the hidden-state loss; `0` turns it
            off. Defaults to `0.0`.
        hidden_layers: a dict of student transformer layer index → teacher
            transformer layer index whose outputs are matched, used when
            `hidden_weight > 0`. Defaults to `None`: student layer `k` of
            `S` matches teacher layer `(k + 1) · L / S - 1` of `L` (for 3
            of 6 layers: `{0: 1, 1: 3, 2: 5}`).
        **kwargs: `keras.Model` arguments such as `name`.

    Raises:
        ValueError: an argument is invalid, the teacher is the student, the
            models' class counts differ, or hidden-state matching is asked
            of models or layers that do not allow it. Raised before either
            model is changed.

    Example:

    ```python
    teacher = kfinetune.presets.text_classifier(num_classes=2)
    teacher.fit(data.train.batch(32), epochs=2)  # fine-tune the teacher
    student = kfinetune.presets.shrink(teacher, layers=[0, 2, 4])
    distiller = kfinetune.distillation.Distiller(
        teacher, student, temperature=2.0, alpha=0.5
    )
    distiller.compile(optimizer=keras.optimizers.AdamW(5e-5),
                      metrics=["accuracy"])
    distiller.fit(data.train.batch(32).map(distiller.preprocessor))
    distiller.student.save("student.keras")
    ```
    """

    def __init__(
        self,
        teacher,
        student,
        temperature=2.0,
        alpha=0.5,
        hidden_weight=0.0,
        hidden_layers=None,
        **kwargs,
    ):
        for role, model in (("teacher", teacher), ("student", student)):
            if not isinstance(model, keras.Model):
                raise ValueError(
                    f"`{role}` must be a `keras.Model`. Received: "
                    f"{role}={_name(model)!r} ({type(model).__name__})"
                )
        if teacher is student:
            raise ValueError(
                "The teacher and the student must be two models: training "
                "the student would change the teacher. Received: "
                f"teacher=student={_name(student)!r}"
            )
        checks.positive_number("temperature", temperature)
        checks.in_range("alpha", alpha, 0.0, 1.0, high_closed=True)
        checks.at_least("hidden_weight", hidden_weight, 0.0)
        teacher_classes = _num_outputs(teacher)
        student_classes = _num_outputs(student)
        if (
            teacher_classes is not None
            and student_classes is not None
            and teacher_classes != student_classes
        ):
            raise ValueError(
                "The teacher and the student must predict the same classes, "
                f"but the teacher has {teacher_classes} outputs and the "
                f"student {student_classes}. Received: "
                f"student={_name(student)!r}"
            )
        if hidden_layers is not None and hidden_weight == 0:
            raise ValueError(
                "`hidden_layers` is only used when `hidden_weight > 0`. "
                f"Received: hidden_layers={hidden_layers!r}, "
                f"hidden_weight={hidden_weight!r}"
            )
        if hidden_weight > 0:
            num_teacher = _num_blocks(teacher, "teacher")
            num_student = _num_blocks(student, "student")
            if hidden_layers is None:
                hidden_layers = _default_mapping(num_student, num_teacher)
            _check_mapping(hidden_layers, num_student, num_teacher)
            # Plain ints: the mapping goes into the JSON config.
            hidden_layers = {
                int(s): int(t) for s, t in sorted(hidden_layers.items())
            }
            student_taps = _taps(student, list(hidden_layers))
            teacher_taps = _taps(teacher, list(hidden_layers.values()))
            for s, t, i in zip(
                student_taps.outputs,
                teacher_taps.outputs,
                hidden_layers,
                strict=True,
            ):
                if s.shape[-1] != t.shape[-1]:
                    raise ValueError(
                        "Matched hidden states must have the same size, but "
                        f"student layer {i} has {s.shape[-1]} features and "
                        f"teacher layer {hidden_layers[i]} has "
                        f"{t.shape[-1]}. Received: "
                        f"hidden_layers={hidden_layers!r}"
                    )
        super().__init__(**kwargs)
        self.teacher = teacher
        self.student = student
        self.temperature = temperature
        self.alpha = alpha
        self.hidden_weight = hidden_weight
        self.hidden_layers = hidden_layers
        teacher.trainable = False
        if hidden_weight > 0:
            self._student_taps = student_taps
            self._teacher_taps = teacher_taps
            self.hidden_loss_tracker = keras.metrics.Mean(name="hidden_loss")
        self.soft_loss_tracker = keras.metrics.Mean(name="soft_loss")
        self.hard_loss_tracker = keras.metrics.Mean(name="hard_loss")
        self.built = True

    @property
    def preprocessor(self):
        """The student's preprocessor (keras-hub tasks), or `None`: map
        datasets of raw inputs through it before `fit`."""
        return getattr(self.student, "preprocessor", None)

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """`keras.Model.compile`, with the hard-label loss defaulting to
        sparse categorical cross-entropy on logits.

        Args:
            optimizer: the optimizer of the student's weights. Defaults to
                `"rmsprop"`.
            loss: the hard-label loss. Defaults to `None`:
                `keras.losses.SparseCategoricalCrossentropy(
                from_logits=True)`.
            **kwargs: other `keras.Model.compile` arguments (`metrics`,
                `jit_compile`, ...).
        """
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def call(self, inputs, training=None):
        for leaf in keras.tree.flatten(inputs):
            if "string" in str(getattr(leaf, "dtype", "")):
                raise ValueError(
                    "A Distiller takes the models' preprocessed inputs, not "
                    "raw text: map the dataset through "
                    "`distiller.preprocessor` first. "
                    f"Received: inputs of dtype {leaf.dtype}"
                )
        logits = self.student(inputs, training=training)
        if training and self.hidden_weight > 0:
            hidden = self._student_taps(inputs, training=training)
            return {"logits": logits, "hidden": hidden}
        return logits

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y_pred is None:
            y_pred = self(x, training=training)
        student_hidden = None
        if isinstance(y_pred, dict):
            student_hidden = y_pred["hidden"]
            y_pred = y_pred["logits"]
        teacher_logits = ops.stop_gradient(self.teacher(x, training=False))
        if teacher_logits.shape[-1] != y_pred.shape[-1]:
            raise ValueError(
                "The teacher and the student must predict the same classes, "
                f"but the teacher has {teacher_logits.shape[-1]} outputs and "
                f"the student {y_pred.shape[-1]}. Received: "
                f"student={_name(self.student)!r}"
            )
        soft = _weighted_mean(
            losses.soft_target_loss(teacher_logits, y_pred, self.temperature),
            sample_weight,
        )
        self.soft_loss_tracker.update_state(soft)
        # Under a distribution strategy each replica's loss is divided by
        # the number of replicas, so that their summed gradients are those
        # of the global batch (Keras scales its compiled losses the same
        # way, and reports the loss multiplied back).
        replicas = _num_replicas()
        soft = soft / replicas
        # The models' regularisation losses count once, at full weight,
        # outside the mix of hard and soft losses (scaled per replica as
        # Keras scales them).
        regularization = 0.0
        if self.losses:
            regularization = (
                ops.sum([ops.cast(extra, "float32") for extra in self.losses])
                / replicas
            )
        if y is not None and self.alpha > 0:
            # Keras's compute_loss is the compiled loss plus the
            # regularisation losses: keep the compiled loss alone here.
            hard = (
                super().compute_loss(
                    x, y, y_pred, sample_weight, training=training
                )
                - regularization
            )
            self.hard_loss_tracker.update_state(hard * replicas)
            total = self.alpha * hard + (1.0 - self.alpha) * soft
        else:
            total = soft
        total = total + regularization
        if student_hidden is not None:
            hidden = self._hidden_loss(x, student_hidden, sample_weight)
            self.hidden_loss_tracker.update_state(hidden)
            total = total + self.hidden_weight * hidden / replicas
        return total

    def _hidden_loss(self, x, student_hidden, sample_weight):
        teacher_hidden = self._teacher_taps(x, training=False)
        mask = x.get("padding_mask") if isinstance(x, dict) else None
        total = 0.0
        for teacher_states, student_states in zip(
            keras.tree.flatten(teacher_hidden),
            keras.tree.flatten(student_hidden),
            strict=True,
        ):
            per_example = losses.hidden_state_loss(
                ops.stop_gradient(teacher_states), student_states, mask
            )
            total = total + _weighted_mean(per_example, sample_weight)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if y is None:
            # Unlabelled batches: the label metrics would report stale or
            # empty values.
            return self._loss_results()
        if isinstance(y_pred, dict):
            y_pred = y_pred["logits"]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_metrics_result(self):
        if all(getattr(metric, "built", True) for metric in self.metrics):
            return super().get_metrics_result()
        # Only unlabelled batches so far: the compiled label metrics were
        # never built and have no result.
        return {
            name: float(ops.convert_to_numpy(value))
            for name, value in self._loss_results().items()
        }

    def _loss_results(self):
        return {
            metric.name: metric.result()
            for metric in self.metrics
            if metric.name in ("loss", "soft_loss", "hidden_loss")
        }

    def get_config(self):
        hidden_layers = self.hidden_layers
        if hidden_layers is not None:
            # JSON object keys are strings: store the mapping as pairs.
            hidden_layers = [[s, t] for s, t in hidden_layers.items()]
        return {
            "name": self.name,
            "teacher": _serialize(self.teacher),
            "student": _serialize(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "hidden_weight": self.hidden_weight,
            "hidden_layers": hidden_layers,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for role in ("teacher", "student"):
            config[role] = keras.saving.deserialize_keras_object(config[role])
        if config.get("hidden_layers") is not None:
            config["hidden_layers"] = {s: t for s, t in config["hidden_layers"]}
        return cls(**config)
