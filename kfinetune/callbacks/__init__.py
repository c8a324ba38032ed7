"""Callbacks that control what trains during `fit`."""

from kfinetune.callbacks.adaptive_fine_tuning import AdaptiveFineTuning
from kfinetune.callbacks.gradual_unfreezing import GradualUnfreezing
from kfinetune.callbacks.group_learning_rates import GroupLearningRates

__all__ = ["AdaptiveFineTuning", "GradualUnfreezing", "GroupLearningRates"]
