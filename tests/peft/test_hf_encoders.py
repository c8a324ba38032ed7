"""`load_hf` and `save_hf` on every encoder family, against real PEFT:
`tests/fixtures/hf_encoders/make_fixtures.py` made PEFT's adapters on the
tiny checkpoints and loaded kfinetune's in PEFT."""

import json
import pathlib

import keras
import keras_hub
import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from kfinetune import encoders
from kfinetune import peft
from kfinetune import presets
from kfinetune.layers.lora import LoRA
from kfinetune.peft import injected

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "hf_encoders"
FAMILIES = (
    "roberta",
    "xlm_roberta",
    "distil_bert",
    "albert",
    "electra",
    "deberta_v3",
)
WEIGHTS = "adapter_model.safetensors"
# The layers of kfinetune's own adapters in `kfinetune_*/`: every attention
# and feed-forward projection, the word embeddings, ALBERT's and ELECTRA's
# embedding projections
# and ALBERT's pooler (ELECTRA's `pooled_dense` has no PyTorch
# counterpart).
KFINETUNE_TARGETS = [
    r".*self_attention_layer/(query|key|value|attention_output)",
    r".*feedforward_(intermediate|output)_dense",
    r"embeddings?_projection",
    r"(.*/)?token_embedding",
]
EXTRA_TARGETS = {"albert": [r"pooled_dense"]}


def backbone(family):
    return presets.backbone(FIXTURES / family)


def record(name, file="outputs.safetensors"):
    return load_file(str(FIXTURES / name / file))


def outputs(model, family):
    """The model's outputs for the family's recorded inputs: the sequence
    output at the real tokens, and ALBERT's pooled output."""
    x = record(family, "hidden_states.safetensors")
    base = model.base if isinstance(model, peft.PEFTModel) else model
    found = model({n: x[n] for n in encoders.input_names(base)})
    mask = x["padding_mask"].astype(bool)
    if not isinstance(found, dict):
        found = {"sequence_output": found}
    result = {"sequence_output": found["sequence_output"]}
    if family == "albert":
        result["pooled_output"] = found["pooled_output"]
    result = {k: keras.ops.convert_to_numpy(v) for k, v in result.items()}
    result["sequence_output"] = result["sequence_output"] * mask[..., None]
    return result


def masked(family, values):
    mask = record(family, "hidden_states.safetensors")["padding_mask"]
    return values * mask.astype(bool)[..., None]


def loras(model):
    return sorted(
        (w for w in injected.wrappers(model.base) if isinstance(w, LoRA)),
        key=lambda w: w.base_layer.path,
    )


def kfinetune_adapted(family):
    """A rank-2 LoRA with fixed random factors on the family's checkpoint."""
    model = peft.apply(
        backbone(family),
        peft.LoRAConfig(
            rank=2,
            alpha=4,
            targets=KFINETUNE_TARGETS + EXTRA_TARGETS.get(family, []),
        ),
    )
    rng = np.random.default_rng(0)
    for wrapper in loras(model):
        wrapper.lora_a.assign(rng.normal(0, 0.1, wrapper.lora_a.shape))
        wrapper.lora_b.assign(rng.normal(0, 0.1, wrapper.lora_b.shape))
    return model


def write_kfinetune_adapter(family, directory):
    """Writes `kfinetune_adapted(family)` with `save_hf`, and its outputs.

    Run by `tests/fixtures/hf_encoders/make_fixtures.py`, which then loads
    the folder in PEFT and adds PyTorch's outputs.
    """
    directory = pathlib.Path(directory)
    model = kfinetune_adapted(family)
    peft.save_hf(
        model, directory, base_model=f"tests/fixtures/hf_encoders/{family}"
    )
    found = outputs(model, family)
    save_file(
        {f"kfinetune_{k}": v for k, v in found.items()},
        str(directory / "outputs.safetensors"),
    )


@pytest.fixture(scope="module")
def loaded():
    """Each family's checkpoint with PEFT's adapter."""
    return {
        family: peft.load_hf(
            backbone(family), FIXTURES / f"{family}_lora", base_model=family
        )
        for family in FAMILIES
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_load_hf_matches_pytorch_peft(loaded, family):
    found = outputs(loaded[family], family)
    expected = record(f"{family}_lora")
    for key, value in found.items():
        want = expected[key]
        if key == "sequence_output":
            want = masked(family, want)
        np.testing.assert_allclose(value, want, atol=1e-4, err_msg=key)
    # The adapter changes the outputs clearly.
    before = record(family, "hidden_states.safetensors")["sequence_output"]
    moved = found["sequence_output"] - masked(family, before)
    assert np.abs(moved).max() > 0.1


@pytest.mark.parametrize("family", FAMILIES)
def test_save_hf_gives_back_pytorchs_adapter(loaded, family, tmp_path):
    directory = peft.save_hf(loaded[family], tmp_path / "adapter")
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["task_type"] == "FEATURE_EXTRACTION"
    assert (config["r"], config["lora_alpha"]) == (4, 8)
    written = load_file(str(directory / WEIGHTS))
    expected = load_file(str(FIXTURES / f"{family}_lora" / WEIGHTS))
    assert sorted(written) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_hf_writes_what_pytorch_peft_loaded(family, tmp_path):
    """`kfinetune_*/` is what `save_hf` wrote for `kfinetune_adapted`;
    PEFT loaded it and its outputs are kfinetune's."""
    model = kfinetune_adapted(family)
    fixture = record(f"kfinetune_{family}")
    for key, value in outputs(model, family).items():
        expected = fixture[f"peft_{key}"]
        if key == "sequence_output":
            expected = masked(family, expected)
        np.testing.assert_allclose(value, expected, atol=1e-4, err_msg=key)
    directory = peft.save_hf(
        model,
        tmp_path / "adapter",
        base_model=f"tests/fixtures/hf_encoders/{family}",
    )
    committed = FIXTURES / f"kfinetune_{family}"
    assert json.loads(
        (directory / "adapter_config.json").read_text()
    ) == json.loads((committed / "adapter_config.json").read_text())
    written = load_file(str(directory / WEIGHTS))
    expected = load_file(str(committed / WEIGHTS))
    assert sorted(written) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(written[key], value, atol=1e-7)


def test_an_adapter_of_another_family_is_refused():
    with pytest.raises(ValueError, match="another"):
        peft.load_hf(backbone("deberta_v3"), FIXTURES / "distil_bert_lora")


def test_adapters_of_task_models_are_refused(loaded):
    # keras-hub's RoBERTa head is not PyTorch's `classifier.dense` and
    # `out_proj`: only the backbone takes adapters.
    classifier = keras_hub.models.RobertaTextClassifier(
        backbone("roberta"), num_classes=2, preprocessor=None
    )
    with pytest.raises(ValueError, match="base model only"):
        peft.load_hf(classifier, FIXTURES / "roberta_lora")
    with pytest.raises(ValueError, match="base model only"):
        peft.save_hf(
            peft.apply(
                classifier, peft.LoRAConfig(rank=2, targets=[r".*/query"])
            ),
            "unused",
        )
