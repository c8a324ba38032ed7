"""One-call fine-tuning recipes built from kfinetune's parts."""

from kfinetune.recipes.fine_tune import fine_tune

__all__ = ["fine_tune"]
