import keras
import pytest

from kfinetune import optimizers
from kfinetune import peft
from kfinetune import testing


def test_keras_hub_model_groups_bottom_to_top():
    model = testing.small_bert_classifier()
    groups = optimizers.layer_groups(model)
    assert groups.names == ["embeddings", "block_0", "block_1", "head"]
    assert "token_embedding/embeddings" in groups["embeddings"]
    assert set(groups["head"]) == {
        "pooled_dense/kernel",
        "pooled_dense/bias",
        "logits/kernel",
        "logits/bias",
    }
    every = [p for name in groups for p in groups[name]]
    assert sorted(every) == sorted(v.path for v in model.weights)
    assert groups.group_of(
        "transformer_layer_1/feedforward_output_dense/bias"
    ) == ("block_1")


def test_adapter_weights_join_the_group_of_their_layer():
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    groups = optimizers.layer_groups(model)
    lora = "transformer_layer_0/self_attention_layer/query/lora_default/lora_a"
    assert groups.group_of(lora) == "block_0"


def test_custom_patterns_and_merging():
    model = testing.small_bert_classifier()
    groups = optimizers.layer_groups(
        model,
        {
            "embeddings": r"(token|position|segment)_embedding/.*"
            r"|embeddings_.*",
            "encoder": r"transformer_layer_\d+/.*",
            "head": r"(pooled_dense|logits)/.*",
        },
    )
    assert groups.names == ["embeddings", "encoder", "head"]
    assert len(groups["head"]) == 4
    merged = optimizers.layer_groups(model).merge(2)
    assert merged.names == ["embeddings..block_0", "block_1..head"]


def test_functional_model_groups_by_layer_in_graph_order():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="a")(inputs)
    x = keras.layers.Dense(3, name="b")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="c")(x))
    groups = optimizers.layer_groups(model)
    assert groups.names == ["a", "b", "c"]
    assert groups["b"] == ("b/kernel", "b/bias")


@pytest.mark.parametrize(
    "groups, message",
    [
        ({"a": "nothing_like_it", "b": ".*"}, "matches no weight"),
        ({"a": "logits/.*", "b": "logits/kernel"}, "matches two groups"),
        ({"a": "logits/.*"}, "match no group"),
        ([".*"], "must be a non-empty dict"),
    ],
)
def test_bad_patterns(groups, message):
    with pytest.raises(ValueError, match=message):
        optimizers.layer_groups(testing.small_bert_classifier(), groups)


def test_empty_group_and_unknown_name():
    with pytest.raises(ValueError, match="Group 'a' is empty"):
        optimizers.LayerGroups({"a": [], "b": ["x"]})
    groups = optimizers.layer_groups(testing.small_bert_classifier())
    with pytest.raises(KeyError, match="No group named 'block_9'"):
        groups["block_9"]


def test_two_copies_of_a_backbone_are_refused():
    student = testing.small_bert_backbone(seed=1)
    teacher = testing.small_bert_backbone(seed=2)
    inputs = {
        k: keras.Input((None,), dtype="int32", name=k)
        for k in ("token_ids", "segment_ids", "padding_mask")
    }
    model = keras.Model(
        inputs,
        [student(inputs)["pooled_output"], teacher(inputs)["pooled_output"]],
    )
    with pytest.raises(ValueError, match="must be unique"):
        optimizers.layer_groups(model)
