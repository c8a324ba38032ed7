import keras
import numpy as np
import pytest

from kfinetune import peft
from kfinetune import testing
from kfinetune.layers import AdapterWrapper
from kfinetune.layers import LoRA
from kfinetune.peft import injected

CONFIGS = {
    "lora": lambda: peft.LoRAConfig(rank=4, alpha=8),
    "houlsby": lambda: peft.AdapterConfig(size=6),
    "pfeiffer": lambda: peft.AdapterConfig(size=6, placement="pfeiffer"),
    "parallel": lambda: peft.AdapterConfig(size=6, placement="parallel"),
}


@pytest.fixture
def data():
    x = testing.small_bert_inputs(batch_size=8, sequence_length=16)
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0], "int32")
    return x, y


def compile_model(model, lr=1e-2):
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def perturb(model, name="default", scale=0.3):
    """Moves adapter weights off their identity start, deterministically."""
    rng = np.random.default_rng(0)
    for wrapper in injected.wrappers(model, name):
        for v in wrapper.trainable_weights:
            if "lora_b" in v.path or "adapter_up_kernel" in v.path:
                v.assign(rng.normal(0, scale, v.shape).astype(v.dtype))
    peft.reset_compiled_functions(model)


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_predict_equals_base_at_init_and_training_moves_only_adapters(
    method, data
):
    x, y = data
    base = testing.small_bert_classifier()
    expected = testing.predict(base, x)
    model = peft.apply(base, CONFIGS[method]())
    assert isinstance(model, peft.PEFTModel)
    testing.assert_outputs_close(testing.predict(model, x), expected, atol=0)
    before = {v.path: v.numpy().copy() for v in model.weights}
    trainable = {v.path for v in model.trainable_weights}
    compile_model(model).fit(x, y, epochs=3, verbose=0)
    moved = {
        v.path
        for v in model.weights
        if not np.array_equal(v.numpy(), before[v.path])
    }
    # The base stays bitwise unchanged; the adapter and the head moved.
    assert moved <= trainable
    assert {"logits/kernel", "logits/bias"} <= moved
    prefix = "lora_" if method == "lora" else "adapter_"
    assert any(f"/{prefix}default/" in p for p in moved)
    assert not np.allclose(testing.predict(model, x), expected)


def test_trainable_parameters_follow_the_lora_formula(data):
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig(rank=4))
    # 2 blocks × (query + value) × (32·4 + 4·32), plus logits 32·2 + 2.
    expected = 2 * 2 * (32 * 4 + 4 * 32) + 66
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == (
        expected
    )
    info = peft.summary(model, print_fn=lambda line: None)
    assert info["trainable"] == expected
    assert info["adapters"]["default"]["parameters"] == expected - 66
    assert len(info["adapters"]["default"]["layers"]) == 4
    assert set(info["other_trainable"]) == {"logits/kernel", "logits/bias"}


def test_all_linear_targets_every_dense_layer_of_each_block():
    model = peft.apply(
        testing.small_bert_classifier(),
        peft.LoRAConfig(rank=2, targets=[peft.ALL_LINEAR]),
    )
    info = peft.summary(model, print_fn=lambda line: None)
    names = sorted(
        {path.split("/")[-2] for path in info["adapters"]["default"]["layers"]}
    )
    assert names == [
        "attention_output",
        "feedforward_intermediate_dense",
        "feedforward_output_dense",
        "key",
        "query",
        "value",
    ]
    # Two blocks of six; the pooler and the head are not block layers.
    assert len(info["adapters"]["default"]["layers"]) == 12


def test_houlsby_adapter_formula_and_layer_norm_option():
    model = peft.apply(
        testing.small_bert_classifier(),
        peft.AdapterConfig(size=6, train_layer_norms=True),
    )
    info = peft.summary(model, print_fn=lambda line: None)
    adapters = 2 * 2 * (32 * 6 + 6 + 6 * 32 + 32)
    assert info["adapters"]["default"]["parameters"] == adapters
    norms = [p for p in info["other_trainable"] if "layer_norm" in p]
    assert len(norms) == 2 * 2 * 2 + 2  # gamma and beta, 2 per block + embed


def test_summary_prints_each_adapter_and_the_totals(capsys):
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    peft.summary(model)
    out = capsys.readouterr().out
    assert "default (lora, active)" in out
    assert "transformer_layer_1/self_attention_layer/value/lora_default" in out
    assert "trainable:" in out and "logits/kernel" in out


def test_merge_unmerge_and_merged_training_state(data):
    x, _ = data
    model = peft.apply(
        testing.small_bert_classifier(),
        peft.LoRAConfig(rank=4, targets=[r".*/(query|key|value)", r".*dense"]),
    )
    perturb(model)
    adapted = testing.predict(model, x)
    peft.merge(model)
    assert model.adapters["default"].merged
    testing.assert_outputs_close(testing.predict(model, x), adapted, atol=1e-4)
    assert {v.path for v in model.trainable_weights} == {
        "logits/kernel",
        "logits/bias",
    }
    peft.unmerge(model)
    testing.assert_outputs_close(testing.predict(model, x), adapted, atol=1e-5)
    assert any("lora_a" in v.path for v in model.trainable_weights)


