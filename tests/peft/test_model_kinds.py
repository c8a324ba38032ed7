"""apply on every kind of Keras model, and under XLA, MirroredStrategy and
mixed precision."""

import keras
import numpy as np
import pytest

from kfinetune import compat
from kfinetune import peft
from kfinetune import testing
from kfinetune.peft import injected

X = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
Y = (np.arange(16) % 2).astype("int32")


def functional():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="x")
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(h))


def sequential():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(2, name="out"),
        ]
    )


@keras.saving.register_keras_serializable(package="kfinetune_tests")
class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(16, activation="relu", name="hidden")
        self.out = keras.layers.Dense(2, name="out")

    def call(self, x):
        return self.out(self.hidden(x))


def subclassed():
    keras.utils.set_random_seed(0)
    model = Subclassed()
    model(X)
    return model


@pytest.mark.parametrize("build", [functional, sequential, subclassed])
@pytest.mark.parametrize(
    "config",
    [
        lambda: peft.LoRAConfig(rank=2, targets=".*hidden", trainable=".*out"),
        lambda: peft.AdapterConfig(size=3, targets=".*hidden", trainable=[]),
    ],
)
def test_every_kind_of_model_adapts_trains_and_round_trips(
    build, config, tmp_path
):
    base = build()
    expected = testing.predict(base, X)
    hidden = [v for v in base.weights if "hidden" in v.path]
    before = [v.numpy().copy() for v in hidden]
    model = peft.apply(base, config())
    testing.assert_outputs_close(testing.predict(model, X), expected, atol=0)
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(X, Y, epochs=3, verbose=0)
    for v, value in zip(hidden, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), value)
    assert not np.allclose(testing.predict(model, X), expected)
    testing.assert_keras_round_trip(model, X, str(tmp_path))


def test_functional_rebuild_keeps_the_original_untouched():
    base = functional()
    model = peft.apply(base, peft.LoRAConfig(rank=2, targets="hidden"))
    assert [layer.name for layer in base.layers] == ["x", "hidden", "out"]
    assert [layer.name for layer in model.base.layers][1] == "lora_default"
    # The rebuilt graph shares the original layers and weights.
    assert model.base.get_layer("out") is base.get_layer("out")


def lora_bert():
    return peft.apply(
        testing.small_bert_classifier(),
        peft.LoRAConfig(rank=4, targets=[r".*/(query|value)", ".*dense"]),
    )


def adapter_bert():
    return peft.apply(
        testing.small_bert_classifier(), peft.AdapterConfig(size=4)
    )


@pytest.mark.parametrize("build", [lora_bert, adapter_bert])
def test_xla_matches_eager(build):
    x = testing.small_bert_inputs(batch_size=8)
    testing.assert_jit_compile_consistent(build, x, Y[:8])


@pytest.mark.parametrize("build", [lora_bert, adapter_bert])
def test_mirrored_strategy_matches_one_device(build):
    x = testing.small_bert_inputs(batch_size=8)
    testing.assert_mirrored_consistent(build, x, Y[:8])


def test_apply_outside_the_scope_creates_variables_under_the_strategy():
    strategy = testing.two_cpu_strategy()
    with strategy.scope():
        base = testing.small_bert_classifier()
    model = peft.apply(base, peft.LoRAConfig())
    for wrapper in injected.wrappers(model):
        assert compat.distribution_strategy(wrapper) is strategy
    x = testing.small_bert_inputs(batch_size=8)
    with strategy.scope():
        model.compile(
            keras.optimizers.SGD(0.1),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    model.fit(x, Y[:8], batch_size=8, epochs=1, verbose=0)


@pytest.mark.parametrize("config", [peft.LoRAConfig, peft.AdapterConfig])
def test_mixed_bfloat16(config, tmp_path):
    x = testing.small_bert_inputs(batch_size=8)
    expected = testing.predict(testing.small_bert_classifier(), x)
    with testing.dtype_policy("mixed_bfloat16"):
        base = testing.small_bert_classifier()
        model = peft.apply(base, config())
        assert all(v.dtype == "float32" for v in model.trainable_weights)
        testing.assert_outputs_close(
            testing.predict(model, x),
            expected,
            atol=10 * testing.BFLOAT16_TOLERANCE,
            rtol=5 * testing.BFLOAT16_TOLERANCE,
        )
        testing.compile_and_build(
            model,
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, Y[:8], epochs=2, verbose=0)
        testing.assert_keras_round_trip(
            model, x, str(tmp_path), atol=2 * testing.BFLOAT16_TOLERANCE
        )
        testing.assert_saved_model_round_trip(
            model, x, str(tmp_path / "sm"), atol=2 * testing.BFLOAT16_TOLERANCE
        )
