import glob

import keras
import numpy as np
import pytest

from kfinetune import callbacks
from kfinetune import optimizers
from kfinetune import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_rates_reach_the_logs_and_tensorboard(tmp_path):
    model = testing.small_bert_classifier()
    groups = optimizers.layer_groups(model)
    model.compile(
        optimizers.LayerwiseOptimizer(
            keras.optimizers.SGD(0.1), groups, decay=0.5
        ),
        LOSS,
    )
    x = testing.small_bert_inputs(batch_size=8)
    history = model.fit(
        x,
        np.arange(8) % 2,
        epochs=1,
        verbose=0,
        callbacks=[
            callbacks.GroupLearningRates(),
            keras.callbacks.TensorBoard(str(tmp_path)),
        ],
    )
    assert history.history["lr/head"] == [pytest.approx(0.1)]
    assert history.history["lr/embeddings"] == [pytest.approx(0.1 / 8)]
    assert glob.glob(str(tmp_path / "train" / "events.out.tfevents.*"))


def test_needs_a_layerwise_optimizer():
    model = testing.small_bert_classifier()
    model.compile(keras.optimizers.SGD(0.1), LOSS)
    with pytest.raises(ValueError, match="Received: optimizer=SGD"):
        model.fit(
            testing.small_bert_inputs(batch_size=8),
            np.arange(8) % 2,
            epochs=1,
            verbose=0,
            callbacks=[callbacks.GroupLearningRates()],
        )
