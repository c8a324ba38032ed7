"""`TrainingCurves`: loss, metrics and learning rates drawn to a PNG at the
end of `fit`."""

import math

import keras
import numpy as np

from kfinetune import checks
from kfinetune import plotting
from kfinetune.optimizers import LayerwiseOptimizer

_RATE_PREFIX = "lr/"
_RATE = "learning_rate"


@keras.saving.register_keras_serializable(package="kfinetune")
class TrainingCurves(keras.callbacks.Callback):
    """Draws the training curves to a PNG when `fit` ends.

    One panel per loss or metric, with the training value and, when there
    is validation data, the `val_` value per epoch; and a panel of the
    learning rates: every group's (`lr/<group>`) when the optimizer is a
    `LayerwiseOptimizer`, otherwise the optimizer's current rate (learning
    rate schedules included). Everything drawn is read from the epoch logs
    (plus the learning rates once per epoch when the logs lack them):
    nothing is read per step. The figure is also written when `fit` stops
    early.

    Args:
        path: the PNG file to write; its folder is created when missing.
        learning_rates: also draw the learning rates. Defaults to `True`.
        dpi: the resolution. Defaults to `120`.

    Example:

    ```python
    model.fit(
        train,
        validation_data=validation,
        epochs=3,
        callbacks=[kfinetune.callbacks.TrainingCurves("curves.png")],
    )
    ```
    """

    def __init__(self, path, learning_rates=True, dpi=120):
        super().__init__()
        checks.boolean("learning_rates", learning_rates)
        checks.positive_integer("dpi", dpi)
        self.path = str(path)
        self.learning_rates = learning_rates
        self.dpi = dpi
        self.history = []

    def on_train_begin(self, logs=None):
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        values = {}
        for name, value in (logs or {}).items():
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                continue
        if self.learning_rates and not any(
            name == _RATE or name.startswith(_RATE_PREFIX) for name in values
        ):
            values.update(_current_rates(self.model))
        self.history.append(values)

    def on_train_end(self, logs=None):
        if self.history:
            plot_training_curves(
                self.history,
                self.path,
                learning_rates=self.learning_rates,
                dpi=self.dpi,
            )

    def get_config(self):
        return {
            "path": self.path,
            "learning_rates": self.learning_rates,
            "dpi": self.dpi,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _current_rates(model):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return {}
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if isinstance(optimizer, LayerwiseOptimizer):
        return {
            f"{_RATE_PREFIX}{name}": float(optimizer.group_learning_rate(name))
            for name in optimizer.groups.names
        }
    rate = getattr(optimizer, "learning_rate", None)
    if rate is None:
        return {}
    return {_RATE: float(keras.ops.convert_to_numpy(rate))}


def plot_training_curves(history, path, learning_rates=True, dpi=120):
    """Draws per-epoch logs as training curves in a PNG.

    Args:
        history: a list of per-epoch log dicts, or a dict mapping each log
            name to its per-epoch values (`model.fit(...).history`).
        path: the PNG file to write; its folder is created when missing.
        learning_rates: also draw the `learning_rate` and `lr/<group>`
            entries. Defaults to `True`.
        dpi: the resolution. Defaults to `120`.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: `history` holds no epochs.

    Example:

    ```python
    history = model.fit(train, validation_data=validation, epochs=3)
    kfinetune.callbacks.plot_training_curves(history.history, "curves.png")
    ```
    """
    from matplotlib import ticker

    if isinstance(history, dict):
        epochs = max((len(v) for v in history.values()), default=0)
        rows = [
            {k: v[i] for k, v in history.items() if i < len(v)}
            for i in range(epochs)
        ]
    else:
        rows = list(history)
    if not rows:
        raise ValueError(
            f"`history` holds no epochs. Received: history={history!r}"
        )
    names = list(dict.fromkeys(name for row in rows for name in row))
    rates = [n for n in names if n == _RATE or n.startswith(_RATE_PREFIX)]
    metrics = [n for n in names if n not in rates and not n.startswith("val_")]
    metrics += [
        n[4:] for n in names if n.startswith("val_") and n[4:] not in names
    ]
    panels = len(metrics) + (1 if learning_rates and rates else 0)
    columns = min(panels, 3)
    figure = plotting.new_figure(
        4.0 * columns, 3.0 * math.ceil(panels / columns)
    )
    x = np.arange(1, len(rows) + 1)

    def series(name):
        return np.array([row.get(name, np.nan) for row in rows], float)

    for index, name in enumerate(metrics):
        axes = figure.add_subplot(
            math.ceil(panels / columns), columns, index + 1
        )
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in names:
                axes.plot(x, series(key), marker="o", label=label)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    if learning_rates and rates:
        axes = figure.add_subplot(math.ceil(panels / columns), columns, panels)
        for name in rates:
            label = name[len(_RATE_PREFIX) :] if name != _RATE else "all"
            axes.plot(x, series(name), marker="o", label=label)
        if all(np.nanmin(series(n)) > 0 for n in rates):
            axes.set_yscale("log")
        axes.set_title("learning rate")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        # Beside the panel: one line per group would hide the lines.
        axes.legend(
            fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5)
        )
    return plotting.save(figure, path, dpi)
