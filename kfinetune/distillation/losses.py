"""The distillation losses `Distiller` combines, as plain functions of
tensors (backend-agnostic `keras.ops`)."""

from keras import ops


def soft_target_loss(teacher_logits, student_logits, temperature=2.0):
    """The soft-target loss of knowledge distillation, per example.

    `KL(softmax(teacher / T) || softmax(student / T)) · T²` (Hinton et al.,
    2015). The `T²` keeps the gradient's size about independent of the
    temperature, so the weight between this and a hard-label loss need not
    change with `T`. Computed in float32 from log-softmaxes, so large
    logits neither overflow nor give `log(0)`.

    Args:
        teacher_logits: `(batch, num_classes)` logits of the teacher.
        student_logits: `(batch, num_classes)` logits of the student.
        temperature: the softmax temperature `T`. Defaults to `2.0`.

    Returns:
        A `(batch,)` tensor.

    Example:

    >>> import numpy as np
    >>> logits = np.array([[2.0, -1.0]])
    >>> float(kfinetune.distillation.soft_target_loss(logits, logits)[0])
    0.0
    """
    teacher = ops.cast(teacher_logits, "float32") / temperature
    student = ops.cast(student_logits, "float32") / temperature
    teacher_log_probs = ops.log_softmax(teacher, axis=-1)
    student_log_probs = ops.log_softmax(student, axis=-1)
    kl = ops.sum(
        ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs),
        axis=-1,
    )
    return kl * (temperature**2)


def hidden_state_loss(teacher_hidden, student_hidden, padding_mask=None):
    """The mean squared difference of two hidden-state sequences, per
    example, over the real (unpadded) tokens.

    Args:
        teacher_hidden: `(batch, sequence, hidden)` states of the teacher.
        student_hidden: states of the student, of the same shape.
        padding_mask: `(batch, sequence)`, true at real tokens, or `None` to
            average over every position. Defaults to `None`.

    Returns:
        A `(batch,)` tensor.

    Example:

    >>> import numpy as np
    >>> h = np.ones((2, 4, 8), "float32")
    >>> tuple(kfinetune.distillation.hidden_state_loss(h, 3 * h).shape)
    (2,)
    """
    teacher = ops.cast(teacher_hidden, "float32")
    student = ops.cast(student_hidden, "float32")
    per_token = ops.mean(ops.square(student - teacher), axis=-1)
    if padding_mask is None:
        return ops.mean(per_token, axis=-1)
    mask = ops.cast(padding_mask, "float32")
    # Every row has at least [CLS]; the maximum only guards empty rows.
    return ops.sum(per_token * mask, axis=-1) / ops.maximum(
        ops.sum(mask, axis=-1), 1.0
    )
