"""Callbacks that control what trains during `fit`."""

from kfinetune.callbacks.adaptive_fine_tuning import AdaptiveFineTuning
from kfinetune.callbacks.gradual_unfreezing import GradualUnfreezing

__all__ = ["AdaptiveFineTuning", "GradualUnfreezing"]
