"""Hugging Face encoder folders of every family load with PyTorch's own
computation: `tests/fixtures/hf_encoders/make_fixtures.py` made the tiny
checkpoints and recorded PyTorch's hidden states."""

import json
import pathlib
import re
import shutil

import keras
import keras_hub
import numpy as np
import pytest
from safetensors.numpy import load_file

from kfinetune import encoders
from kfinetune import hf_encoders
from kfinetune import presets

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "hf_encoders"
# The class kfinetune loads each checkpoint as: the family's `HF...`
# class where the checkpoint's activation (exact GELU) differs from
# keras-hub's (its tanh approximation).
CLASSES = {
    "roberta": keras_hub.models.RobertaBackbone,
    "xlm_roberta": keras_hub.models.XLMRobertaBackbone,
    "distil_bert": keras_hub.models.DistilBertBackbone,
    "albert": presets.HFAlbertBackbone,
    "electra": presets.HFElectraBackbone,
    "deberta_v3": keras_hub.models.DebertaV3Backbone,
}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def load():
    """Loads each family's checkpoint once for the whole module."""
    loaded = {}

    def get(family):
        if family not in loaded:
            loaded[family] = presets.backbone(FIXTURES / family)
        return loaded[family]

    return get


def record(family):
    return load_file(FIXTURES / family / "hidden_states.safetensors")


def outputs(backbone, family):
    """The backbone's sequence output at the real tokens, and its pooled
    output (or `None`)."""
    expected = record(family)
    found = backbone({n: expected[n] for n in encoders.input_names(backbone)})
    pooled = None
    if isinstance(found, dict):
        found, pooled = found["sequence_output"], found["pooled_output"]
        pooled = keras.ops.convert_to_numpy(pooled)
    mask = expected["padding_mask"].astype(bool)
    return keras.ops.convert_to_numpy(found)[mask], pooled


@pytest.mark.parametrize("family", list(CLASSES))
def test_checkpoints_match_pytorch(load, family):
    backbone = load(family)
    assert type(backbone) is CLASSES[family]
    expected = record(family)
    sequence, pooled = outputs(backbone, family)
    mask = expected["padding_mask"].astype(bool)
    difference = np.abs(sequence - expected["sequence_output"][mask]).max()
    assert difference < TOLERANCE
    if "pooled_output" in expected:
        difference = np.abs(pooled - expected["pooled_output"]).max()
        assert difference < TOLERANCE


@pytest.mark.parametrize(
    "family, moved",
    # keras-hub's converter drops RoBERTa's token-type row (2.2 on this
    # checkpoint) and keeps ALBERT's tanh GELU (4.6e-4).
    [("roberta", 1.0), ("albert", 2e-4)],
)
def test_keras_hub_alone_differs_from_pytorch(family, moved):
    backbone = keras_hub.models.Backbone.from_preset(str(FIXTURES / family))
    expected = record(family)
    sequence, _ = outputs(backbone, family)
    mask = expected["padding_mask"].astype(bool)
    assert np.abs(sequence - expected["sequence_output"][mask]).max() > moved


@pytest.mark.parametrize("family", ["albert", "electra"])
def test_checkpoint_backbones_round_trip_through_saving(load, family, tmp_path):
    backbone = load(family)
    expected, _ = outputs(backbone, family)
    backbone.save(tmp_path / "backbone.keras")
    revived = keras.saving.load_model(tmp_path / "backbone.keras")
    assert type(revived) is CLASSES[family]
    assert revived.activation == "gelu"
    np.testing.assert_allclose(outputs(revived, family)[0], expected, atol=1e-6)


@pytest.mark.parametrize("family", list(CLASSES))
def test_load_tokenizer_reads_every_familys_folder(load, family):
    # keras-hub converts the first four; kfinetune reads ELECTRA's
    # vocab.txt and DeBERTa-v3's spm.model.
    tokenizer = hf_encoders.load_tokenizer(FIXTURES / family)
    expected = record(family)["token_ids"]
    assert tokenizer.vocabulary_size() == load(family).token_embedding.input_dim
    ids = keras.ops.convert_to_numpy(tokenizer("the movie was great"))
    assert len(ids) > 0 and ids.max() < tokenizer.vocabulary_size()
    # The first token of the recorded rows is the family's start token.
    start = tokenizer.token_to_id(
        {"roberta": "<s>", "xlm_roberta": "<s>"}.get(family, "[CLS]")
    )
    assert expected[0, 0] == start


