import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import distillation
from kfinetune import peft
from kfinetune import presets
from kfinetune import testing

X = testing.small_bert_inputs(batch_size=8, seed=1)
Y = np.array([0, 1, 1, 0, 1, 0, 0, 1])


def build_teacher(seed=0):
    return testing.small_bert_classifier(num_layers=4, seed=seed)


def build_pair(**kwargs):
    teacher = build_teacher()
    return distillation.Distiller(
        teacher, presets.shrink(teacher, [0, 2]), **kwargs
    )


def build_small_pair():
    teacher = testing.small_bert_classifier(num_layers=2)
    return distillation.Distiller(
        teacher, presets.shrink(teacher, [1]), hidden_weight=1.0
    )


def arrays(model):
    return [np.array(w) for w in model.weights]


def assert_bitwise_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)


def fit(distiller, x=X, y=Y, steps=3, jit_compile=False, **compile_kwargs):
    testing.compile_and_build(
        distiller,
        optimizer=keras.optimizers.SGD(0.1),
        jit_compile=jit_compile,
        **compile_kwargs,
    )
    parts = (x,) if y is None else (x, y)
    dataset = tf.data.Dataset.from_tensor_slices(parts).batch(4).repeat()
    return distiller.fit(dataset, steps_per_epoch=1, epochs=steps, verbose=0)


def test_soft_target_loss_is_kl_of_softened_distributions_times_t2():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(3, 4)).astype("float32")
    student = rng.normal(size=(3, 4)).astype("float32")

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(teacher / 3.0), softmax(student / 3.0)
    expected = 9.0 * (p * np.log(p / q)).sum(-1)
    actual = distillation.soft_target_loss(teacher, student, temperature=3.0)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-5)
    same = distillation.soft_target_loss(teacher, teacher)
    np.testing.assert_allclose(np.asarray(same), 0.0, atol=1e-6)


def test_hidden_state_loss_averages_over_unpadded_tokens():
    teacher = np.zeros((2, 3, 4), "float32")
    student = np.ones((2, 3, 4), "float32")
    student[:, 2] = 10.0  # padding in row 0 only
    mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    actual = distillation.hidden_state_loss(teacher, student, mask)
    np.testing.assert_allclose(np.asarray(actual), [1.0, 34.0], rtol=1e-6)


def test_loss_mixes_hard_and_soft_losses():
    distiller = build_pair(temperature=3.0, alpha=0.3)
    distiller.compile(optimizer="sgd")
    logits = distiller(X)
    loss = distiller.compute_loss(X, Y, logits)
    teacher_logits = distiller.teacher(X)
    soft = np.mean(distillation.soft_target_loss(teacher_logits, logits, 3.0))
    hard = np.mean(
        keras.losses.sparse_categorical_crossentropy(
            Y, logits, from_logits=True
        )
    )
    np.testing.assert_allclose(float(loss), 0.3 * hard + 0.7 * soft, rtol=1e-5)
    # Without labels, or with alpha=0, the soft loss alone.
    unlabelled = distiller.compute_loss(X, None, logits)
    np.testing.assert_allclose(float(unlabelled), soft, rtol=1e-5)
    soft_only = build_pair(temperature=3.0, alpha=0.0)
    soft_only.compile(optimizer="sgd")
    np.testing.assert_allclose(
        float(soft_only.compute_loss(X, Y, logits)), soft, rtol=1e-5
    )


