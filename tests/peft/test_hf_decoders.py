"""`kfinetune.peft.load_hf` / `save_hf` on keras-hub Llama and GPT-2 causal
LMs.

The checkpoints and adapters in `tests/fixtures/hf_peft_decoders/` were
written by real PyTorch, transformers and PEFT (`make_fixtures.py` there
says how), and so were the logits in them: `llama_lora/`, `gpt2_lora/`,
`llama_dora/` and `gpt2_dora/` hold LoRA and DoRA adapters PEFT trained,
`kfinetune_llama/`, `kfinetune_gpt2/`, `kfinetune_llama_dora/` and
`kfinetune_gpt2_dora_rslora/` adapters `save_hf` wrote (by
`write_kfinetune_adapter` below) with the logits PEFT computed after
loading them.

Measured with PEFT 0.21.2 (the adapters move the logits by 3 to 4.4):
PEFT's adapters load within 1.6e-6 (Llama LoRA), 1.7e-6 (GPT-2 LoRA),
2.2e-6 (Llama DoRA) and 2.1e-6 (GPT-2 DoRA) of PyTorch's logits; PyTorch's
logits of the adapters `save_hf` wrote are within 3.0e-6 (Llama LoRA),
1.8e-6 (GPT-2 LoRA), 1.1e-6 (Llama DoRA) and 4.5e-6 (GPT-2 DoRA with
rsLoRA) of kfinetune's.
"""

import json
import pathlib
import shutil

import keras
import keras_hub
import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from kfinetune import peft
from kfinetune import testing
from kfinetune import walk
from kfinetune.layers import LoRA
from kfinetune.peft import injected

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "hf_peft_decoders"
FAMILIES = ("llama", "gpt2")
CLASSES = {
    "llama": (keras_hub.models.LlamaBackbone, keras_hub.models.LlamaCausalLM),
    "gpt2": (keras_hub.models.GPT2Backbone, keras_hub.models.GPT2CausalLM),
}
WEIGHTS = "adapter_model.safetensors"
# The layers of kfinetune's own adapters in `kfinetune_*/`. GPT-2's has
# query and value but not key (a zero block of `c_attn`'s B) and other
# layers (padded to `c_attn`'s rank).
KFINETUNE_TARGETS = {
    "llama": [peft.ALL_LINEAR, r".*/feedforward_gate_dense"],
    "gpt2": [
        r".*/(query|value|attention_output)",
        r".*/feedforward_(intermediate|output)_dense",
    ],
}


def causal_lm(family):
    backbone_class, task_class = CLASSES[family]
    backbone = backbone_class.from_preset(str(FIXTURES / family))
    return task_class(backbone, preprocessor=None)


def record(name):
    return load_file(str(FIXTURES / name / "logits.safetensors"))


def logits(model, token_ids):
    x = {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)}
    return keras.ops.convert_to_numpy(model(x, training=False))


def loras(model):
    return sorted(
        (w for w in injected.wrappers(model.base) if isinstance(w, LoRA)),
        key=lambda w: w.base_layer.path,
    )


# The variants of kfinetune's own adapters (`kfinetune_{family}_{variant}/`
# but `kfinetune_{family}/` for "lora"): their `LoRAConfig` options.
VARIANTS = {
    "lora": {},
    "dora": {"use_dora": True},
    "dora_rslora": {"use_dora": True, "use_rslora": True},
}
KFINETUNE_FIXTURES = [
    ("llama", "lora"),
    ("gpt2", "lora"),
    ("llama", "dora"),
    ("gpt2", "dora_rslora"),
]
# PEFT's adapters, trained in PyTorch: LoRA and DoRA.
DORA = ["llama_dora", "gpt2_dora"]
PEFT_ADAPTERS = {
    family: (f"{family}_lora", f"{family}_dora") for family in FAMILIES
}


def kfinetune_fixture(family, variant):
    return f"kfinetune_{family}" + ("" if variant == "lora" else f"_{variant}")


def kfinetune_adapted(family, variant="lora"):
    """A rank-2 LoRA with fixed random factors on the model of `family`,
    and with DoRA random magnitudes (up to 20 % off the column norms)."""
    model = peft.apply(
        causal_lm(family),
        peft.LoRAConfig(
            rank=2,
            alpha=4,
            targets=KFINETUNE_TARGETS[family],
            **VARIANTS[variant],
        ),
    )
    rng = np.random.default_rng(0)
    for wrapper in loras(model):
        wrapper.lora_a.assign(rng.normal(0, 0.3, wrapper.lora_a.shape))
        wrapper.lora_b.assign(rng.normal(0, 0.3, wrapper.lora_b.shape))
        if wrapper.use_dora:
            m = keras.ops.convert_to_numpy(wrapper.lora_magnitude)
            wrapper.lora_magnitude.assign(m * rng.uniform(0.8, 1.2, m.shape))
    return model