def test_load_tokenizer_refuses_a_folder_without_its_file(tmp_path):
    shutil.copy(FIXTURES / "deberta_v3" / "config.json", tmp_path)
    with pytest.raises(ValueError, match="spm.model"):
        hf_encoders.load_tokenizer(tmp_path)


@pytest.mark.parametrize(
    "family, key, value",
    [
        ("roberta", "layer_norm_eps", 1e-12),
        ("roberta", "pad_token_id", 0),
        ("xlm_roberta", "pad_token_id", 0),
        ("electra", "position_embedding_type", "relative_key"),
        ("electra", "hidden_act", "quick_gelu"),
        ("distil_bert", "sinusoidal_pos_embds", True),
        ("deberta_v3", "relative_attention", False),
        ("deberta_v3", "pos_att_type", ["c2p"]),
        ("deberta_v3", "position_biased_input", True),
        ("deberta_v3", "share_att_key", False),
        ("deberta_v3", "position_buckets", -1),
        ("deberta_v3", "attention_head_size", 8),
    ],
)
def test_checkpoints_keras_hub_cannot_follow_are_refused(
    family, key, value, tmp_path
):
    config = json.loads((FIXTURES / family / "config.json").read_text())
    config[key] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    shutil.copy(FIXTURES / family / "model.safetensors", tmp_path)
    with pytest.raises(
        ValueError, match=re.escape(f"Received: {key}={value!r}")
    ):
        presets.backbone(tmp_path)


def test_a_folder_without_safetensors_is_refused(tmp_path):
    shutil.copy(FIXTURES / "electra" / "config.json", tmp_path)
    with pytest.raises(ValueError, match="no model.safetensors"):
        presets.backbone(tmp_path)


def test_from_backbone_refuses_another_family(load):
    with pytest.raises(ValueError, match="backbone=HFAlbertBackbone"):
        presets.HFElectraBackbone.from_backbone(load("albert"), "gelu")
    with pytest.raises(ValueError, match="activation='tanh'"):
        presets.HFElectraBackbone.from_backbone(load("electra"), "tanh")


def test_checkpoint_activation_follows_each_familys_keys(tmp_path):
    assert hf_encoders.checkpoint_activation(FIXTURES / "electra") == "gelu"
    # DistilBERT calls it `activation`; ALBERT defaults to `gelu_new`.
    config = {"model_type": "distilbert", "activation": "relu"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert hf_encoders.checkpoint_activation(tmp_path) == "relu"
    (tmp_path / "config.json").write_text('{"model_type": "albert"}')
    assert hf_encoders.checkpoint_activation(tmp_path) == "gelu_approximate"


def test_presets_build_deberta_and_electra_classifiers_from_folders(load):
    model = presets.text_classifier(
        num_classes=2, preset=FIXTURES / "deberta_v3", sequence_length=12
    )
    assert type(model) is keras_hub.models.DebertaV3TextClassifier
    # The checkpoint's weights, not a new backbone.
    for mine, loaded in zip(
        model.backbone.weights, load("deberta_v3").weights, strict=True
    ):
        np.testing.assert_array_equal(mine.numpy(), loaded.numpy())
    assert model.predict(["the movie was great"], verbose=0).shape == (1, 2)
    # keras-hub has no ELECTRA classifier: kfinetune's, on the checkpoint.
    electra = presets.text_classifier(
        num_classes=2, preset=FIXTURES / "electra", sequence_length=12
    )
    assert type(electra) is presets.ElectraTextClassifier
    for mine, loaded in zip(
        electra.backbone.weights, load("electra").weights, strict=True
    ):
        # ELECTRA checkpoints have no pooler: keras-hub's `pooled_dense`
        # starts new in every load (the classifier does not read it).
        if "pooled_dense" not in mine.path:
            np.testing.assert_array_equal(mine.numpy(), loaded.numpy())
    assert electra.predict(["the movie was great"], verbose=0).shape == (1, 2)
