"""`kfinetune.peft.load_hf` / `save_hf` and the exact-GELU backbone.

The fixtures in `tests/fixtures/hf_peft/` were written by real PyTorch and
PEFT (`make_fixtures.py` there says how); the logits in them are
PyTorch's. `lora_dora` and `lora_rslora` load within 7.2e-7 and 8.9e-7 of
PyTorch's logits. The other way, `make_fixtures.py --check` loaded in
PEFT 0.21.2 rank-4 MiniLM adapters written by `save_hf`: DoRA on every
dense layer (PyTorch's logits within 8.2e-8 of kfinetune's), rsLoRA
(1.5e-7), PiSSA with rsLoRA and OLoRA with DoRA written with
`convert_to_lora=True` (2.2e-7 and 1.1e-7).
"""

import json
import pathlib
import shutil

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from kfinetune import peft
from kfinetune import presets
from kfinetune import testing
from kfinetune.hf_encoders import checkpoint_activation
from kfinetune.layers import LoRA

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "hf_peft"
BASE = "sentence-transformers/all-MiniLM-L6-v2"
INPUTS = ("token_ids", "segment_ids", "padding_mask")


def logits(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def fixture_inputs(name):
    record = json.loads((FIXTURES / name / "logits.json").read_text())
    x = {k: np.array(record[k], "int32") for k in INPUTS}
    return x, np.array(record["logits"])


@pytest.mark.parametrize(
    "name",
    ["lora", "lora_pooler", "lora_embedding", "lora_dora", "lora_rslora"],
)
def test_load_hf_matches_pytorch_peft_logits(name):
    x, expected = fixture_inputs(name)
    model = presets.text_classifier(num_classes=2, sequence_length=16)
    model = peft.load_hf(model, FIXTURES / name, base_model=BASE)
    np.testing.assert_allclose(logits(model, x), expected, atol=1e-4)
    config = model.adapters["default"].config
    assert config.rank == 4
    # DoRA's magnitudes on keras-hub's 3-D attention kernels (query and
    # value: (hidden, heads, head_dim); attention_output: (heads,
    # head_dim, hidden)), and rsLoRA's scale alpha / sqrt(r) = 8 / 2.
    assert config.use_dora == (name == "lora_dora")
    assert config.use_rslora == (name == "lora_rslora")
    assert config.scale == (4.0 if name == "lora_rslora" else 2.0)
    # The pooler (a top-level node of the backbone's graph) is adapted.
    wrapped = {w.base_layer.name for w in _loras(model)}
    assert ("pooled_dense" in wrapped) == (name == "lora_pooler")
    # PEFT's `lora_embedding_A` / `_B` (keys without `.weight`).
    assert ("token_embedding" in wrapped) == (name == "lora_embedding")
    # The classifier came from modules_to_save and stays trainable.
    assert model.base.get_layer("logits").trainable


def _loras(model):
    from kfinetune.peft import injected

    return [w for w in injected.wrappers(model.base) if isinstance(w, LoRA)]


def small_adapted(seed=0, targets=(r".*/(query|value)", "pooled_dense")):
    keras.utils.set_random_seed(seed)
    model = testing.small_bert_classifier()
    model = peft.apply(model, peft.LoRAConfig(rank=2, alpha=4, targets=targets))
    for wrapper in _loras(model):
        wrapper.lora_b.assign(
            np.random.default_rng(seed).normal(0, 0.3, wrapper.lora_b.shape)
        )
        if isinstance(wrapper.base_layer, keras.layers.Embedding):
            # An embedding's A starts at zero (B does for projections).
            wrapper.lora_a.assign(
                np.random.default_rng(seed + 1).normal(
                    0, 0.3, wrapper.lora_a.shape
                )
            )
    return model


def test_save_hf_writes_peft_files_that_load_hf_reads_back(tmp_path):
    x = testing.small_bert_inputs()
    model = small_adapted()
    directory = peft.save_hf(model, tmp_path / "adapter", base_model=BASE)
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "SEQ_CLS"
    assert (config["r"], config["lora_alpha"]) == (2, 4)
    assert config["modules_to_save"] == ["classifier"]
    assert "bert.pooler.dense" in config["target_modules"]
    tensors = load_file(str(directory / "adapter_model.safetensors"))
    key = "base_model.model.bert.encoder.layer.0.attention.self.query"
    # PyTorch's layout: A is (rank, in), B is (out, rank).
    assert tensors[f"{key}.lora_A.weight"].shape == (2, 32)
    assert tensors[f"{key}.lora_B.weight"].shape == (32, 2)
    assert tensors["base_model.model.classifier.weight"].shape == (2, 32)

    fresh = testing.small_bert_classifier(seed=0)
    fresh.get_layer("logits").kernel.assign(
        np.zeros(fresh.get_layer("logits").kernel.shape)
    )
    loaded = peft.load_hf(fresh, directory, base_model=BASE)
    np.testing.assert_allclose(logits(loaded, x), logits(model, x), atol=1e-5)
    # Everything else works on a loaded adapter: merge folds it in.
    peft.merge(loaded)
    np.testing.assert_allclose(logits(loaded, x), logits(model, x), atol=1e-5)


def test_save_hf_writes_dora_and_rslora_as_peft_does(tmp_path):
    x = testing.small_bert_inputs()
    keras.utils.set_random_seed(0)
    model = peft.apply(
        testing.small_bert_classifier(),
        peft.LoRAConfig(
            rank=2,
            alpha=4,
            use_dora=True,
            use_rslora=True,
            targets=[peft.ALL_LINEAR],
        ),
    )
    rng = np.random.default_rng(0)
    for wrapper in _loras(model):
        wrapper.lora_b.assign(rng.normal(0, 0.3, wrapper.lora_b.shape))
        m = wrapper.lora_magnitude
        m.assign(m.numpy() * rng.uniform(0.8, 1.2, m.shape))
    directory = peft.save_hf(model, tmp_path / "adapter", base_model=BASE)
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["use_dora"] is True and config["use_rslora"] is True
    tensors = load_file(str(directory / "adapter_model.safetensors"))
    key = "base_model.model.bert.encoder.layer.0.attention.self.query"
    # One magnitude per output feature (heads × head_dim), no `.weight`.
    assert tensors[f"{key}.lora_magnitude_vector"].shape == (32,)
    loaded = peft.load_hf(testing.small_bert_classifier(), directory)
    np.testing.assert_allclose(logits(loaded, x), logits(model, x), atol=1e-5)
    # A DoRA adapter of an embedding is refused by name.
    tensors[
        "base_model.model.bert.embeddings.word_embeddings.lora_embedding_A"
    ] = np.zeros((2, len(testing.VOCABULARY)), "float32")
    tensors[
        "base_model.model.bert.embeddings.word_embeddings.lora_embedding_B"
    ] = np.zeros((32, 2), "float32")
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    with pytest.raises(ValueError, match=r"Embedding.*use_dora=True"):
        peft.load_hf(testing.small_bert_classifier(), directory)


def test_save_hf_writes_embedding_factors_as_peft_does(tmp_path):
    x = testing.small_bert_inputs()
    model = small_adapted(targets=(r".*/(query|value)", "token_embedding"))
    directory = peft.save_hf(model, tmp_path / "adapter", base_model=BASE)
    config = json.loads((directory / "adapter_config.json").read_text())
    assert "bert.embeddings.word_embeddings" in config["target_modules"]
    tensors = load_file(str(directory / "adapter_model.safetensors"))
    key = "base_model.model.bert.embeddings.word_embeddings"
    # PEFT keeps an embedding's factors as parameters, not modules: no
    # `.weight` (PEFT skips such keys). A is (rank, vocabulary), B is
    # (dim, rank).
    assert sorted(k for k in tensors if "word_embeddings" in k) == [
        f"{key}.lora_embedding_A",
        f"{key}.lora_embedding_B",
    ]
    a = tensors[f"{key}.lora_embedding_A"]
    b = tensors[f"{key}.lora_embedding_B"]
    assert (a.shape, b.shape) == ((2, 47), (32, 2))
    # PEFT's update of the table, `(B @ A).T * alpha / r`, is kfinetune's.
    (wrapper,) = [
        w for w in _loras(model) if w.base_layer.name == "token_embedding"
    ]
    np.testing.assert_allclose(
        (b @ a).T * 4 / 2,
        keras.ops.convert_to_numpy(wrapper.delta()),
        atol=1e-6,
    )

    loaded = peft.load_hf(testing.small_bert_classifier(), directory)
    assert "token_embedding" in {w.base_layer.name for w in _loras(loaded)}
    np.testing.assert_allclose(logits(loaded, x), logits(model, x), atol=1e-5)
    # The embedding's update counts: without it the logits differ.
    wrapper.enabled = False
    assert np.abs(logits(model, x) - logits(loaded, x)).max() > 1e-3


def test_loaded_adapter_saves_and_reloads_as_keras_file(tmp_path):
    x = testing.small_bert_inputs()
    model = small_adapted()
    peft.save_hf(model, tmp_path / "adapter")
    loaded = peft.load_hf(testing.small_bert_classifier(), tmp_path / "adapter")
    loaded.save(tmp_path / "model.keras")
    revived = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(logits(revived, x), logits(model, x), atol=1e-5)


def tampered(tmp_path, config_changes=None, rename=None):
    source = tmp_path / "source"
    if not source.exists():
        peft.save_hf(small_adapted(), source, base_model=BASE)
    target = tmp_path / "tampered"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    config = json.loads((target / "adapter_config.json").read_text())
    config.update(config_changes or {})
    (target / "adapter_config.json").write_text(json.dumps(config))
    if rename:
        tensors = load_file(str(target / "adapter_model.safetensors"))
        tensors = {rename(k): v for k, v in tensors.items()}
        save_file(tensors, str(target / "adapter_model.safetensors"))
    return target


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"peft_type": "LOHA"}, "peft_type='LOHA'"),
        # DoRA without its magnitudes.
        ({"use_dora": True}, "lora_magnitude_vector"),
        # Relative to a base PEFT changed (not converted to plain LoRA).
        ({"init_lora_weights": "pissa"}, "init_lora_weights='pissa'"),
        ({"init_lora_weights": "olora"}, "init_lora_weights='olora'"),
        ({"bias": "all"}, "bias='all'"),
        ({"r": 3}, "r=3 need"),
    ],
)
def test_unsupported_configs_are_refused(tmp_path, changes, message):
    directory = tampered(tmp_path, changes)
    model = testing.small_bert_classifier()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        peft.load_hf(model, directory)
    # Nothing changed.
    assert len(model.get_weights()) == len(before)
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_targets_and_wrong_shapes_are_refused(tmp_path):
    model = testing.small_bert_classifier()
    directory = tampered(
        tmp_path, rename=lambda k: k.replace("self.query", "self.rotary")
    )
    with pytest.raises(ValueError, match="no keras-hub BERT counterpart"):
        peft.load_hf(model, directory)
    query = "encoder.layer.1.attention.self.query"
    embedding = "embeddings.word_embeddings"
    # PEFT's keys for the word embeddings, holding a query's factors: A is
    # (rank, hidden), not (rank, vocabulary).
    directory = tampered(
        tmp_path,
        rename=lambda k: k.replace(
            f"{query}.lora_A.weight", f"{embedding}.lora_embedding_A"
        ).replace(f"{query}.lora_B.weight", f"{embedding}.lora_embedding_B"),
    )
    with pytest.raises(
        ValueError, match=r"lora_embedding_A of 'token_embedding' has shape"
    ):
        peft.load_hf(model, directory)
    # A Linear's key format on the embedding: PEFT would skip these keys.
    directory = tampered(tmp_path, rename=lambda k: k.replace(query, embedding))
    with pytest.raises(ValueError, match="PEFT's keys for an embedding"):
        peft.load_hf(model, directory)
    # An embedding's key format on a projection.
    directory = tampered(
        tmp_path,
        rename=lambda k: k.replace("lora_A.weight", "lora_embedding_A"),
    )
    with pytest.raises(ValueError, match="PEFT's keys for a projection"):
        peft.load_hf(model, directory)
    # `.weight` after an embedding's factors (as `save_hf` wrote them
    # before it followed PEFT): PEFT skips such keys.
    directory = tampered(
        tmp_path,
        rename=lambda k: k.replace(
            f"{query}.lora_A", f"{embedding}.lora_embedding_A"
        ).replace(f"{query}.lora_B", f"{embedding}.lora_embedding_B"),
    )
    with pytest.raises(ValueError, match="Unrecognised LoRA weight"):
        peft.load_hf(model, directory)
    directory = tampered(
        tmp_path, rename=lambda k: k.replace("layer.1.", "layer.7.")
    )
    with pytest.raises(ValueError, match="made for another model"):
        peft.load_hf(model, directory)


