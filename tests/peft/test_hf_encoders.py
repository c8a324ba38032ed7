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


CLASSIFIERS = {
    "roberta": keras_hub.models.RobertaTextClassifier,
    "xlm_roberta": keras_hub.models.XLMRobertaTextClassifier,
    "distil_bert": keras_hub.models.DistilBertTextClassifier,
    "albert": keras_hub.models.AlbertTextClassifier,
    "deberta_v3": keras_hub.models.DebertaV3TextClassifier,
}


def classifier(family):
    return CLASSIFIERS[family](
        backbone(family), num_classes=2, preprocessor=None
    )


@pytest.mark.parametrize("family", list(CLASSIFIERS))
def test_classifier_adapters_match_pytorch_peft(family, tmp_path):
    """PEFT's LoRA on a `...ForSequenceClassification`, with its head in
    `modules_to_save`, goes into keras-hub's text classifier, whose head
    is PyTorch's layer for layer; `save_hf` writes PEFT's files back."""
    model = peft.load_hf(
        classifier(family), FIXTURES / f"{family}_classifier_lora"
    )
    x = record(family, "hidden_states.safetensors")
    found = model.predict(
        {n: x[n] for n in encoders.input_names(model.backbone)}, verbose=0
    )
    expected = record(f"{family}_classifier_lora")
    np.testing.assert_allclose(found, expected["logits"], atol=1e-4)
    assert np.abs(expected["logits"] - expected["base_logits"]).max() > 1e-2
    directory = peft.save_hf(model, tmp_path / "adapter")
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS"
    written = load_file(str(directory / WEIGHTS))
    committed = FIXTURES / f"{family}_classifier_lora" / WEIGHTS
    expected = load_file(str(committed))
    assert sorted(written) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)


def kfinetune_classifier(family):
    """The family's keras-hub classifier with a random head and a rank-2
    LoRA with fixed random factors on the query and value projections;
    only the output layer of the head is kept trainable."""
    model = classifier(family)
    rng = np.random.default_rng(1)
    for name in ("pooled_dense", "logits"):
        if name == "pooled_dense" and family == "albert":
            continue  # ALBERT's head is its output layer alone.
        for weight in model.get_layer(name).weights:
            weight.assign(rng.normal(0, 0.1, weight.shape))
    model = peft.apply(
        model,
        peft.LoRAConfig(
            rank=2,
            alpha=4,
            targets=[r".*self_attention_layer/(query|value)"],
            trainable=["logits"],
        ),
    )
    for wrapper in loras(model):
        wrapper.lora_a.assign(rng.normal(0, 0.1, wrapper.lora_a.shape))
        wrapper.lora_b.assign(rng.normal(0, 0.1, wrapper.lora_b.shape))
    return model


def classifier_logits(model, family):
    x = record(family, "hidden_states.safetensors")
    names = encoders.input_names(model.base.backbone)
    return model.predict({n: x[n] for n in names}, verbose=0)


def write_kfinetune_classifier_adapter(family, directory):
    """Writes `kfinetune_classifier(family)` with `save_hf`, and its
    logits, for `make_fixtures.py` to load in PEFT."""
    directory = pathlib.Path(directory)
    model = kfinetune_classifier(family)
    peft.save_hf(
        model, directory, base_model=f"tests/fixtures/hf_encoders/{family}"
    )
    save_file(
        {"kfinetune_logits": classifier_logits(model, family)},
        str(directory / "outputs.safetensors"),
    )


@pytest.mark.parametrize("family", list(CLASSIFIERS))
def test_save_hf_writes_classifier_adapters_pytorch_peft_loaded(
    family, tmp_path
):
    """`kfinetune_{family}_classifier/` is what `save_hf` wrote for
    `kfinetune_classifier`: the whole head in `modules_to_save` although
    only its output layer trains (PEFT keeps a head whole, and would
    leave the rest random). PEFT loaded it onto a classifier with another
    random head and its logits are kfinetune's."""
    model = kfinetune_classifier(family)
    fixture = record(f"kfinetune_{family}_classifier")
    logits = classifier_logits(model, family)
    np.testing.assert_allclose(logits, fixture["peft_logits"], atol=1e-4)
    directory = peft.save_hf(
        model,
        tmp_path / "adapter",
        base_model=f"tests/fixtures/hf_encoders/{family}",
    )
    committed = FIXTURES / f"kfinetune_{family}_classifier"
    config = json.loads((directory / "adapter_config.json").read_text())
    assert config == json.loads((committed / "adapter_config.json").read_text())
    heads = {"distil_bert": ["classifier", "pre_classifier"]}
    heads["deberta_v3"] = ["classifier", "pooler"]
    assert config["modules_to_save"] == heads.get(family, ["classifier"])
    written = load_file(str(directory / WEIGHTS))
    expected = load_file(str(committed / WEIGHTS))
    assert sorted(written) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(written[key], value, atol=1e-7)


class _ElectraTask(keras_hub.models.Task):
    """A keras-hub task on ELECTRA (keras-hub has no ELECTRA classifier)."""

    def __init__(self, backbone):
        inputs = backbone.input
        outputs = keras.layers.Dense(2, name="logits")(
            backbone(inputs)["pooled_output"]
        )
        super().__init__(inputs=inputs, outputs=outputs)
        self.backbone = backbone


def test_electra_tasks_are_refused():
    # No keras-hub ELECTRA head is laid out as PyTorch's: ELECTRA takes
    # adapters of its base model only.
    task = _ElectraTask(backbone("electra"))
    with pytest.raises(ValueError, match="base model only"):
        peft.load_hf(task, FIXTURES / "electra_lora")
