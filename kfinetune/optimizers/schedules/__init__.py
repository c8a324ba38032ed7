"""Learning-rate schedules used in fine-tuning, as serializable
`keras.optimizers.schedules.LearningRateSchedule`s."""

from kfinetune.optimizers.schedules.one_cycle import OneCycle
from kfinetune.optimizers.schedules.slanted_triangular import SlantedTriangular
from kfinetune.optimizers.schedules.warmup_cosine_decay import WarmupCosineDecay
from kfinetune.optimizers.schedules.warmup_linear_decay import WarmupLinearDecay

__all__ = [
    "OneCycle",
    "SlantedTriangular",
    "WarmupCosineDecay",
    "WarmupLinearDecay",
]
