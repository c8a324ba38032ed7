import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import evaluation
from kfinetune import testing


def test_report_matches_hand_computed_values():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    report = evaluation.classification_report(y_true, y_pred, "abc")
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.precision == pytest.approx((1.0, 0.5, 0.5))
    assert report.recall == pytest.approx((2 / 3, 0.5, 1.0))
    assert report.f1 == pytest.approx((0.8, 0.5, 2 / 3))
    assert report.support == (3, 2, 1)
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    text = str(report)
    assert "accuracy" in text and "macro F1" in text
    assert report.as_dict()["per_class"]["b"]["support"] == 2


def test_never_predicted_class_scores_zero():
    report = evaluation.classification_report([0, 1], [0, 0], ["x", "y"])
    assert report.precision[1] == 0.0
    assert report.f1[1] == 0.0


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [
        ([0, 1], [0], "same length"),
        ([], [], "Nothing to evaluate"),
        ([0, 2], [0, 1], "y_true containing 2"),
        ([0, 1], [0, -1], "y_pred containing -1"),
    ],
)
def test_bad_input(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        evaluation.classification_report(y_true, y_pred, ["a", "b"])


def test_evaluate_classifier_keeps_labels_aligned_on_reshuffled_data():
    model = testing.small_bert_classifier(sequence_length=16)
    texts = np.array([f"good movie {i % 7} day" for i in range(40)])
    texts[::3] = "awful boring night"
    labels = np.arange(40) % 2
    expected_pred = np.argmax(model.predict(texts, verbose=0), -1)
    expected = evaluation.classification_report(
        labels, expected_pred, ["neg", "pos"]
    )
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels)).shuffle(
        40, seed=1, reshuffle_each_iteration=True
    )
    report = evaluation.evaluate_classifier(
        model, dataset, ["neg", "pos"], batch_size=8
    )
    assert report == expected


def test_the_report_draws_its_confusion_matrix(tmp_path):
    from matplotlib.image import imread

    report = evaluation.classification_report(
        [0, 1, 1, 2], [0, 1, 0, 2], ["negative", "positive", "neutral"]
    )
    assert report.confusion == ((1, 0, 0), (1, 1, 0), (0, 0, 1))
    path = report.plot_confusion_matrix(tmp_path / "c.png", dpi=50)
    assert imread(path).shape[2] == 4 and path.stat().st_size > 1000
    counts = evaluation.plot_confusion_matrix(
        report.confusion, report.class_names, tmp_path / "n.png", False
    )
    assert counts.exists()
    with pytest.raises(ValueError, match="square"):
        evaluation.plot_confusion_matrix([[1, 2]], ["a"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="class_names"):
        evaluation.plot_confusion_matrix(
            [[1, 0], [0, 1]], ["a"], tmp_path / "x.png"
        )
    bare = dataclasses.replace(report, confusion=None)
    with pytest.raises(ValueError, match="confusion=None"):
        bare.plot_confusion_matrix(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_weighted_report_counts_each_example_with_its_weight():
    report = evaluation.classification_report(
        [0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"], sample_weight=[3, 1, 0.5, 0.5]
    )
    assert report.confusion == ((3.0, 1.0), (0.0, 1.0))
    assert report.support == (4.0, 1.0)
    assert report.accuracy == pytest.approx(4 / 5)
    assert report.precision == pytest.approx((1.0, 0.5))
    assert report.recall == pytest.approx((0.75, 1.0))
    # Integer weights print as counts, others with two decimals.
    assert "      4" in str(report)
    with pytest.raises(ValueError, match=r"one finite weight per example"):
        evaluation.classification_report([0, 1], [0, 1], "ab", [1.0])
    with pytest.raises(ValueError, match=r"minimum -1.0"):
        evaluation.classification_report([0, 1], [0, 1], "ab", [1.0, -1.0])


def _binary_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def _one_output_model(activation):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(1, activation=activation)]
    )
    # Class 1 where the first feature is positive: logit 4 * x0.
    model.set_weights([np.array([[4.0], [0.0], [0.0]]), np.zeros(1)])
    return model


@pytest.mark.parametrize("activation", ["sigmoid", None])
def test_one_output_models_predict_both_classes(activation):
    x, y = _binary_data()
    model = _one_output_model(activation)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    report = evaluation.evaluate_classifier(model, dataset, ["neg", "pos"])
    # The first feature decides: every example right, both classes seen.
    assert report.accuracy == 1.0
    assert report.confusion == ((int((y == 0).sum()), 0), (0, int(y.sum())))
    # A threshold of its own: sigmoid(4 x0) > 0.9, or 4 x0 > log 9.
    cut = 0.9 if activation == "sigmoid" else np.log(9)
    strict = evaluation.evaluate_classifier(
        model, dataset, ["neg", "pos"], threshold=cut
    )
    expected = evaluation.classification_report(
        y, (x[:, 0] > np.log(9) / 4).astype(int), ["neg", "pos"]
    )
    assert strict == expected


def test_weighted_datasets_and_bad_thresholds():
    x, y = _binary_data()
    weights = np.linspace(0.5, 2.0, len(y)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weights))
    report = evaluation.evaluate_classifier(model, dataset, ["neg", "pos"])
    predicted = np.argmax(model.predict(x, verbose=0), -1)
    assert report == evaluation.classification_report(
        y, predicted, ["neg", "pos"], sample_weight=weights
    )
    plain = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(ValueError, match=r"this one has 2 .* threshold=0.5"):
        evaluation.evaluate_classifier(model, plain, "ab", threshold=0.5)
    with pytest.raises(ValueError, match=r"number. Received: threshold='hi'"):
        evaluation.evaluate_classifier(model, plain, "ab", threshold="hi")
    binary = _one_output_model("relu")
    with pytest.raises(ValueError, match=r"activation \(relu\) says neither"):
        evaluation.evaluate_classifier(binary, plain, "ab")
    with pytest.raises(ValueError, match=r"two names. Received: .*'c'\]"):
        evaluation.evaluate_classifier(
            _one_output_model("sigmoid"), plain, "abc"
        )


