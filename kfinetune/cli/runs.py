"""What the subcommands share: writing outputs all at once, reading data,
and loading the model of a run."""

import contextlib
import os
import pathlib
import shutil
import tempfile
import warnings

from kfinetune.cli import arguments

CLASS_NAMES = "class_names.txt"
MODEL = "model.keras"
ADAPTER = "adapter.h5"
SAVED_MODEL = "saved_model"


@contextlib.contextmanager
def usage_errors():
    """Turns a `ValueError` or a file error from the user's input (a
    column, a file, a preset) into a `UsageError` (exit code 2)."""
    try:
        yield
    except arguments.UsageError:
        raise
    except (ValueError, OSError, ImportError) as error:
        raise arguments.UsageError(str(error)) from error


@contextlib.contextmanager
def staged(output_dir, replaces=()):
    """Yields an empty folder to write into; when the block succeeds, its
    contents move into `output_dir` (created if needed), first removing
    the names in `replaces` there, so a re-run leaves nothing of an older
    run. When the block fails, nothing is written."""
    output_dir = pathlib.Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(
        tempfile.mkdtemp(
            prefix=f".{output_dir.name}.",
            suffix=".partial",
            dir=output_dir.parent,
        )
    )
    # `mkdtemp` makes a private folder; the outputs get the usual rights.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    for name in {*replaces, *(p.name for p in staging.iterdir())}:
        _remove(output_dir / name)
    for item in staging.iterdir():
        item.rename(output_dir / item.name)
    staging.rmdir()


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def load_texts(settings, class_names=None):
    """The `LabelledTexts` of `settings["csv"]` or `settings["jsonl"]`."""
    from kfinetune import data

    columns = (settings["text_column"], settings["label_column"])
    if settings.get("csv"):
        return data.from_csv(settings["csv"], *columns, classes=class_names)
    return data.from_jsonl(settings["jsonl"], *columns, classes=class_names)


def load_data(settings):
    """The train / validation / test splits a `train` run uses."""
    from kfinetune import data

    if settings["csv"] or settings["jsonl"]:
        texts = load_texts(settings)
        return texts.split(validation=0.1, test=0.1, seed=settings["seed"])
    return data.tweet_sentiment(
        classes=settings["classes"], seed=settings["seed"]
    )


class Run:
    """A finished `train` run's folder: its settings, classes and model."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        if not self.path.is_dir():
            raise arguments.UsageError(
                f"RUN_DIR must be the --output-dir of a `train` run. No such "
                f"folder. Received: RUN_DIR={str(path)!r}"
            )
        missing = [
            name
            for name in (arguments.CONFIG_NAME, CLASS_NAMES)
            if not (self.path / name).is_file()
        ]
        has_model = (self.path / MODEL).is_file()
        if not has_model and not (self.path / ADAPTER).is_file():
            missing.append(f"{MODEL} or {ADAPTER}")
        if missing:
            raise arguments.UsageError(
                f"{str(path)!r} is not the folder of a finished `train` run: "
                f"it has no {', '.join(missing)}. "
                f"Received: RUN_DIR={str(path)!r}"
            )
        self.settings = {
            **arguments.DEFAULTS,
            **{k: None for k in arguments.METHOD_OPTIONS},
            "classes": None,
            "text_column": None,
            "label_column": None,
            **arguments.read_config(
                self.path / arguments.CONFIG_NAME,
                arguments.build_parser().train_actions,
            ),
        }
        names = (self.path / CLASS_NAMES).read_text(encoding="utf-8")
        self.class_names = names.splitlines()

    def load_model(self):
        """The trained model: `model.keras`, else the base preset with
        `adapter.h5` applied."""
        from kfinetune import peft
        from kfinetune import presets

        if (self.path / MODEL).is_file():
            return load_keras(self.path / MODEL)
        base = presets.text_classifier(
            num_classes=len(self.class_names),
            preset=self.settings["preset"],
            sequence_length=self.settings["sequence_length"],
        )
        return peft.load(base, self.path / ADAPTER)


def load_keras(path):
    """Loads a `.keras` model written by `train`, quietly."""
    import keras

    # Registers the layers and models that the file may hold.
    from kfinetune import layers  # noqa: F401
    from kfinetune import peft  # noqa: F401

    with warnings.catch_warnings():
        # Keras warns that it did not compile the reloaded keras-hub task
        # or restore its optimizer; the reload only predicts.
        warnings.filterwarnings("ignore", message=".*compile.*")
        warnings.filterwarnings("ignore", message=".*optimizer.*")
        return keras.models.load_model(path)
