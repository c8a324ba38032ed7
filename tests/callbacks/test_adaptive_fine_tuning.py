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


def weights(model):
    return {v.path: v.numpy().copy() for v in model.weights}


@pytest.mark.parametrize("retrace", [True, False])
def test_unfreezes_the_next_group_on_a_plateau(retrace):
    model, groups = compiled()
    start = weights(model)
    adaptive = callbacks.AdaptiveFineTuning(
        groups,
        monitor="scripted",
        patience=0,
        mode="min",
        retrace=retrace,
        verbose=0,
    )
    model.fit(
        X,
        Y,
        epochs=4,
        verbose=0,
        callbacks=[Feed([1.0, 0.5, 0.6, 0.7]), adaptive],
    )
    # Improved at epochs 0 and 1; plateaued at 2 and 3: two more groups,
    # of which only the first had an epoch to train.
    assert adaptive.stage == 2
    end = weights(model)
    moved = {
        name: any(not np.array_equal(end[p], start[p]) for p in groups[name])
        for name in groups.names
    }
    assert moved == {
        "embeddings": False,
        "block_0": False,
        "block_1": True,
        "head": True,
    }


@pytest.mark.parametrize("min_delta, stage", [(0.0, 0), (0.1, 2)])
def test_smaller_changes_than_min_delta_are_plateaus(min_delta, stage):
    model, groups = compiled()
    adaptive = callbacks.AdaptiveFineTuning(
        groups,
        monitor="scripted",
        patience=0,
        min_delta=min_delta,
        mode="min",
        verbose=0,
    )
    model.fit(
        X,
        Y,
        epochs=3,
        verbose=0,
        callbacks=[Feed([1.0, 0.95, 0.9]), adaptive],
    )
    assert adaptive.stage == stage


def test_reduces_the_learning_rate_on_a_plateau_and_says_so(capsys):
    model, groups = compiled()
    adaptive = callbacks.AdaptiveFineTuning(
        groups,
        monitor="scripted",
        patience=1,
        action="reduce_lr",
        factor=0.5,
        mode="max",
    )
    model.fit(
        X,
        Y,
        epochs=4,
        verbose=0,
        callbacks=[Feed([0.5, 0.5, 0.5, 0.9]), adaptive],
    )
    assert adaptive.stage == 0
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    out = capsys.readouterr().out
    assert "AdaptiveFineTuning: stage 1/4, training ['head']" in out
    assert (
        "AdaptiveFineTuning: scripted did not improve for 2 epochs; "
        "learning rate now 0.05"
    ) in out


def test_unfreezing_every_group_then_cuts_the_learning_rate(capsys):
    model, groups = compiled()
    adaptive = callbacks.AdaptiveFineTuning(
        groups, monitor="scripted", patience=0, mode="min"
    )
    model.fit(
        X,
        Y,
        epochs=5,
        verbose=0,
        callbacks=[Feed([1.0, 1.0, 1.0, 1.0, 1.0]), adaptive],
    )
    assert adaptive.stage == 3
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    out = capsys.readouterr().out
    assert (
        "scripted did not improve for 1 epoch; stage 2/4, training "
        "['block_1', 'head']"
    ) in out


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
        ({"monitor": ""}, "monitor=''"),
        ({"patience": 1.5}, "patience=1.5"),
        ({"factor": "0.5"}, "factor='0.5'"),
        ({"min_delta": -0.1}, "min_delta=-0.1"),
        ({"min_delta": "0"}, "min_delta='0'"),
        ({"retrace": "no"}, "retrace='no'"),
        ({"train_batchnorm": 1}, "train_batchnorm=1"),
        ({"retrace": False, "train_batchnorm": True}, "needs `retrace=True`"),
        ({"verbose": 2}, "verbose=2"),
    ],
)
def test_bad_arguments(kwargs, message):
    groups = optimizers.layer_groups(testing.small_bert_classifier())
    with pytest.raises(ValueError, match=message):
        callbacks.AdaptiveFineTuning(groups, **kwargs)