def test_keras_round_trip_of_a_keras_hub_task_keeps_adapters_unmerged(
    tmp_path, data
):
    x, _ = data
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    model = peft.apply(model, peft.AdapterConfig(size=4), name="extra")
    perturb(model)
    perturb(model, "extra")
    peft.set_active(model, ["default", "extra"])
    reloaded = testing.assert_keras_round_trip(model, x, str(tmp_path))
    assert list(reloaded.adapters) == ["default", "extra"]
    assert reloaded.active == ["default", "extra"]
    assert not reloaded.adapters["default"].merged
    kinds = {type(w) for w in injected.wrappers(reloaded)}
    assert kinds == {LoRA, AdapterWrapper}
    assert reloaded.backbone.num_layers == 2


def test_keras_round_trip_of_a_merged_model(tmp_path, data):
    x, _ = data
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    perturb(model)
    peft.merge(model)
    reloaded = testing.assert_keras_round_trip(model, x, str(tmp_path))
    assert reloaded.adapters["default"].merged
    peft.unmerge(reloaded)
    peft.unmerge(model)
    testing.assert_outputs_close(
        testing.predict(reloaded, x), testing.predict(model, x), atol=1e-5
    )


@pytest.mark.parametrize("merged", [False, True])
def test_saved_model_export(tmp_path, data, merged):
    x, _ = data
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    perturb(model)
    if merged:
        peft.merge(model)
    testing.assert_saved_model_round_trip(model, x, str(tmp_path / "sm"))


def test_named_adapters_switch_disable_and_delete(data):
    x, y = data
    base = testing.small_bert_classifier()
    expected = testing.predict(base, x)
    model = peft.apply(base, peft.LoRAConfig(trainable=[]), name="a")
    perturb(model, "a")
    out_a = testing.predict(model, x)
    model = peft.apply(model, peft.AdapterConfig(size=4, trainable=[]), "b")
    assert model.active == ["b"]
    perturb(model, "b")
    out_b = testing.predict(model, x)
    assert not np.allclose(out_a, out_b)
    peft.set_active(model, "a")
    testing.assert_outputs_close(testing.predict(model, x), out_a, atol=0)
    assert all("/lora_a/" in v.path for v in model.trainable_weights)
    with peft.disable(model):
        testing.assert_outputs_close(
            testing.predict(model, x), expected, atol=0
        )
        assert model.trainable_weights == []
    testing.assert_outputs_close(testing.predict(model, x), out_a, atol=0)
    # fit right after a switch trains the newly active adapter only.
    peft.set_active(model, "b")
    own = injected.own_weights
    lora_weights, adapter_weights = (
        [v for w in injected.wrappers(model, n) for v in own(w)]
        for n in ("a", "b")
    )
    assert lora_weights and adapter_weights
    lora_before = [v.numpy().copy() for v in lora_weights]
    adapter_before = [v.numpy().copy() for v in adapter_weights]
    compile_model(model).fit(x, y, epochs=1, verbose=0)
    for v, before in zip(lora_weights, lora_before, strict=True):
        np.testing.assert_array_equal(v.numpy(), before)
    assert any(
        not np.allclose(v.numpy(), before)
        for v, before in zip(adapter_weights, adapter_before, strict=True)
    )
    peft.delete(model, "b")
    assert list(model.adapters) == ["a"] and model.active == []
    assert not any(
        isinstance(w, AdapterWrapper) for w in injected.wrappers(model)
    )
    testing.assert_outputs_close(testing.predict(model, x), expected, atol=0)
    peft.set_active(model, "a")
    testing.assert_outputs_close(testing.predict(model, x), out_a, atol=0)


def test_delete_of_a_merged_lora_restores_the_base_kernels(data):
    x, _ = data
    base = testing.small_bert_classifier()
    kernels = {v.path: v.numpy().copy() for v in base.weights}
    model = peft.apply(base, peft.LoRAConfig())
    perturb(model)
    peft.merge(model)
    peft.delete(model, "default")
    for v in base.weights:
        np.testing.assert_allclose(v.numpy(), kernels[v.path], atol=1e-6)
    assert injected.wrappers(model) == []


def test_adapter_only_save_and_load_into_a_fresh_model(tmp_path, data):
    x, y = data
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    compile_model(model).fit(x, y, epochs=2, verbose=0)
    expected = testing.predict(model, x)
    path = tmp_path / "task.adapter.h5"
    peft.save(model, path)
    # Only the adapter weights and the head: far smaller than the model.
    import h5py

    keys = []

    def collect(key, item):
        if isinstance(item, h5py.Dataset):
            keys.append(key)

    with h5py.File(path) as f:
        f["weights"].visititems(collect)
    assert len(keys) == 2 * 2 * 2 + 2
    fresh = testing.small_bert_classifier()
    loaded = peft.load(fresh, path)
    testing.assert_outputs_close(testing.predict(loaded, x), expected)


