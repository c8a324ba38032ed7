import keras
import keras_hub
import numpy as np
import pytest

from kfinetune import distillation
from kfinetune import peft
from kfinetune import presets
from kfinetune import testing


@pytest.fixture(scope="module")
def teacher():
    return testing.small_bert_classifier(num_classes=3, num_layers=5, seed=0)


def weights_of(model):
    return [np.array(w) for w in model.weights]


def reference_sequence(backbone, layers, x):
    """Runs the backbone's embeddings, then its transformer layers `layers`
    one after the other, as `BertBackbone` does."""
    embed = keras.Model(
        backbone.input, backbone.get_layer("embeddings_dropout").output
    )
    hidden = embed(x)
    for index in layers:
        hidden = backbone.get_layer(f"transformer_layer_{index}")(
            hidden, padding_mask=x["padding_mask"]
        )
    return np.asarray(hidden)


def test_shrunk_backbone_runs_the_embeddings_and_the_chosen_layers(teacher):
    x = testing.small_bert_inputs(batch_size=3)
    before = weights_of(teacher)
    student = presets.shrink(teacher.backbone, layers=[0, 2, 4])
    assert isinstance(student, keras_hub.models.BertBackbone)
    assert student.num_layers == 3
    assert student.hidden_dim == teacher.backbone.hidden_dim
    out = student.predict(x, verbose=0)
    expected = reference_sequence(teacher.backbone, [0, 2, 4], x)
    testing.assert_outputs_close(out["sequence_output"], expected)
    pooled = teacher.backbone.get_layer("pooled_dense")(expected[:, 0, :])
    testing.assert_outputs_close(out["pooled_output"], pooled)
    # Exact copies, and the teacher is left as it was.
    copied = student.get_layer("transformer_layer_1").get_weights()
    original = teacher.backbone.get_layer("transformer_layer_2").get_weights()
    for a, b in zip(copied, original, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(weights_of(teacher), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_shrunk_task_keeps_its_class_head_and_preprocessor():
    teacher = testing.small_bert_classifier(
        num_classes=3, num_layers=3, sequence_length=16
    )
    student = presets.shrink(teacher, layers=[1], name="small_backbone")
    assert type(student) is type(teacher)
    assert student.num_classes == 3
    assert student.preprocessor is teacher.preprocessor
    assert student.backbone.name == "small_backbone"
    np.testing.assert_array_equal(
        student.get_layer("logits").get_weights()[0],
        teacher.get_layer("logits").get_weights()[0],
    )
    texts = np.array(["a good day", "the worst film ever"])
    pre = teacher.preprocessor(texts)
    pooled = teacher.backbone.get_layer("pooled_dense")(
        reference_sequence(teacher.backbone, [1], pre)[:, 0, :]
    )
    expected = teacher.get_layer("logits")(pooled)
    testing.assert_outputs_close(student.predict(texts, verbose=0), expected)


def test_shrink_of_a_frozen_model_is_trainable(teacher):
    frozen = testing.small_bert_classifier(num_layers=2)
    frozen.trainable = False
    student = presets.shrink(frozen, layers=[1])
    assert student.trainable and student.backbone.trainable
    assert len(student.trainable_weights) == len(student.weights)


def test_shrunk_model_round_trips_as_keras_file(teacher, tmp_path):
    student = presets.shrink(teacher, layers=[0, 3])
    testing.assert_keras_round_trip(
        student, testing.small_bert_inputs(), str(tmp_path)
    )


def test_presets_shrink_is_the_distillation_function():
    assert presets.shrink is distillation.shrink


@pytest.mark.parametrize(
    "layers, message",
    [
        ([], "non-empty list"),
        ((), "non-empty list"),
        (2, "non-empty list"),
        ([0, 5], r"in \[0, 5\)"),
        ([-1, 2], r"in \[0, 5\)"),
        ([0, 1.0], r"in \[0, 5\)"),
        ([True], r"in \[0, 5\)"),
        ([1, 1], "must not repeat"),
        ([3, 1], "increasing order"),
    ],
)
def test_bad_layers_are_refused(teacher, layers, message):
    with pytest.raises(ValueError, match=message) as error:
        presets.shrink(teacher, layers=layers)
    assert f"Received: layers={layers!r}" in str(error.value)


def test_models_without_transformer_blocks_are_refused(teacher):
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="keras-hub backbone or a keras-hub"):
        presets.shrink(plain, layers=[0])
    lora = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig(rank=2))
    with pytest.raises(ValueError, match="shrink its base before"):
        presets.shrink(lora, layers=[0])
