"""The command line's tasks, one module each, all with the same functions
(data, model, training data, evaluation, samples, export), so that
`train`, `evaluate`, `predict` and `export` run any of them the same way.
Nothing here imports TensorFlow until a function runs."""

from kfinetune.cli.tasks import classify
from kfinetune.cli.tasks import qa
from kfinetune.cli.tasks import tag

TASKS = {module.NAME: module for module in (classify, tag, qa)}


def get(name):
    """The module of task `name` (`"classify"`, `"tag"`, `"qa"`)."""
    return TASKS[name]


def tokenizer(settings):
    """The word-piece tokenizer of the run's preset (the bundled MiniLM's
    by default)."""
    import keras_hub

    from kfinetune import presets

    return keras_hub.tokenizers.Tokenizer.from_preset(
        str(settings["preset"] or presets.minilm_path())
    )
