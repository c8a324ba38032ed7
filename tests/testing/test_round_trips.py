import keras
import numpy as np
import pytest

from kfinetune import testing


@pytest.fixture
def data():
    x = testing.small_bert_inputs(batch_size=8, sequence_length=16)
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0], "int32")
    return x, y


def test_config_round_trip_of_a_layer_and_a_schedule():
    revived = testing.assert_config_round_trip(keras.layers.Dense(3))
    assert isinstance(revived, keras.layers.Dense)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, 100)
    testing.assert_config_round_trip(schedule)


def test_config_round_trip_detects_a_lossy_config():
    @keras.saving.register_keras_serializable(package="kfinetune_tests")
    class Lossy(keras.layers.Layer):
        def __init__(self, units=1, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def get_config(self):
            # Forgets `units`: from_config rebuilds units=1 and the
            # round trip would silently change the layer.
            config = super().get_config()
            config.pop("units", None)
            return {**config, "size": self.units}

        @classmethod
        def from_config(cls, config):
            config.pop("size")
            return cls(**config)

    with pytest.raises(AssertionError):
        testing.assert_config_round_trip(Lossy(units=3))


def test_keras_round_trip_of_a_keras_hub_task(tmp_path, data):
    x, _ = data
    model = testing.small_bert_classifier()
    reloaded = testing.assert_keras_round_trip(model, x, str(tmp_path))
    assert reloaded.backbone.num_layers == 2


def test_outputs_close_detects_a_different_model(data):
    x, _ = data
    model = testing.small_bert_classifier()
    other = testing.small_bert_classifier(seed=1)
    with pytest.raises(AssertionError):
        testing.assert_outputs_close(
            testing.predict(other, x), testing.predict(model, x)
        )


def test_saved_model_round_trip(tmp_path, data):
    x, _ = data
    model = testing.small_bert_classifier()
    reloaded = testing.assert_saved_model_round_trip(
        model, x, str(tmp_path / "export")
    )
    assert hasattr(reloaded, "serve")


def test_fit_and_predict_trains(data):
    x, y = data
    losses, out = testing.fit_and_predict(
        testing.small_bert_classifier, x, y, steps=5
    )
    assert len(losses) == 5
    assert losses[-1] < losses[0]
    assert out.shape == (8, 2)


def test_jit_compile_consistent(data):
    x, y = data
    losses, _ = testing.assert_jit_compile_consistent(
        testing.small_bert_classifier, x, y
    )
    assert len(losses) == 3


def test_mirrored_consistent(data):
    x, y = data
    strategy = testing.two_cpu_strategy()
    assert strategy.num_replicas_in_sync == 2
    testing.assert_mirrored_consistent(testing.small_bert_classifier, x, y)


def test_mirrored_refuses_xla(data):
    x, y = data
    with pytest.raises(ValueError, match="jit_compile=True"):
        testing.assert_mirrored_consistent(
            testing.small_bert_classifier, x, y, jit_compile=True
        )


def test_mixed_bfloat16_predictions_close_to_float32(data):
    x, _ = data
    # bfloat16 keeps 8 bits of mantissa: compared with its own tolerance,
    # relative to the size of the logits.
    model = testing.assert_bfloat16_close(testing.small_bert_classifier, x)
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"