def test_another_base_model_is_refused(tmp_path):
    directory = tampered(tmp_path)
    with pytest.raises(ValueError, match="base_model='bert-base-uncased'"):
        peft.load_hf(
            testing.small_bert_classifier(),
            directory,
            base_model="bert-base-uncased",
        )
    # Other shapes: a wider model.
    wider = testing.small_bert_classifier(hidden_dim=48, num_heads=4)
    with pytest.raises(ValueError, match="another base model"):
        peft.load_hf(wider, directory)
    # Another head: three classes.
    three = testing.small_bert_classifier(num_classes=3)
    with pytest.raises(ValueError, match="another number of classes"):
        peft.load_hf(three, directory)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="adapter_config.json"):
        peft.load_hf(testing.small_bert_classifier(), tmp_path)
    with pytest.raises(ValueError, match="BertBackbone"):
        peft.load_hf(testing.small_gpt2_causal_lm(), tampered(tmp_path))
    with pytest.raises(ValueError, match="PEFTModel"):
        peft.save_hf(testing.small_bert_classifier(), tmp_path / "x")
    model = peft.apply(testing.small_bert_classifier(), peft.IA3Config())
    with pytest.raises(ValueError, match="LoRA adapter"):
        peft.save_hf(model, tmp_path / "x")
    model = small_adapted()
    peft.merge(model)
    with pytest.raises(ValueError, match="merged"):
        peft.save_hf(model, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_lora_targets_top_level_nodes_of_keras_hub_graphs(tmp_path):
    x = testing.small_bert_inputs()
    base = testing.small_bert_classifier()
    expected = logits(base, x)
    model = peft.apply(
        base, peft.LoRAConfig(rank=2, targets=["pooled_dense", "logits"])
    )
    assert model.adapters["default"].skipped == []
    assert {w.base_layer.name for w in _loras(model)} == {
        "pooled_dense",
        "logits",
    }
    np.testing.assert_allclose(logits(model, x), expected, atol=1e-6)
    for wrapper in _loras(model):
        wrapper.lora_b.assign(np.ones(wrapper.lora_b.shape))
    changed = logits(model, x)
    assert np.abs(changed - expected).max() > 1e-2
    model.save(tmp_path / "model.keras")
    revived = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(logits(revived, x), changed, atol=1e-5)
    plain = peft.merge_and_unload(model)
    np.testing.assert_allclose(logits(plain, x), changed, atol=1e-5)


def test_hf_bert_backbone_keeps_its_activation_through_saving(tmp_path):
    backbone = testing.small_bert_backbone(num_layers=1)
    exact = presets.HFBertBackbone.from_backbone(backbone, "gelu")
    x = testing.small_bert_inputs()
    out = keras.ops.convert_to_numpy(exact(x)["pooled_output"])
    approximate = keras.ops.convert_to_numpy(backbone(x)["pooled_output"])
    assert 0 < np.abs(out - approximate).max() < 0.1
    exact.save(tmp_path / "b.keras")
    revived = keras.saving.load_model(tmp_path / "b.keras")
    assert type(revived) is presets.HFBertBackbone
    assert revived.activation == "gelu"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(revived(x)["pooled_output"]), out, atol=1e-6
    )
    with pytest.raises(ValueError, match="activation='tanh'"):
        presets.HFBertBackbone.from_backbone(backbone, "tanh")
    with pytest.raises(ValueError, match="backbone=GPT2Backbone"):
        presets.HFBertBackbone.from_backbone(
            testing.small_gpt2_causal_lm().backbone, "gelu"
        )


def test_checkpoint_activation_reads_hidden_act(tmp_path):
    assert checkpoint_activation(presets.minilm_path()) == "gelu"
    assert checkpoint_activation("bert_base_en") is None
    config = {"model_type": "bert", "hidden_act": "gelu_new"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert checkpoint_activation(tmp_path) == "gelu_approximate"
    config["hidden_act"] = "quick_gelu"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="hidden_act='quick_gelu'"):
        checkpoint_activation(tmp_path)


def test_presets_build_minilm_with_exact_gelu():
    backbone = presets.backbone()
    assert type(backbone) is presets.HFBertBackbone
    assert backbone.activation == "gelu"