def test_regularisation_counts_once_outside_the_mix():
    distiller = build_pair(temperature=3.0, alpha=0.3)
    kernel = distiller.student.get_layer("logits").kernel
    kernel.regularizer = keras.regularizers.L2(0.01)
    distiller.compile(optimizer="sgd")
    logits = distiller(X)
    penalty = 0.01 * np.sum(np.square(np.asarray(kernel)))
    assert len(distiller.losses) == 1
    np.testing.assert_allclose(float(distiller.losses[0]), penalty, rtol=1e-5)
    soft = np.mean(
        distillation.soft_target_loss(distiller.teacher(X), logits, 3.0)
    )
    hard = np.mean(
        keras.losses.sparse_categorical_crossentropy(
            Y, logits, from_logits=True
        )
    )
    # At full weight with labels too, not scaled by alpha.
    np.testing.assert_allclose(
        float(distiller.compute_loss(X, Y, logits)),
        0.3 * hard + 0.7 * soft + penalty,
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        float(distiller.compute_loss(X, None, logits)),
        soft + penalty,
        rtol=1e-5,
    )


def test_fit_trains_the_student_and_leaves_the_teacher_bitwise_unchanged():
    distiller = build_pair()
    teacher_before = arrays(distiller.teacher)
    student_before = arrays(distiller.student)
    history = fit(distiller, metrics=["accuracy"])
    assert {"loss", "soft_loss", "hard_loss", "accuracy"} <= set(
        history.history
    )
    assert_bitwise_equal(arrays(distiller.teacher), teacher_before)
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(arrays(distiller.student), student_before, strict=True)
    ]
    assert all(changed)
    teacher_ids = {id(w) for w in distiller.teacher.weights}
    trainable_ids = {id(w) for w in distiller.trainable_weights}
    assert not teacher_ids & trainable_ids
    assert trainable_ids == {id(w) for w in distiller.student.weights}
    # The distiller predicts as its student.
    testing.assert_outputs_close(
        testing.predict(distiller, X), testing.predict(distiller.student, X)
    )


def test_unlabelled_batches_train_on_the_soft_loss():
    distiller = build_pair()
    teacher_before = arrays(distiller.teacher)
    history = fit(distiller, y=None, metrics=["accuracy"])
    assert set(history.history) == {"loss", "soft_loss"}
    np.testing.assert_allclose(
        history.history["loss"], history.history["soft_loss"], rtol=1e-6
    )
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert_bitwise_equal(arrays(distiller.teacher), teacher_before)


def test_hidden_taps_read_the_functional_backbone_layers():
    distiller = build_pair(hidden_weight=1.0)
    assert distiller.hidden_layers == {0: 1, 1: 3}
    taps = distiller(X, training=True)["hidden"]
    out = distiller.student.backbone.predict(X, verbose=0)
    testing.assert_outputs_close(taps[-1], out["sequence_output"])


def test_hidden_state_matching_trains_and_matches_under_xla():
    losses, _ = testing.assert_jit_compile_consistent(
        build_small_pair, X, Y, steps=3
    )
    # The hidden-state term dominates the loss here.
    assert losses[-1] < losses[0]


def test_raw_text_is_preprocessed_with_the_students_preprocessor():
    teacher = testing.small_bert_classifier(sequence_length=16)
    distiller = distillation.Distiller(teacher, presets.shrink(teacher, [1]))
    assert distiller.preprocessor is distiller.student.preprocessor
    texts = tf.constant(["a good day", "the worst film", "fun", "sad night"])
    raw = tf.data.Dataset.from_tensor_slices((texts, [1, 0, 1, 0])).batch(2)
    distiller.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="map the dataset through"):
        distiller.fit(raw, epochs=1, verbose=0)
    distiller.fit(raw.map(distiller.preprocessor), epochs=1, verbose=0)
    unlabelled = tf.data.Dataset.from_tensor_slices(texts).batch(2)
    history = distiller.fit(
        unlabelled.map(distiller.preprocessor), epochs=1, verbose=0
    )
    assert set(history.history) == {"loss", "soft_loss"}


