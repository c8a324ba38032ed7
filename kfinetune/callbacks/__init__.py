"""Callbacks that control what trains during `fit`."""

from kfinetune.callbacks.gradual_unfreezing import GradualUnfreezing

__all__ = ["GradualUnfreezing"]
