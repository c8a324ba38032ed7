import keras
import numpy as np
import pytest

from kfinetune import layers
from kfinetune import peft
from kfinetune import testing
from kfinetune.peft import injected

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture
def data():
    x = testing.small_bert_inputs(batch_size=8)
    return x, (np.arange(8) % 2).astype("int32")


def perturb(model):
    rng = np.random.default_rng(0)
    for wrapper in injected.wrappers(model):
        v = wrapper.ia3_scale
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    peft.reset_compiled_functions(model)


def test_exact_at_init_trains_only_scales_and_merges(data, tmp_path):
    x, y = data
    base = testing.small_bert_classifier()
    expected = testing.predict(base, x)
    model = peft.apply(base, peft.IA3Config())
    testing.assert_outputs_close(testing.predict(model, x), expected, atol=0)
    # Keys and values: heads × head size (4 × 8) each; the feed-forward
    # output's input: 64; per block, plus the logits head.
    info = peft.summary(model, print_fn=lambda line: None)
    assert info["adapters"]["default"]["parameters"] == 2 * (32 + 32 + 64)
    positions = {
        w.path.split("/")[-2]: w.position for w in injected.wrappers(model)
    }
    assert positions["feedforward_output_dense"] == "input"
    assert positions["key"] == "output"
    frozen = {v.path: v.numpy().copy() for v in base.weights}
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=2, verbose=0)
    for v in base.weights:
        if "ia3_" not in v.path and not v.path.startswith("logits"):
            np.testing.assert_array_equal(v.numpy(), frozen[v.path])
    perturb(model)
    adapted = testing.predict(model, x)
    peft.merge(model)
    testing.assert_outputs_close(testing.predict(model, x), adapted, atol=1e-4)
    reloaded = testing.assert_keras_round_trip(
        model, x, str(tmp_path), atol=1e-4
    )
    assert reloaded.adapters["default"].merged
    peft.unmerge(model)
    testing.assert_outputs_close(testing.predict(model, x), adapted, atol=1e-4)


def test_adapter_file_and_saved_model(data, tmp_path):
    x, _ = data
    model = peft.apply(testing.small_bert_classifier(), peft.IA3Config())
    perturb(model)
    expected = testing.predict(model, x)
    peft.save(model, tmp_path / "ia3.h5")
    loaded = peft.load(testing.small_bert_classifier(), tmp_path / "ia3.h5")
    testing.assert_outputs_close(testing.predict(loaded, x), expected)
    testing.assert_saved_model_round_trip(model, x, str(tmp_path / "sm"))


def test_xla_matches_eager(data):
    x, y = data
    testing.assert_jit_compile_consistent(
        lambda: peft.apply(testing.small_bert_classifier(), peft.IA3Config()),
        x,
        y,
    )


def test_mirrored_strategy_and_bfloat16(data):
    x, y = data
    testing.assert_mirrored_consistent(
        lambda: peft.apply(testing.small_bert_classifier(), peft.IA3Config()),
        x,
        y,
    )
    testing.assert_bfloat16_close(
        lambda: peft.apply(testing.small_bert_classifier(), peft.IA3Config()),
        x,
    )


def test_ia3_layer_errors():
    with pytest.raises(ValueError, match="position='middle'"):
        layers.IA3(keras.layers.Dense(4), position="middle")
    with pytest.raises(ValueError, match="Dense or EinsumDense"):
        layers.IA3(keras.layers.Embedding(4, 2))
    wrapper = layers.IA3(keras.layers.Dense(4, activation="relu"))
    with pytest.raises(ValueError, match="position='input'"):
        wrapper.build((None, 3))
    with pytest.raises(ValueError, match="feedforward=3"):
        peft.IA3Config(feedforward=3)


def test_ia3_on_a_lora_layer_is_skipped_and_reported():
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    with pytest.raises(ValueError, match="already adapted by LoRA"):
        peft.apply(model, peft.IA3Config(targets=".*/value"), name="ia3")


def test_lora_inside_an_ia3_layer_is_skipped_and_merges_cleanly(data):
    x, _ = data
    model = peft.apply(testing.small_bert_classifier(), peft.IA3Config())
    perturb(model)
    config = peft.LoRAConfig(rank=2, targets=r".*/(query|key)")
    model = peft.apply(model, config, name="lora")
    skipped = model.adapters["lora"].skipped
    assert [reason for _, reason in skipped] == [
        "already adapted by IA3, which LoRA cannot merge with"
    ] * 2
    assert all(path.endswith("/key") for path, _ in skipped)
    for wrapper in injected.wrappers(model, "lora"):
        wrapper.lora_b.assign(np.full(wrapper.lora_b.shape, 0.1, "float32"))
    peft.set_active(model, ["default", "lora"])
    adapted = testing.predict(model, x)
    merged = peft.merge_and_unload(model)
    testing.assert_outputs_close(testing.predict(merged, x), adapted, atol=1e-4)
