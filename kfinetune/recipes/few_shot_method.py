"""`FewShotMethod`: a way to fine-tune, as `few_shot_curve` runs it."""

import numpy as np

from kfinetune import checks
from kfinetune import peft


def _unchanged(model):
    return model


def _freeze_backbone(model):
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise ValueError(
            "The linear probe freezes `model.backbone`, and this model has "
            "none: build a keras-hub task (e.g. "
            "`kfinetune.presets.text_classifier`) or pass your own "
            f"`configure`. Received: model={model!r}"
        )
    backbone.trainable = False
    return model


class _ApplyConfig:
    """`peft.apply(model, make_config())`, with a readable repr."""

    def __init__(self, make_config, description):
        self.make_config = make_config
        self.description = description

    def __call__(self, model):
        return peft.apply(model, self.make_config())

    def __repr__(self):
        return self.description


class FewShotMethod:
    """A fine-tuning method: how to configure a model, and its learning rate.

    `kfinetune.recipes.few_shot_curve` builds a fresh model for every run,
    passes it to `configure`, and trains what `configure` returns with
    AdamW at `learning_rate` (decayed linearly to zero over the run).

    The constructors `full`, `linear_probe`, `lora` and `prompt` give the
    four methods the few-shot benchmark measures. Their learning rates are
    the ones chosen for each method on the tweets' validation split with
    2,000 training examples (see `benchmarks/quality.py`), not tuned for
    few examples: with 16 labelled examples there is no validation set
    worth tuning on.

    Args:
        learning_rate: AdamW's peak learning rate, a positive number.
        configure: takes the freshly built model and returns the model to
            train (e.g. `lambda m: kfinetune.peft.apply(m, config)`).
            Defaults to `None`: the model as built, every weight training.
        note: what the method trains, for tables and JSON. Defaults to
            `""`.

    Raises:
        ValueError: if `learning_rate` is not positive, `configure` is not
            callable, or `note` is not a string.

    Example:

    ```python
    methods = {
        "full": kfinetune.recipes.FewShotMethod.full(),
        "ia3": kfinetune.recipes.FewShotMethod(
            learning_rate=3e-2,
            configure=lambda model: kfinetune.peft.apply(
                model, kfinetune.peft.IA3Config()),
            note="IA3 on keys, values and the feed-forward activation",
        ),
    }
    ```
    """

    def __init__(self, learning_rate, configure=None, note=""):
        checks.positive_number("learning_rate", learning_rate)
        if configure is not None and not callable(configure):
            raise ValueError(
                "`configure` must be a callable that takes the built model "
                "and returns the model to train, or `None`. "
                f"Received: configure={configure!r}"
            )
        if not isinstance(note, str):
            raise ValueError(
                f"`note` must be a string. Received: note={note!r}"
            )
        self.learning_rate = learning_rate
        self.configure = configure
        self.note = note

    def __call__(self, model):
        """Returns the model to train, configured from the built `model`."""
        return (self.configure or _unchanged)(model)

    def __repr__(self):
        return (
            f"FewShotMethod(learning_rate={self.learning_rate!r}, "
            f"configure={self.configure!r}, note={self.note!r})"
        )

    def get_config(self):
        """The learning rate and note, JSON-ready (not the callable)."""
        return {"learning_rate": self.learning_rate, "note": self.note}

    @classmethod
    def full(cls, learning_rate=5e-5):
        """Full fine-tuning: every weight trains.

        Args:
            learning_rate: defaults to `5e-5`, the top of BERT's
                recommended range (2e-5 to 5e-5).

        Returns:
            A `FewShotMethod`.

        Example:

        ```python
        method = kfinetune.recipes.FewShotMethod.full()
        ```
        """
        return cls(learning_rate, note="every weight trains")

    @classmethod
    def linear_probe(cls, learning_rate=1e-3):
        """A linear probe: the backbone frozen, only the new head trains.

        Needs a model with a `backbone` (a keras-hub task).

        Args:
            learning_rate: defaults to `1e-3`: a new linear layer takes a
                large learning rate.

        Returns:
            A `FewShotMethod`.

        Example:

        ```python
        method = kfinetune.recipes.FewShotMethod.linear_probe()
        ```
        """
        return cls(
            learning_rate,
            configure=_freeze_backbone,
            note="backbone frozen, only the head trains",
        )

    @classmethod
    def lora(cls, rank=8, learning_rate=2e-3):
        """LoRA on the attention query and value, alpha = 2 × rank, the
        head trainable.

        Args:
            rank: the LoRA rank. Defaults to `8`.
            learning_rate: defaults to `2e-3`.

        Returns:
            A `FewShotMethod`.

        Example:

        ```python
        method = kfinetune.recipes.FewShotMethod.lora(rank=4)
        ```
        """
        checks.positive_integer("rank", rank)
        return cls(
            learning_rate,
            configure=_ApplyConfig(
                lambda: peft.LoRAConfig(rank=rank, alpha=2 * rank),
                f"LoRAConfig(rank={rank}, alpha={2 * rank})",
            ),
            note=f"LoRA rank {rank} on query and value, head trainable",
        )

    @classmethod
    def prompt(cls, length=20, learning_rate=3e-2):
        """Prompt tuning: soft prompts after `[CLS]`, started from random
        vocabulary embeddings, the head trainable.

        The prompts' initialisation seed is drawn from NumPy's global
        generator, which `few_shot_curve` seeds for every run
        (`keras.utils.set_random_seed`), so each seed starts from other
        vocabulary tokens.

        Args:
            length: the number of prompt vectors. Defaults to `20`.
            learning_rate: defaults to `3e-2`.

        Returns:
            A `FewShotMethod`.

        Example:

        ```python
        method = kfinetune.recipes.FewShotMethod.prompt(length=10)
        ```
        """
        checks.positive_integer("length", length)
        return cls(
            learning_rate,
            configure=_ApplyConfig(
                lambda: peft.PromptConfig(
                    length=length,
                    init="vocab",
                    seed=int(np.random.randint(2**31 - 1)),
                ),
                f"PromptConfig(length={length}, init='vocab')",
            ),
            note=f"{length} soft prompts, head trainable",
        )
