import dataclasses

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
