"""Gradient arithmetic of `LayerwiseOptimizer.apply`: what a plain Keras
optimizer does to the gradients of all its weights at once, written for
weights split over several group optimizers."""

import tensorflow as tf
from keras import ops

from kfinetune import compat


def overwrites(variable):
    """Whether the gradient of `variable` is its new value (Keras's float8
    training), not a step direction."""
    return getattr(variable, "overwrite_with_gradient", False)


def divide(gradient, divisor):
    # Keras 3.15's own `apply` fails here on the sparse gradient of an
    # embedding table (IndexedSlices has no `/`).
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(
            gradient.values / divisor, gradient.indices, gradient.dense_shape
        )
    return gradient / divisor


def clip_by_global_norm(values, clip_norm):
    # Keras's formula: a NaN or infinite norm makes every gradient NaN.
    norm = ops.sqrt(
        ops.sum(ops.stack([ops.sum(ops.square(v)) for v in values]))
    )
    scale = clip_norm * ops.minimum(1.0 / norm, 1.0 / clip_norm)
    scale = scale + (norm - norm)
    return [v * scale for v in values]


def no_step(grads, variables):
    return None


def distributed_cond(pred, true_fn, false_fn, grads, variables):
    """`ops.cond(pred, true_fn, false_fn)` whose branches may step
    optimizers, which sum gradients across replicas. Where replicas sync
    through `merge_call` (`MirroredStrategy` without XLA), a `cond` around
    a sync fails, so the branch is chosen in the cross-replica context and
    run on every replica, as `keras.optimizers.LossScaleOptimizer` does."""
    context = tf.distribute.get_replica_context()
    if (
        not tf.distribute.has_strategy()
        or context is None
        or compat.syncs_without_merge_call()
    ):
        ops.cond(
            pred,
            lambda: true_fn(grads, variables),
            lambda: false_fn(grads, variables),
        )
        return

    def choose(distribution, pred, grads, variables):
        # `pred` is the same on every replica: it reads mirrored state.
        pred = distribution.experimental_local_results(pred)[0]
        run = distribution.extended.call_for_each_replica
        ops.cond(
            pred,
            lambda: run(true_fn, args=(grads, variables)),
            lambda: run(false_fn, args=(grads, variables)),
        )

    context.merge_call(choose, args=(pred, grads, variables))
