import keras_hub
import numpy as np
import pytest

from kfinetune import testing


def test_small_bert_has_minilm_layer_paths():
    model = testing.small_bert_classifier()
    assert isinstance(model, keras_hub.models.BertTextClassifier)
    paths = {v.path for v in model.weights}
    for block in range(2):
        for part in ("query", "key", "value", "attention_output"):
            path = (
                f"transformer_layer_{block}/self_attention_layer/{part}/kernel"
            )
            assert path in paths
    assert "logits/kernel" in paths
    assert "transformer_layer_2/self_attention_layer/query/kernel" not in paths


def test_same_seed_same_weights_other_seed_differs():
    a = testing.small_bert_classifier(seed=3)
    b = testing.small_bert_classifier(seed=3)
    c = testing.small_bert_classifier(seed=4)
    for wa, wb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
    kernel = "transformer_layer_0/self_attention_layer/query/kernel"
    wa = {w.path: w.numpy() for w in a.weights}[kernel]
    wc = {w.path: w.numpy() for w in c.weights}[kernel]
    assert not np.allclose(wa, wc)


def test_outputs_depend_on_inputs_and_ignore_padding():
    model = testing.small_bert_classifier()
    x = testing.small_bert_inputs(batch_size=8, sequence_length=16)
    out = testing.predict(model, x)
    assert out.shape == (8, 2)
    # Random BERT outputs are nearly constant at keras-hub's 0.02 init scale;
    # the factory's weight_scale makes input differences visible.
    assert np.ptp(out[:, 0]) > 0.05
    padded = {k: v.copy() for k, v in x.items()}
    mask = x["padding_mask"].astype(bool)
    assert not mask[0].all()
    padded["token_ids"][0][~mask[0]] = 7
    testing.assert_outputs_close(testing.predict(model, padded), out)


def test_inputs_are_deterministic_and_well_formed():
    x = testing.small_bert_inputs(batch_size=5, sequence_length=12, seed=1)
    y = testing.small_bert_inputs(batch_size=5, sequence_length=12, seed=1)
    for key in x:
        np.testing.assert_array_equal(x[key], y[key])
    cls = testing.VOCABULARY.index("[CLS]")
    assert (x["token_ids"][:, 0] == cls).all()
    assert (x["token_ids"][x["padding_mask"] == 0] == 0).all()


def test_preprocessor_model_takes_raw_text():
    model = testing.small_bert_classifier(sequence_length=16)
    out = testing.predict(model, np.array(["good movie", "awful day ever"]))
    assert out.shape == (2, 2)
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("policy", ["mixed_bfloat16"])
def test_dtype_policy_context_restores(policy):
    before = testing.round_trips.keras.config.dtype_policy().name
    with testing.dtype_policy(policy):
        model = testing.small_bert_classifier()
        assert model.backbone.dtype_policy.name == policy
    assert testing.round_trips.keras.config.dtype_policy().name == before