Y_TRUE = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]]
Y_SCORE = [[0.9, 0.2, 0.4], [0.1, 0.7, 0.6], [0.8, 0.3, 0.1], [0.2, 0.1, 0.5]]


def test_multi_label_report_matches_hand_computed_values():
    report = evaluation.multi_label_report(Y_TRUE, Y_SCORE, "abc")
    # Predicted (above 0.5; 0.5 itself is not): a, b c, a, nothing.
    assert report.precision == pytest.approx((1.0, 1.0, 0.0))
    assert report.recall == pytest.approx((1.0, 0.5, 0.0))
    assert report.f1 == pytest.approx((1.0, 2 / 3, 0.0))
    assert report.support == (2, 2, 1)
    # 3 right of 4 predicted, of 5 true.
    assert report.micro_precision == pytest.approx(0.75)
    assert report.micro_recall == pytest.approx(0.6)
    assert report.micro_f1 == pytest.approx(2 / 3)
    assert report.macro_f1 == pytest.approx(5 / 9)
    # Only the last example, with no class, is exactly right.
    assert report.subset_accuracy == pytest.approx(0.25)
    text = str(report)
    assert "micro avg" in text and "subset accuracy" in text
    assert report.as_dict()["per_class"]["b"]["recall"] == 0.5
    lower = evaluation.multi_label_report(Y_TRUE, Y_SCORE, "abc", 0.35)
    # Now a c, b c, a, c: the first example is right, the last not.
    assert lower.subset_accuracy == pytest.approx(0.25)
    assert lower.recall[2] == 1.0
    assert lower.precision[2] == pytest.approx(1 / 3)


def test_weighted_multi_label_report():
    report = evaluation.multi_label_report(
        Y_TRUE, Y_SCORE, "abc", sample_weight=[1, 2, 0, 1]
    )
    assert report.support == (1.0, 2.0, 1.0)
    assert report.f1 == pytest.approx((1.0, 1.0, 0.0))
    # 3 right of 5 predicted, of 4 true (weighted).
    assert report.micro_precision == pytest.approx(0.6)
    assert report.micro_recall == pytest.approx(0.75)
    assert report.subset_accuracy == pytest.approx(0.25)


@pytest.mark.parametrize(
    "y_true, y_score, kwargs, message",
    [
        ([[1, 0]], [[0.5, 0.5]], {}, r"one column per class name \(3\)"),
        (
            [[1, 0, 0]],
            [[0.5, 0.5, 0.5], [0, 0, 0]],
            {},
            r"same shape. Received: y_true of shape \(1, 3\)",
        ),
        (np.zeros((0, 3)), np.zeros((0, 3)), {}, "Nothing to evaluate"),
        ([[2, 0, 0]], [[0.5] * 3], {}, "Received: y_true containing 2"),
        (
            [[1, 0, 0]],
            [[3.0, 0, 0]],
            {},
            r"to logits\)\. Received: y_score containing 3.0",
        ),
        ([[1, 0, 0]], [[0.5] * 3], {"threshold": 1}, "threshold=1"),
        (
            [[1, 0, 0]],
            [[0.5] * 3],
            {"sample_weight": [-1]},
            "non-negative with a positive sum",
        ),
    ],
)
def test_multi_label_report_bad_input(y_true, y_score, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluation.multi_label_report(y_true, y_score, "abc", **kwargs)


def test_evaluate_classifier_reads_float_labels_as_multi_hot():
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = (x > 0).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    report = evaluation.evaluate_classifier(model, dataset, "abc")
    logits = model.predict(x, verbose=0)
    assert report == evaluation.multi_label_report(
        y, 1 / (1 + np.exp(-logits.astype("float64"))), "abc"
    )
    with pytest.raises(ValueError, match=r"entry per class name \(2\)"):
        evaluation.evaluate_classifier(model, dataset, "ab")
    softmax = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(3, activation="softmax")]
    )
    with pytest.raises(ValueError, match="activation is softmax"):
        evaluation.evaluate_classifier(softmax, dataset.batch(4), "abc")
