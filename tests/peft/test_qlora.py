"""LoRA over quantized (int8, int4) layers: QLoRA-style training."""

import os

import keras
import numpy as np
import pytest

from kfinetune import layers
from kfinetune import peft
from kfinetune import testing

# `quantize` runs `gc.collect()` for every float kernel it replaces.


def quantized_dense(mode, activation=None, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    dense = keras.layers.Dense(6, activation=activation, name="dense")
    model = keras.Model(inputs, dense(inputs))
    model.quantize(mode)
    return dense


def rows(n=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 8)).astype("float32")


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_lora_over_a_quantized_dense_trains_only_a_and_b(mode):
    dense = quantized_dense(mode, activation="gelu")
    # The same quantized layer without its activation: the base's
    # pre-activation output, which the update adds to.
    linear = quantized_dense(mode)
    x, y = rows(), rows(seed=1)[:, :6]
    frozen = {v.path: v.numpy().copy() for v in dense.weights}
    lora = layers.LoRA(dense, rank=2, alpha=4)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, lora(inputs))
    assert lora.quantized and lora.base_quantization_mode == mode
    expected = keras.activations.gelu(linear(x))
    testing.assert_outputs_close(testing.predict(model, x), expected)
    assert [v.dtype for v in model.trainable_weights] == ["float32"] * 2
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss="mse",
        jit_compile=True,
    )
    model.fit(x, y, epochs=3, verbose=0)
    for v in dense.weights:
        np.testing.assert_array_equal(v.numpy(), frozen[v.path])
    assert dense.kernel.dtype == "int8"
    a, b = lora.lora_a.numpy(), lora.lora_b.numpy()
    assert np.abs(b).max() > 0
    manual = keras.activations.gelu(linear(x) + 2.0 * x @ a @ b)
    testing.assert_outputs_close(testing.predict(model, x), manual, atol=1e-4)


def test_lora_over_an_int8_einsum_dense_is_exact_at_start():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 8))
    layer = keras.layers.EinsumDense("abc,cde->abde", (5, 2, 3), name="q")
    base = keras.Model(inputs, layer(inputs))
    base.quantize("int8")
    x = np.random.default_rng(0).normal(size=(4, 5, 8)).astype("float32")
    expected = testing.predict(base, x)
    lora = layers.LoRA(layer, rank=2)
    model = keras.Model(inputs, lora(inputs))
    testing.assert_outputs_close(testing.predict(model, x), expected)
    assert tuple(lora.lora_a.shape) == (8, 2)
    assert tuple(lora.lora_b.shape) == (2, 2, 3)


def test_unsupported_quantized_layers_are_refused_by_name_and_mode():
    dense = quantized_dense("float8")
    with pytest.raises(ValueError, match=r"quantized \(float8\).*'dense'"):
        layers.LoRA(dense, rank=2)
    embedding = keras.layers.Embedding(10, 4, name="table")
    embedding.build((None,))
    embedding.quantize("int8")
    with pytest.raises(ValueError, match=r"not a int8 Embedding.*'table'"):
        layers.LoRA(embedding, rank=2)


def test_quantizing_after_wrapping_is_an_error():
    dense = keras.layers.Dense(6, name="dense")
    lora = layers.LoRA(dense, rank=2)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, lora(inputs))
    with pytest.raises(ValueError, match="quantize the model .*before"):
        lora.quantize("int8")
    # `keras.Model.quantize` reaches the Dense inside the wrapper; the
    # wrapper then refuses to run rather than compute with a kernel it was
    # not applied to.
    model.quantize("int8")
    with pytest.raises(ValueError, match="quantized \\(int8\\) after LoRA"):
        model(rows())


def test_merging_lora_over_a_quantized_layer_is_refused():
    dense = quantized_dense("int8")
    lora = layers.LoRA(dense, rank=2)
    lora.build((None, 8))
    kernel = dense.kernel.numpy().copy()
    with pytest.raises(ValueError, match="quantized \\(int8\\)"):
        lora.merge()
    assert not lora.merged
    np.testing.assert_array_equal(dense.kernel.numpy(), kernel)


@pytest.fixture(scope="module")
def trained():
    """A small BERT with an int8 backbone and LoRA, trained a few steps."""
    model = testing.small_bert_classifier()
    model.backbone.quantize("int8")
    x = testing.small_bert_inputs(batch_size=8)
    quantized = model.predict(x, verbose=0)
    model = peft.apply(model, peft.LoRAConfig(rank=2, alpha=4))
    start = testing.predict(model, x)
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    model.fit(x, np.arange(8) % 2, epochs=2, verbose=0)
    return model, x, quantized, start


def test_bert_with_an_int8_backbone_trains_float_lora(trained):
    model, x, quantized, start = trained
    testing.assert_outputs_close(start, quantized)
    names = {v.path.split("/")[-1]: v.dtype for v in model.trainable_weights}
    assert names["lora_a"] == names["lora_b"] == "float32"
    int8 = [v for v in model.backbone.weights if v.dtype == "int8"]
    assert int8 and not any(v.trainable for v in int8)
    assert not np.allclose(testing.predict(model, x), start)


def test_bert_int8_lora_round_trips_keras_and_adapter_files(trained, tmp_path):
    model, x, _, _ = trained
    reloaded = testing.assert_keras_round_trip(model, x, tmp_path)
    assert any(v.dtype == "int8" for v in reloaded.backbone.weights)
    path = os.path.join(tmp_path, "qlora.adapter.h5")
    peft.save(model, path)
    fresh = testing.small_bert_classifier()
    fresh.backbone.quantize("int8")
    loaded = peft.load(fresh, path)
    testing.assert_outputs_close(
        testing.predict(loaded, x), testing.predict(model, x)
    )
    # An adapter file made over an int8 base records its dtypes.
    with pytest.raises(ValueError, match="another architecture"):
        peft.load(testing.small_bert_classifier(), path)


def test_bert_int8_lora_exports(trained, tmp_path):
    model, x, _, _ = trained
    testing.assert_saved_model_round_trip(model, x, tmp_path / "export")


def test_bert_int8_lora_refuses_merge_and_quantize(trained):
    model, x, _, _ = trained
    expected = testing.predict(model, x)
    with pytest.raises(ValueError, match="'default' cannot be merged"):
        peft.merge(model)
    with pytest.raises(ValueError, match="'default' cannot be merged"):
        peft.merge_and_unload(model)
    with pytest.raises(ValueError, match="quantize the base model first"):
        model.quantize("int8")
    assert model.adapters["default"].merged is False
    assert list(model.adapters) == ["default"]
    testing.assert_outputs_close(testing.predict(model, x), expected)


def test_ia3_skips_quantized_layers():
    # IA3 folds its scaling into the kernel when merged: not into int8.
    model = testing.small_bert_classifier()
    model.backbone.quantize("int8")
    with pytest.raises(ValueError, match=r"quantized \(int8\)"):
        peft.apply(model, peft.IA3Config())