def test_keras_file_keeps_teacher_and_student_apart(tmp_path):
    # Same architecture, different weights: every weight path is shared.
    teacher, student = build_teacher(seed=0), build_teacher(seed=1)
    teacher_paths = sorted(w.path for w in teacher.weights)
    assert teacher_paths == sorted(w.path for w in student.weights)
    distiller = distillation.Distiller(
        teacher, student, hidden_weight=0.5, hidden_layers={3: 3}
    )
    reloaded = testing.assert_keras_round_trip(distiller, X, str(tmp_path))
    assert_bitwise_equal(arrays(reloaded.teacher), arrays(teacher))
    assert_bitwise_equal(arrays(reloaded.student), arrays(student))
    assert reloaded.hidden_layers == {3: 3}
    assert not reloaded.teacher.trainable


def test_lora_on_the_student_before_distillation():
    teacher = build_teacher()
    student = peft.apply(
        presets.shrink(teacher, [0, 3]), peft.LoRAConfig(rank=2)
    )
    frozen_before = [np.array(w) for w in student.non_trainable_weights]
    distiller = distillation.Distiller(teacher, student, hidden_weight=1.0)
    teacher_before = arrays(teacher)
    lora_before = [np.array(w) for w in student.trainable_weights]
    fit(distiller)
    assert_bitwise_equal(arrays(teacher), teacher_before)
    assert_bitwise_equal(
        [np.array(w) for w in student.non_trainable_weights], frozen_before
    )
    lora_after = [np.array(w) for w in student.trainable_weights]
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(lora_after, lora_before, strict=True)
    )
    assert len(distiller.trainable_weights) == len(student.trainable_weights)
    # Patterns cannot tell the teacher's layers from the student's.
    with pytest.raises(ValueError, match="more than one layer"):
        peft.apply(build_pair(), peft.LoRAConfig(rank=2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": 0}, "Received: temperature=0"),
        ({"alpha": 1.5}, "Received: alpha=1.5"),
        ({"hidden_weight": -1.0}, "Received: hidden_weight=-1.0"),
        ({"hidden_layers": {0: 1}}, "only used when `hidden_weight > 0`"),
        (
            {"hidden_weight": 1.0, "hidden_layers": {2: 1}},
            r"Received: hidden_layers=\{2: 1\}",
        ),
        (
            {"hidden_weight": 1.0, "hidden_layers": {0: 4}},
            r"Received: hidden_layers=\{0: 4\}",
        ),
        (
            {"hidden_weight": 1.0, "hidden_layers": {}},
            r"Received: hidden_layers=\{\}",
        ),
    ],
)
def test_bad_arguments_are_refused_before_anything_changes(kwargs, message):
    teacher = build_teacher()
    student = presets.shrink(teacher, [0, 2])
    with pytest.raises(ValueError, match=message):
        distillation.Distiller(teacher, student, **kwargs)
    assert teacher.trainable


def test_models_that_cannot_be_distilled_together_are_refused():
    teacher = build_teacher()
    three_classes = testing.small_bert_classifier(num_classes=3)
    with pytest.raises(ValueError, match="teacher has 2 outputs and the st"):
        distillation.Distiller(teacher, three_classes)
    with pytest.raises(ValueError, match="must be two models"):
        distillation.Distiller(teacher, teacher)
    with pytest.raises(ValueError, match="must be a `keras.Model`"):
        distillation.Distiller(teacher, "student")
    narrow = testing.small_bert_classifier(hidden_dim=16)
    with pytest.raises(ValueError, match="has 16 features"):
        distillation.Distiller(teacher, narrow, hidden_weight=1.0)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="Received: student="):
        distillation.Distiller(teacher, plain, hidden_weight=1.0)
    assert teacher.trainable


def test_mirrored_strategy_matches_one_device():
    testing.assert_mirrored_consistent(build_small_pair, X, Y, steps=2)


def test_trains_under_mixed_bfloat16():
    with testing.dtype_policy("mixed_bfloat16"):
        distiller = build_small_pair()
        teacher_before = arrays(distiller.teacher)
        history = fit(distiller, steps=2)
    assert np.all(np.isfinite(history.history["loss"]))
    assert_bitwise_equal(arrays(distiller.teacher), teacher_before)
