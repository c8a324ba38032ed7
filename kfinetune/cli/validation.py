"""`ValidationScore`: a task's validation score in the epoch logs, where
early stopping reads it."""

import keras


class ValidationScore(keras.callbacks.Callback):
    """Writes `score(model)` into the logs as `name` after every epoch.

    List it before `keras.callbacks.EarlyStopping` so that the score is in
    the logs when early stopping reads them.

    Args:
        name: the key written into the logs, e.g. `"val_macro_f1"`.
        score: a function of the model returning a number.
    """

    def __init__(self, name, score):
        super().__init__()
        self.name = name
        self.score = score

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.name] = float(self.score(self.model))