def write_kfinetune_adapter(family, directory, variant="lora"):
    """Writes `kfinetune_adapted(family, variant)` with `save_hf`, and its
    logits.

    Run by `tests/fixtures/hf_peft_decoders/make_fixtures.py`, which then
    loads the folder in PEFT and adds PyTorch's logits.
    """
    directory = pathlib.Path(directory)
    model = kfinetune_adapted(family, variant)
    peft.save_hf(
        model, directory, base_model=f"tests/fixtures/hf_peft_decoders/{family}"
    )
    token_ids = record(f"{family}_lora")["token_ids"]
    save_file(
        {"token_ids": token_ids, "kfinetune_logits": logits(model, token_ids)},
        str(directory / "logits.safetensors"),
    )


@pytest.fixture(scope="module")
def loaded():
    """Each of PEFT's adapters (`llama_lora`, ...) loaded into a model of
    its family, with that family's logits before."""
    models = {}
    for family in FAMILIES:
        for name in PEFT_ADAPTERS[family]:
            model = causal_lm(family)
            token_ids = record(name)["token_ids"]
            before = logits(model, token_ids)
            model = peft.load_hf(model, FIXTURES / name, base_model=family)
            models[name] = model, before
    return models


@pytest.mark.parametrize("family", FAMILIES)
def test_keras_hub_loads_the_checkpoints_as_pytorch(loaded, family):
    expected = record(f"{family}_lora")["base_logits"]
    np.testing.assert_allclose(loaded[f"{family}_lora"][1], expected, atol=1e-5)


@pytest.mark.parametrize("name", ["llama_lora", "gpt2_lora", *DORA])
def test_load_hf_matches_pytorch_peft_logits(loaded, name):
    model, before = loaded[name]
    fixture = record(name)
    out = logits(model, fixture["token_ids"])
    np.testing.assert_allclose(out, fixture["logits"], atol=1e-4)
    # The trained adapter changes the logits clearly.
    assert np.abs(out - before).max() > 1.0
    config = model.adapters["default"].config
    assert (config.rank, config.alpha) == (4, 8)
    assert config.use_dora == name.endswith("_dora")
    # Llama: 7 projections a layer; GPT-2: 4 modules, c_attn as three.
    family = name.split("_")[0]
    assert len(loras(model)) == {"llama": 14, "gpt2": 12}[family]


@pytest.mark.parametrize("name", ["gpt2_lora", "gpt2_dora"])
def test_gpt2_c_attn_gives_query_key_and_value_its_a_and_rows_of_b(
    loaded, name
):
    model, _ = loaded[name]
    tensors = load_file(str(FIXTURES / name / WEIGHTS))
    key = "base_model.model.transformer.h.1.attn.c_attn"
    a = tensors[f"{key}.lora_A.weight"]
    b = tensors[f"{key}.lora_B.weight"]
    assert (a.shape, b.shape) == ((4, 64), (192, 4))
    wrappers = {
        w.base_layer.path: w
        for w in loras(model)
        if "layer_1/self_" in w.base_layer.path
    }
    for index, part in enumerate(("query", "key", "value")):
        wrapper = wrappers[f"transformer_layer_1/self_attention/{part}"]
        rows = slice(64 * index, 64 * (index + 1))
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(wrapper.lora_a), a.T
        )
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(wrapper.lora_b).reshape(4, 64),
            b[rows].T,
        )
        if name == "gpt2_dora":
            # DoRA's magnitude is per output feature of c_attn, whose norm
            # is that of a row of W + s·B·A: its rows of W and B, and A.
            # Query's, key's and value's rows are exactly their units'
            # magnitudes, (heads, head_dim) as their kernels' outputs.
            magnitude = tensors[f"{key}.lora_magnitude_vector"]
            assert magnitude.shape == (192,)
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(wrapper.lora_magnitude),
                magnitude[rows].reshape(4, 16),
            )


