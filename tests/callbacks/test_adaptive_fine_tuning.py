import keras
import numpy as np
import pytest

from kfinetune import callbacks
from kfinetune import optimizers
from kfinetune import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
X = testing.small_bert_inputs(batch_size=16)
Y = (np.arange(16) % 2).astype("int32")


class Feed(keras.callbacks.Callback):
    """Replaces the monitored metric by a scripted sequence."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["scripted"] = self.values[epoch]


def compiled():
    model = testing.small_bert_classifier()
    groups = optimizers.layer_groups(model)
    model.compile(
        optimizers.LayerwiseOptimizer(keras.optimizers.SGD(0.1), groups), LOSS
    )
    return model, groups


def test_unfreezes_the_next_group_on_a_plateau():
    model, groups = compiled()
    adaptive = callbacks.AdaptiveFineTuning(
        groups, monitor="scripted", patience=0, mode="min", verbose=0
    )
    model.fit(
        X,
        Y,
        epochs=4,
        verbose=0,
        callbacks=[Feed([1.0, 0.5, 0.6, 0.7]), adaptive],
    )
    # Improved at epochs 0 and 1; plateaued at 2 and 3: two more groups.
    assert adaptive.stage == 2


def test_reduces_the_learning_rate_scale_on_a_plateau():
    model, groups = compiled()
    adaptive = callbacks.AdaptiveFineTuning(
        groups,
        monitor="scripted",
        patience=1,
        action="reduce_lr",
        factor=0.5,
        mode="max",
        verbose=0,
    )
    model.fit(
        X,
        Y,
        epochs=4,
        verbose=0,
        callbacks=[Feed([0.5, 0.5, 0.5, 0.9]), adaptive],
    )
    assert adaptive.stage == 0
    assert float(model.optimizer.scale) == pytest.approx(0.5)


def test_missing_metric_is_a_clear_error():
    model, groups = compiled()
    with pytest.raises(ValueError, match="'val_accuracy', which is not"):
        model.fit(
            X,
            Y,
            epochs=1,
            verbose=0,
            callbacks=[callbacks.AdaptiveFineTuning(groups, "val_accuracy")],
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"action": "stop"}, "action='stop'"),
        ({"patience": -1}, "patience=-1"),
        ({"factor": 1.5}, "factor=1.5"),
        ({"mode": "up"}, "mode='up'"),
    ],
)
def test_bad_arguments(kwargs, message):
    groups = optimizers.layer_groups(testing.small_bert_classifier())
    with pytest.raises(ValueError, match=message):
        callbacks.AdaptiveFineTuning(groups, **kwargs)