def test_load_refuses_another_architecture_and_leaves_it_unchanged(tmp_path):
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    path = tmp_path / "task.adapter.h5"
    peft.save(model, path)
    other = testing.small_bert_classifier(num_layers=3)
    state = testing.model_state(other)
    with pytest.raises(ValueError, match="another architecture"):
        peft.load(other, path)
    testing.assert_model_unchanged(other, state)


def test_load_refuses_a_newer_format(tmp_path):
    import h5py

    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    path = tmp_path / "task.adapter.h5"
    peft.save(model, path)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    fresh = testing.small_bert_classifier()
    state = testing.model_state(fresh)
    with pytest.raises(ValueError, match="format_version=99"):
        peft.load(fresh, path)
    testing.assert_model_unchanged(fresh, state)


def test_load_refuses_a_file_whose_weights_do_not_fit(tmp_path):
    import h5py

    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    path = tmp_path / "task.adapter.h5"
    peft.save(model, path)
    with h5py.File(path, "a") as f:
        name = "logits/kernel"
        del f["weights"][name]
        f["weights"].create_dataset(name, data=np.zeros((3, 3)))
    fresh = testing.small_bert_classifier()
    state = testing.model_state(fresh)
    with pytest.raises(ValueError, match="shape"):
        peft.load(fresh, path)
    testing.assert_model_unchanged(fresh, state)
    with open(tmp_path / "junk.h5", "w") as f:
        f.write("not hdf5")
    with pytest.raises(ValueError, match="not an adapter file"):
        peft.load(fresh, tmp_path / "junk.h5")


def test_merged_adapters_follow_the_active_set(data):
    x, _ = data
    base = testing.small_bert_classifier()
    expected = testing.predict(base, x)
    model = peft.apply(base, peft.LoRAConfig(trainable=[]), name="a")
    perturb(model, "a")
    out_a = testing.predict(model, x)
    model = peft.apply(model, peft.LoRAConfig(trainable=[]), name="b")
    perturb(model, "b", scale=0.5)
    out_b = testing.predict(model, x)
    peft.set_active(model, "a")
    # An inactive adapter computes nothing, so merging it would change the
    # outputs: the default merges the active ones, a named one is refused.
    with pytest.raises(ValueError, match="name='b'"):
        peft.merge(model, "b")
    assert not model.adapters["b"].merged
    peft.merge(model)
    assert model.adapters["a"].merged and not model.adapters["b"].merged
    testing.assert_outputs_close(testing.predict(model, x), out_a, atol=1e-4)
    # Disabling a merged adapter takes it out of the kernels, and the block
    # puts it back.
    with peft.disable(model):
        assert not model.adapters["a"].merged
        testing.assert_outputs_close(
            testing.predict(model, x), expected, atol=1e-5
        )
    assert model.adapters["a"].merged
    testing.assert_outputs_close(testing.predict(model, x), out_a, atol=1e-4)
    # Switching away from a merged adapter unmerges it.
    peft.set_active(model, "b")
    assert not model.adapters["a"].merged
    testing.assert_outputs_close(testing.predict(model, x), out_b, atol=1e-4)


def test_default_trainable_layers_are_the_task_head():
    # A user's own head on a keras-hub backbone, not named `logits`.
    backbone = testing.small_bert_backbone()
    pooled = backbone(backbone.input)["pooled_output"]
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(pooled)
    scores = keras.layers.Dense(2, name="classifier")(
        keras.layers.Dropout(0.1, name="head_dropout")(hidden)
    )
    model = keras.Model(backbone.input, scores)
    assert peft.task_heads(model) == ["hidden", "classifier"]
    applied = peft.apply(model, peft.LoRAConfig(rank=2))
    base = {
        v.path.split("/")[0]
        for v in applied.trainable_weights
        if "lora_" not in v.path
    }
    assert base == {"hidden", "classifier"}
    # A keras-hub classifier: its `logits`; the pooler is the backbone's.
    assert peft.task_heads(testing.small_bert_classifier()) == ["logits"]
    # A backbone alone has no head.
    assert peft.task_heads(testing.small_bert_backbone()) == []
    # Without a keras-hub backbone there is no boundary: `logits` if any.
    inputs = keras.Input((4,))
    features = keras.layers.Dense(3, name="features")(inputs)
    named = keras.Model(inputs, keras.layers.Dense(2, name="logits")(features))
    assert peft.task_heads(named) == ["logits"]
    unnamed = keras.Model(inputs, keras.layers.Dense(2, name="out")(features))
    assert peft.task_heads(unnamed) == []