@pytest.mark.parametrize("name", ["llama_lora", "gpt2_lora", *DORA])
def test_save_hf_gives_back_pytorchs_adapter_and_load_hf_reads_it(
    loaded, name, tmp_path
):
    model, _ = loaded[name]
    directory = peft.save_hf(model, tmp_path / "adapter")
    config = json.loads((directory / "adapter_config.json").read_text())
    original = json.loads((FIXTURES / name / "adapter_config.json").read_text())
    for key in (
        "r",
        "lora_alpha",
        "task_type",
        "fan_in_fan_out",
        "use_dora",
        "use_rslora",
    ):
        assert config[key] == original[key]
    # The same factors (and DoRA's magnitudes), under the same keys, as
    # PEFT's own file (GPT-2's query, key and value share c_attn's A
    # again).
    written = load_file(str(directory / WEIGHTS))
    expected = load_file(str(FIXTURES / name / WEIGHTS))
    assert sorted(written) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)
    token_ids = record(name)["token_ids"]
    reloaded = peft.load_hf(causal_lm(name.split("_")[0]), directory)
    np.testing.assert_allclose(
        logits(reloaded, token_ids), logits(model, token_ids), atol=1e-5
    )


@pytest.mark.parametrize("family, variant", KFINETUNE_FIXTURES)
def test_save_hf_writes_what_pytorch_peft_loaded(family, variant, tmp_path):
    """`kfinetune_*/` is what `save_hf` wrote for `kfinetune_adapted`;
    PEFT loaded it and its logits are kfinetune's."""
    model = kfinetune_adapted(family, variant)
    committed = FIXTURES / kfinetune_fixture(family, variant)
    fixture = record(committed.name)
    out = logits(model, fixture["token_ids"])
    np.testing.assert_allclose(out, fixture["kfinetune_logits"], atol=1e-5)
    np.testing.assert_allclose(out, fixture["peft_logits"], atol=1e-4)
    directory = peft.save_hf(
        model,
        tmp_path / "adapter",
        base_model=f"tests/fixtures/hf_peft_decoders/{family}",
    )
    # The same file, byte for byte (the keys in the same order).
    config_text = (directory / "adapter_config.json").read_text()
    assert config_text == (committed / "adapter_config.json").read_text()
    written = load_file(str(directory / WEIGHTS))
    expected = load_file(str(committed / WEIGHTS))
    assert sorted(written) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(written[key], value, atol=1e-7)
    if family == "gpt2":
        _check_gpt2_fusion(model, written, json.loads(config_text))


def _check_gpt2_fusion(model, written, config):
    # query and value, rank 2 each: c_attn has rank 4 with A stacked and B
    # block diagonal, zero in key's rows; the other modules are padded to
    # rank 4 with zeros and alpha is 4 * 4 / 2, keeping the scale at 2
    # (with rsLoRA 4 * sqrt(4 / 2), keeping it at 4 / sqrt(2)).
    wrappers = {w.base_layer.path: w for w in loras(model)}
    layer = "transformer_layer_0/self_attention"
    rslora = config["use_rslora"]
    assert config["r"] == 4
    assert config["lora_alpha"] == pytest.approx(
        4 * np.sqrt(2) if rslora else 8
    )

    def factors(part):
        wrapper = wrappers[f"{layer}/{part}"]
        a = keras.ops.convert_to_numpy(wrapper.lora_a).reshape(64, 2)
        b = keras.ops.convert_to_numpy(wrapper.lora_b).reshape(2, -1)
        return a.T, b.T

    prefix = "base_model.model.transformer.h.0"
    a = written[f"{prefix}.attn.c_attn.lora_A.weight"]
    b = written[f"{prefix}.attn.c_attn.lora_B.weight"]
    (a_q, b_q), (a_v, b_v) = factors("query"), factors("value")
    np.testing.assert_allclose(a, np.concatenate([a_q, a_v]), atol=1e-7)
    np.testing.assert_allclose(b[:64, :2], b_q, atol=1e-7)
    np.testing.assert_allclose(b[128:, 2:], b_v, atol=1e-7)
    assert not b[:64, 2:].any() and not b[64:128].any()
    assert not b[128:, :2].any()
    a, b = factors("attention_output")
    padded_a = written[f"{prefix}.attn.c_proj.lora_A.weight"]
    padded_b = written[f"{prefix}.attn.c_proj.lora_B.weight"]
    np.testing.assert_allclose(padded_a[:2], a, atol=1e-7)
    np.testing.assert_allclose(padded_b[:, :2], b, atol=1e-7)
    assert not padded_a[2:].any() and not padded_b[:, 2:].any()
    if config["use_dora"]:
        # c_attn's magnitude: query's and value's, and in key's rows (no
        # DoRA there) the column norms of key's kernel, with which PEFT's
        # DoRA leaves key's output as it is.
        magnitude = written[f"{prefix}.attn.c_attn.lora_magnitude_vector"]
        for part, rows in (("query", slice(0, 64)), ("value", slice(128, 192))):
            np.testing.assert_array_equal(
                magnitude[rows],
                keras.ops.convert_to_numpy(
                    wrappers[f"{layer}/{part}"].lora_magnitude
                ).reshape(-1),
            )
        layers = {site.path: site.layer for site in walk.sites(model.base)}
        key_kernel = layers[f"{layer}/key"].kernel
        np.testing.assert_allclose(
            magnitude[64:128],
            np.linalg.norm(
                keras.ops.convert_to_numpy(key_kernel).reshape(64, 64), axis=0
            ),
            rtol=1e-6,
        )


