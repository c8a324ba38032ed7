"""One-call fine-tuning recipes built from kfinetune's parts."""

from kfinetune.recipes.domain_adapt import domain_adapt
from kfinetune.recipes.fine_tune import fine_tune

__all__ = ["domain_adapt", "fine_tune"]
