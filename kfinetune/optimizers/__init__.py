"""Optimizers, layer groups and learning-rate schedules for fine-tuning."""

from kfinetune.optimizers import schedules
from kfinetune.optimizers.layer_groups import LayerGroups
from kfinetune.optimizers.layer_groups import layer_groups
from kfinetune.optimizers.layerwise_optimizer import LayerwiseOptimizer

__all__ = ["LayerGroups", "LayerwiseOptimizer", "layer_groups", "schedules"]