def copied(tmp_path, name, config_changes=None, rename=None):
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    config = json.loads((target / "adapter_config.json").read_text())
    config.update(config_changes or {})
    (target / "adapter_config.json").write_text(json.dumps(config))
    if rename:
        tensors = load_file(str(target / WEIGHTS))
        tensors = {rename(k): v for k, v in tensors.items()}
        save_file(tensors, str(target / WEIGHTS))
    return target


def assert_refused(model, directory, message):
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        peft.load_hf(model, directory)
    after = model.get_weights()
    assert len(after) == len(before)
    for a, b in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_load_hf_refuses_other_architectures_and_shapes(tmp_path):
    llama = testing.small_causal_lm("llama")
    gpt2 = testing.small_gpt2_causal_lm()
    assert_refused(
        llama,
        FIXTURES / "gpt2_lora",
        r"module of a GPT-2 model \(keras-hub GPT2Backbone\)",
    )
    assert_refused(
        gpt2,
        FIXTURES / "llama_lora",
        r"module of a Llama model \(keras-hub LlamaBackbone\)",
    )
    # The same architecture at another size (hidden 32, not 64).
    assert_refused(llama, FIXTURES / "llama_lora", "another base model")
    assert_refused(gpt2, FIXTURES / "gpt2_lora", "another base model")
    # A causal LM's adapter on a bare backbone.
    assert_refused(
        llama.backbone,
        FIXTURES / "llama_lora",
        "load it into the keras-hub task",
    )
    # More layers than the model has.
    directory = copied(
        tmp_path, "llama_lora", rename=lambda k: k.replace("s.1.", "s.7.")
    )
    assert_refused(llama, directory, "made for another model")
    # A module kfinetune does not map (the LM head).
    directory = copied(
        tmp_path,
        "gpt2_lora",
        rename=lambda k: k.replace("transformer.h.0.mlp.c_fc", "lm_head"),
    )
    assert_refused(gpt2, directory, "no keras-hub GPT-2 counterpart")


@pytest.mark.parametrize(
    "name, changes, message",
    [
        ("gpt2_lora", {"fan_in_fan_out": False}, "fan_in_fan_out=False"),
        ("llama_lora", {"fan_in_fan_out": True}, "fan_in_fan_out=True"),
        ("llama_lora", {"rank_pattern": {"q_proj": 8}}, "rank_pattern="),
        ("gpt2_lora", {"peft_type": "IA3"}, "peft_type='IA3'"),
        ("gpt2_lora", {"r": 8}, "r=8 need"),
        # Magnitudes without `use_dora`, named by c_attn's three parts.
        (
            "gpt2_dora",
            {"use_dora": False},
            r"DoRA magnitude for 'transformer_layer_\d/self_attention/query'"
            r" \+ .*/key' \+ .*/value', but its config does not set",
        ),
    ],
)
def test_load_hf_refuses_options_it_does_not_reproduce(
    loaded, tmp_path, name, changes, message
):
    # Checked before anything else: the model of `loaded` (already adapted)
    # serves, and stays unchanged.
    model, _ = loaded[name]
    assert_refused(model, copied(tmp_path, name, changes), message)


def test_save_hf_refuses_what_peft_cannot_hold(tmp_path):
    # The word embeddings of a backbone (a task holds them twice, as its
    # LM head too, and LoRA cannot wrap them there).
    model = peft.apply(
        testing.small_causal_lm("llama").backbone,
        peft.LoRAConfig(rank=2, targets=["token_embedding"]),
    )
    with pytest.raises(ValueError, match="no PyTorch Llama counterpart"):
        peft.save_hf(model, tmp_path / "x")
    # A trainable part of GPT-2's fused c_attn.
    model = peft.apply(
        testing.small_gpt2_causal_lm(),
        peft.LoRAConfig(
            rank=2,
            targets=[r".*/attention_output"],
            trainable=[r"transformer_layer_0/self_attention/query"],
        ),
    )
    with pytest.raises(ValueError, match="could only hold whole"):
        peft.save_hf(model, tmp_path / "x")
    # Only LoRA.
    model = peft.apply(testing.small_gpt2_causal_lm(), peft.IA3Config())
    with pytest.raises(ValueError, match="LoRA adapter"):
        peft.save_hf(model, tmp_path / "x")
    assert not (tmp_path / "x").exists()
