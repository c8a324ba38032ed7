"""What the subcommands share: writing outputs all at once, reading data,
and loading the model of a run."""

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
import warnings

from kfinetune.cli import config_file
from kfinetune.cli import errors
from kfinetune.cli import settings as defaults

CLASS_NAMES = "class_names.txt"
TAG_NAMES = "tag_names.txt"
MODEL = "model.keras"
ADAPTER = "adapter.h5"
SAVED_MODEL = "saved_model"


def export_folder(task):
    """The folder `train` exports a task's model to (a task module may name
    its own: the generators write a keras-hub preset)."""
    return getattr(task, "EXPORT_FOLDER", SAVED_MODEL)


def export_marker(task):
    """A file every export of the task holds: `export --output` replaces
    only a folder that has it."""
    return getattr(task, "EXPORT_MARKER", "saved_model.pb")


def export_description(task):
    """What a task's export is, for the messages."""
    return getattr(task, "EXPORT_DESCRIPTION", "takes raw text")


def labels_file(task):
    """The file of a run's label names: class names or tag names."""
    return {"classify": CLASS_NAMES, "tag": TAG_NAMES}.get(task)


@contextlib.contextmanager
def usage_errors():
    """Turns a `ValueError` or a file error from the user's input (a
    column, a file, a preset) into a `UsageError` (exit code 2)."""
    try:
        yield
    except errors.UsageError:
        raise
    except (ValueError, OSError, ImportError) as error:
        raise errors.UsageError(str(error)) from error


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


class Run:
    """A finished `train` run's folder: its settings, labels and model."""

    def __init__(self, path):
        from kfinetune.cli import parser

        self.path = pathlib.Path(path)
        if not self.path.is_dir():
            raise errors.UsageError(
                f"RUN_DIR must be the --output-dir of a `train` run. No such "
                f"folder. Received: RUN_DIR={str(path)!r}"
            )
        names = None
        missing = [config_file.CONFIG_NAME] * (
            not (self.path / config_file.CONFIG_NAME).is_file()
        )
        has_model = (self.path / MODEL).is_file()
        if not has_model and not (self.path / ADAPTER).is_file():
            missing.append(f"{MODEL} or {ADAPTER}")
        if not missing:
            read = config_file.read_config(
                self.path / config_file.CONFIG_NAME,
                parser.build_parser().train_actions,
            )
            self.settings = {
                **defaults.DEFAULTS,
                **{k: None for k in defaults.METHOD_OPTIONS},
                **{k: None for k in defaults.TASK_OPTIONS},
                **read,
            }
            names = labels_file(self.settings["task"])
            if names and not (self.path / names).is_file():
                missing.append(names)
        if missing:
            raise errors.UsageError(
                f"{str(path)!r} is not the folder of a finished `train` run: "
                f"it has no {', '.join(missing)}. "
                f"Received: RUN_DIR={str(path)!r}"
            )
        metrics = self.path / "metrics.json"
        self.metrics = (
            json.loads(metrics.read_text()) if metrics.is_file() else {}
        )
        self.labels = None
        if names:
            text = (self.path / names).read_text(encoding="utf-8")
            self.labels = tuple(text.splitlines())

    def set_threshold(self, threshold):
        """Replaces a multi-label run's threshold with `--threshold`, when
        given."""
        if threshold is None:
            return
        if not self.settings.get("multi_label"):
            raise errors.UsageError(
                "--threshold applies to classify --multi-label runs, and "
                f"{str(self.path)!r} is not one. "
                f"Received: --threshold={threshold}"
            )
        if not 0 < threshold < 1:
            raise errors.UsageError(
                "--threshold must be a probability in (0, 1). "
                f"Received: --threshold={threshold}"
            )
        self.settings["threshold"] = threshold

    @property
    def task(self):
        """The run's task module (`kfinetune.cli.tasks`)."""
        from kfinetune.cli import tasks

        return tasks.get(self.settings["task"])

    def load_model(self):
        """The trained model: `model.keras`, else the base preset with
        `adapter.h5` applied."""
        from kfinetune import peft

        if (self.path / MODEL).is_file():
            return load_keras(self.path / MODEL)
        base = self.task.build_model(self.settings, self.labels)
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
