import keras
import numpy as np
import pytest
from matplotlib.image import imread

from kfinetune import callbacks
from kfinetune import optimizers
from kfinetune import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def fit(model, optimizer, callback, epochs=2):
    model.compile(optimizer, LOSS, metrics=["accuracy"])
    x = testing.small_bert_inputs(batch_size=8)
    return model.fit(
        x,
        np.arange(8) % 2,
        validation_data=(x, np.arange(8) % 2),
        epochs=epochs,
        verbose=0,
        callbacks=[callback],
    )


def test_writes_loss_metrics_and_group_rates_at_the_end(tmp_path):
    keras.utils.set_random_seed(0)
    model = testing.small_bert_classifier()
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.SGD(0.1), optimizers.layer_groups(model), decay=0.5
    )
    callback = callbacks.TrainingCurves(tmp_path / "out" / "curves.png")
    fit(model, optimizer, callback)
    assert len(callback.history) == 2
    first = callback.history[0]
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(first)
    assert first["lr/head"] == pytest.approx(0.1)
    image = imread(tmp_path / "out" / "curves.png")
    # Three panels in a row (loss, accuracy, learning rate) at 120 dpi.
    assert image.shape[:2] == (360, 1440)


def test_a_schedule_is_drawn_as_one_rate(tmp_path):
    model = testing.small_bert_classifier()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)
    callback = callbacks.TrainingCurves(tmp_path / "curves.png", dpi=50)
    fit(model, keras.optimizers.SGD(schedule), callback)
    rates = [row["learning_rate"] for row in callback.history]
    assert rates[1] < rates[0]
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_plot_from_a_history_dict_and_errors(tmp_path):
    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.6]}
    path = callbacks.plot_training_curves(history, tmp_path / "h.png", dpi=50)
    assert imread(path).shape[:2] == (150, 200)
    with pytest.raises(ValueError, match="history"):
        callbacks.plot_training_curves({}, tmp_path / "e.png")
    with pytest.raises(ValueError, match="dpi"):
        callbacks.TrainingCurves("x.png", dpi=0)
    with pytest.raises(ValueError, match="learning_rates"):
        callbacks.TrainingCurves("x.png", learning_rates="yes")
