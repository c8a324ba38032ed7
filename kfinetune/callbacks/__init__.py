"""Callbacks that control what trains during `fit`, and what it reports."""

from kfinetune.callbacks.adaptive_fine_tuning import AdaptiveFineTuning
from kfinetune.callbacks.entity_f1 import EntityF1
from kfinetune.callbacks.gradual_unfreezing import GradualUnfreezing
from kfinetune.callbacks.group_learning_rates import GroupLearningRates
from kfinetune.callbacks.training_curves import TrainingCurves
from kfinetune.callbacks.training_curves import plot_training_curves

__all__ = [
    "AdaptiveFineTuning",
    "EntityF1",
    "GradualUnfreezing",
    "GroupLearningRates",
    "TrainingCurves",
    "plot_training_curves",
]
