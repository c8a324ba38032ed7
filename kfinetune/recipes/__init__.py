"""One-call fine-tuning recipes built from kfinetune's parts."""

from kfinetune.recipes.domain_adapt import domain_adapt
from kfinetune.recipes.few_shot_curve import FewShotCurve
from kfinetune.recipes.few_shot_curve import few_shot_curve
from kfinetune.recipes.few_shot_method import FewShotMethod
from kfinetune.recipes.fine_tune import fine_tune

__all__ = [
    "FewShotCurve",
    "FewShotMethod",
    "domain_adapt",
    "few_shot_curve",
    "fine_tune",
]
