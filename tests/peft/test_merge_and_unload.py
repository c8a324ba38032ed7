"""`merge_and_unload`: fold adapters in and get the plain base model back."""

import copy

import keras
import numpy as np
import pytest

from kfinetune import peft
from kfinetune import testing
from kfinetune.peft import injected

CONFIGS = {
    "lora": lambda: peft.LoRAConfig(rank=4, alpha=8),
    "ia3": lambda: peft.IA3Config(),
}
PREFIXES = ("lora_", "ia3_", "adapter_", "prefix_", "prompt_")


@pytest.fixture
def x():
    return testing.small_bert_inputs(batch_size=8, sequence_length=16)


def perturb(model, name="default"):
    """Moves an adapter's weights off their identity start."""
    rng = np.random.default_rng(0)
    for wrapper in injected.wrappers(model, name):
        for v in injected.own_weights(wrapper):
            if "lora_b" in v.path:
                v.assign(rng.normal(0, 0.3, v.shape).astype("float32"))
            elif "ia3_scale" in v.path:
                v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    peft.reset_compiled_functions(model)


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_returns_the_keras_hub_task_with_equal_outputs_and_round_trips(
    method, x, tmp_path
):
    base = testing.small_bert_classifier()
    paths = [v.path for v in base.weights]
    model = peft.apply(base, CONFIGS[method]())
    perturb(model)
    adapted = testing.predict(model, x)
    merged = peft.merge_and_unload(model)
    assert merged is base
    assert injected.wrappers(merged) == []
    assert [v.path for v in merged.weights] == paths
    assert not any(p in v.path for v in merged.weights for p in PREFIXES)
    # A plain model again: every weight trains, as in a fresh build.
    assert len(merged.trainable_weights) == len(merged.weights)
    testing.assert_outputs_close(testing.predict(merged, x), adapted, atol=1e-4)
    reloaded = testing.assert_keras_round_trip(merged, x, str(tmp_path))
    testing.assert_outputs_close(
        testing.predict(reloaded, x), adapted, atol=1e-4
    )
    assert (model.adapters, model.active) == ({}, [])


def test_folds_active_adapters_and_drops_inactive_ones(x):
    model = peft.apply(testing.small_bert_classifier(), CONFIGS["lora"]())
    perturb(model)
    model = peft.apply(model, CONFIGS["ia3"](), name="scales")
    perturb(model, "scales")
    peft.merge(model, "scales")
    peft.set_active(model, "scales")
    scales_only = testing.predict(model, x)
    merged = peft.merge_and_unload(model)
    assert injected.wrappers(merged) == []
    testing.assert_outputs_close(
        testing.predict(merged, x), scales_only, atol=1e-4
    )


def test_a_rebuilt_functional_graph_comes_back_plain(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    base = keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden))
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    model = peft.apply(base, peft.LoRAConfig(rank=2, targets="hidden"))
    perturb(model)
    adapted = testing.predict(model, x)
    merged = peft.merge_and_unload(model)
    assert [type(layer) for layer in merged.layers[1:]] == [
        keras.layers.Dense,
        keras.layers.Dense,
    ]
    testing.assert_outputs_close(testing.predict(merged, x), adapted, atol=1e-4)
    testing.assert_keras_round_trip(merged, x, str(tmp_path))


@pytest.mark.parametrize(
    "config, method",
    [
        (peft.AdapterConfig(size=4), "adapter"),
        (peft.PrefixConfig(length=2, hidden=8), "prefix"),
        (peft.PromptConfig(length=2), "prompt"),
    ],
)
def test_refuses_adapters_that_cannot_fold_and_changes_nothing(
    config, method, x
):
    model = peft.apply(testing.small_bert_classifier(), CONFIGS["lora"]())
    perturb(model)
    model = peft.apply(model, config, name="other")
    peft.set_active(model, ["default", "other"])
    peft.merge(model)
    expected = testing.predict(model, x)
    state = testing.model_state(model)
    records = {name: copy.copy(r) for name, r in model.adapters.items()}
    with pytest.raises(ValueError, match=f"'other': '{method}'"):
        peft.merge_and_unload(model)
    testing.assert_model_unchanged(model, state)
    assert model.adapters == records
    assert model.active == ["default", "other"]
    testing.assert_outputs_close(testing.predict(model, x), expected, atol=0)


def test_refuses_a_model_without_adapters():
    with pytest.raises(ValueError, match="Expected a model returned by"):
        peft.merge_and_unload(testing.small_bert_classifier())
