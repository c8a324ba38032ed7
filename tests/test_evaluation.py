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
