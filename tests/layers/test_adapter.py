import keras
import numpy as np
import pytest

from kfinetune import layers
from kfinetune import testing


def test_adapter_is_the_identity_at_init_and_learns(tmp_path):
    inputs = keras.Input((5, 16))
    adapter = layers.Adapter(size=4)
    model = keras.Model(inputs, adapter(inputs))
    x = np.random.default_rng(0).normal(size=(8, 5, 16)).astype("float32")
    testing.assert_outputs_close(testing.predict(model, x), x)
    assert model.count_params() == 16 * 4 + 4 + 4 * 16 + 16
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss="mse"
    )
    model.fit(x, x * 0.5, epochs=5, verbose=0)
    assert np.abs(adapter.adapter_up_kernel.numpy()).max() > 0
    assert not np.allclose(testing.predict(model, x), x)
    testing.assert_keras_round_trip(model, x, str(tmp_path))


def test_parallel_form_returns_only_the_update():
    adapter = layers.Adapter(size=4, residual=False)
    x = np.ones((2, 8), "float32")
    np.testing.assert_array_equal(adapter(x), np.zeros((2, 8)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 0}, "size=0"),
        ({"size": -2}, "size=-2"),
        ({"size": 2.0}, "size=2.0"),
        ({"size": 2, "init_scale": 0}, "init_scale=0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.Adapter(**kwargs)


def test_adapter_wrapper_after_a_dense_layer_round_trips(tmp_path):
    inputs = keras.Input((8,))
    dense = keras.layers.Dense(8)
    wrapper = layers.AdapterWrapper(dense, size=2)
    model = keras.Model(inputs, wrapper(inputs))
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    expected = x @ dense.kernel.numpy() + dense.bias.numpy()
    testing.assert_outputs_close(testing.predict(model, x), expected)
    wrapper.adapter.adapter_up_kernel.assign(np.ones((2, 8), "float32"))
    model.make_predict_function(force=True)
    testing.assert_keras_round_trip(model, x, str(tmp_path))
