"""Callbacks that control what trains during `fit`."""

from kfinetune.callbacks.adaptive_fine_tuning import AdaptiveFineTuning
from kfinetune.callbacks.gradual_unfreezing import GradualUnfreezing
from kfinetune.callbacks.group_learning_rates import GroupLearningRates
from kfinetune.callbacks.training_curves import TrainingCurves
from kfinetune.callbacks.training_curves import plot_training_curves

__all__ = [
    "AdaptiveFineTuning",
    "GradualUnfreezing",
    "GroupLearningRates",
    "TrainingCurves",
    "plot_training_curves",
]
