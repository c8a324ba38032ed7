"""Optimizers, layer groups and learning-rate schedules for fine-tuning."""

from kfinetune.optimizers import schedules
from kfinetune.optimizers.layer_groups import LayerGroups
from kfinetune.optimizers.layer_groups import layer_groups
from kfinetune.optimizers.layerwise_optimizer import LayerwiseOptimizer
from kfinetune.optimizers.lora_plus import lora_plus
from kfinetune.optimizers.lora_plus import lora_plus_groups

__all__ = [
    "LayerGroups",
    "LayerwiseOptimizer",
    "layer_groups",
    "lora_plus",
    "lora_plus_groups",
    "schedules",
]
