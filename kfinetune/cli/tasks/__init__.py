"""The command line's tasks, one module each, all with the same functions
(data, model, training data, evaluation, samples, export), so that
`train`, `evaluate`, `predict` and `export` run any of them the same way.
Nothing here imports TensorFlow until a function runs."""

from kfinetune.cli.tasks import causal_lm
from kfinetune.cli.tasks import classify
from kfinetune.cli.tasks import qa
from kfinetune.cli.tasks import seq2seq
from kfinetune.cli.tasks import tag

TASKS = {
    module.NAME: module for module in (classify, tag, qa, causal_lm, seq2seq)
}


def get(name):
    """The module of task `name` (`"classify"`, `"tag"`, `"qa"`,
    `"causal-lm"`, `"seq2seq"`)."""
    return TASKS[name]


def tokenizer(settings):
    """The word-piece tokenizer of the run's preset (the bundled MiniLM's
    by default)."""
    import keras_hub

    from kfinetune import presets

    return keras_hub.tokenizers.Tokenizer.from_preset(
        str(settings["preset"] or presets.minilm_path())
    )


def held_out(total, settings, given):
    """Splits `total` examples (or groups of them) into train, validation
    and test: a permutation drawn with `--seed`, whose first
    `--test-split`, then `--validation-split`, are held out, except for a
    split in `given` (a file of its own).

    Returns:
        `{"train", "validation", "test"}` to sorted index lists.
    """
    import numpy as np

    order = np.random.default_rng(settings["seed"]).permutation(total)
    sizes = {
        name: 0 if name in given else round(settings[f"{name}_split"] * total)
        for name in ("test", "validation")
    }
    test_end = sizes["test"]
    validation_end = test_end + sizes["validation"]
    return {
        "test": sorted(order[:test_end]),
        "validation": sorted(order[test_end:validation_end]),
        "train": sorted(order[validation_end:]),
    }
