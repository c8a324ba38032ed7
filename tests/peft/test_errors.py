"""Bad input: a clear error naming the argument and value, model unchanged."""

import keras
import numpy as np
import pytest

from kfinetune import peft
from kfinetune import testing


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: peft.LoRAConfig(rank=0), "rank=0"),
        (lambda: peft.LoRAConfig(rank=-3), "rank=-3"),
        (lambda: peft.LoRAConfig(alpha=0), "alpha=0"),
        (lambda: peft.LoRAConfig(alpha=-1.5), "alpha=-1.5"),
        (lambda: peft.LoRAConfig(dropout=1.0), "dropout=1.0"),
        (lambda: peft.LoRAConfig(dropout=-0.2), "dropout=-0.2"),
        (lambda: peft.LoRAConfig(targets=3), "targets=3"),
        (lambda: peft.AdapterConfig(size=0), "size=0"),
        (lambda: peft.AdapterConfig(placement="middle"), "placement='middle'"),
        (lambda: peft.AdapterConfig(init_scale=0), "init_scale=0"),
    ],
)
def test_bad_config_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "config, name, message",
    [
        (peft.LoRAConfig(rank=33), "default", "rank=33"),
        (peft.LoRAConfig(targets="nothing_like_it"), "default", "Similar"),
        (
            peft.LoRAConfig(targets=".*layer_norm"),
            "default",
            "not wrappable: .*LayerNormalization",
        ),
        (peft.LoRAConfig(), "bad name!", "name='bad name!'"),
        ("lora", "default", "config='lora'"),
    ],
)
def test_failed_apply_leaves_the_model_exactly_as_it_was(config, name, message):
    model = testing.small_bert_classifier()
    x = testing.small_bert_inputs()
    expected = testing.predict(model, x)
    state = testing.model_state(model)
    with pytest.raises(ValueError, match=message):
        peft.apply(model, config, name)
    testing.assert_model_unchanged(model, state)
    testing.assert_outputs_close(testing.predict(model, x), expected, atol=0)


def test_rank_too_large_for_some_targets_fails_before_any_change():
    # rank 40 fits the feed-forward intermediate (32 × 64) on d_out but not
    # the query (32 × 32): nothing may be half-applied.
    model = testing.small_bert_classifier()
    state = testing.model_state(model)
    with pytest.raises(ValueError, match="rank=40"):
        peft.apply(
            model,
            peft.LoRAConfig(
                rank=40, targets=[r".*intermediate_dense", ".*query"]
            ),
        )
    testing.assert_model_unchanged(model, state)


def test_same_adapter_name_twice_is_refused_and_changes_nothing():
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    state = testing.model_state(model.base)
    with pytest.raises(ValueError, match="already applied"):
        peft.apply(model, peft.AdapterConfig(), name="default")
    testing.assert_model_unchanged(model.base, state)
    assert list(model.adapters) == ["default"]


def test_unbuilt_model_is_refused():
    model = keras.Sequential([keras.layers.Dense(3, name="d")])
    with pytest.raises(ValueError, match="built=False"):
        peft.apply(model, peft.LoRAConfig(rank=1, targets=".*d"))
    assert not model.built and model.weights == []


def test_unknown_adapter_names_are_refused():
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    with pytest.raises(ValueError, match="name='nope'"):
        peft.set_active(model, "nope")
    with pytest.raises(ValueError, match="name='nope'"):
        peft.delete(model, "nope")
    with pytest.raises(ValueError, match="Expected a model returned by"):
        peft.merge(testing.small_bert_classifier())


def test_two_copies_of_a_backbone_are_refused_not_mixed_up():
    student = testing.small_bert_backbone(seed=1)
    teacher = testing.small_bert_backbone(seed=2)
    x = testing.small_bert_inputs()
    inputs = {
        k: keras.Input((None,), dtype="int32", name=k)
        for k in ("token_ids", "segment_ids", "padding_mask")
    }
    both = keras.layers.Concatenate()(
        [student(inputs)["pooled_output"], teacher(inputs)["pooled_output"]]
    )
    model = keras.Model(inputs, both)
    assert testing.predict(model, x).shape == (4, 64)
    state = testing.model_state(model)
    with pytest.raises(ValueError, match="more than one layer"):
        peft.apply(model, peft.LoRAConfig())
    testing.assert_model_unchanged(model, state)
    # Applying to each copy first works: their paths then differ by adapter.
    peft.apply(student, peft.LoRAConfig(), name="student")
    assert np.all(np.isfinite(testing.predict(model, x)))


def test_a_layer_two_layers_hold_is_refused_not_half_wrapped():
    # GPT-2's token embedding is a node of its backbone's graph (the
    # lookup) and of the task's graph (the tied projection to the
    # vocabulary): a wrapper in one place would be bypassed in the other.
    model = testing.small_gpt2_causal_lm()
    x = testing.small_gpt2_inputs()
    state = testing.model_state(model)
    with pytest.raises(
        ValueError,
        match=r"token_embedding \(held by 2 layers .*in one of them only\)",
    ):
        peft.apply(model, peft.LoRAConfig(targets=["token_embedding"]))
    testing.assert_model_unchanged(model, state)
    # Together with other targets it is skipped, and the report says why.
    adapted = peft.apply(
        model, peft.LoRAConfig(targets=["token_embedding", ".*/query"])
    )
    skipped = adapted.adapters["default"].skipped
    assert [path for path, _ in skipped] == ["token_embedding"]
    assert np.all(np.isfinite(testing.predict(adapted, x)))
