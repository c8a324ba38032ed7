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
