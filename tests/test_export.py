import numpy as np
import pytest
import tensorflow as tf

from kfinetune import export
from kfinetune import testing

TEXTS = np.array(["good movie", "awful boring day", "i love it", "not fun"])


def test_exported_model_reads_raw_text(tmp_path):
    model = testing.small_bert_classifier(sequence_length=16)
    expected = testing.predict(model, TEXTS)
    export.export_text_classifier(
        model, tmp_path / "sm", class_names=["neg", "pos"], verbose=False
    )
    reloaded = export.load_text_classifier(tmp_path / "sm")
    served = reloaded.serve(tf.constant(TEXTS))
    testing.assert_outputs_close(served["outputs"], expected)
    ids = np.argmax(expected, -1)
    np.testing.assert_array_equal(served["class_ids"], ids)
    names = np.array([b"neg", b"pos"])[ids]
    np.testing.assert_array_equal(served["labels"].numpy(), names)
    signature = reloaded.signatures["serving_default"]
    assert signature.structured_input_signature[1]
    out = signature(tf.constant(TEXTS))
    testing.assert_outputs_close(out["outputs"], expected)


def test_export_without_class_names_has_no_labels(tmp_path):
    model = testing.small_bert_classifier(sequence_length=16)
    export.export_text_classifier(model, tmp_path / "sm", verbose=False)
    # Keep the loaded object alive: its functions do not own the variables.
    reloaded = export.load_text_classifier(tmp_path / "sm")
    served = reloaded.serve(tf.constant(TEXTS))
    assert set(served) == {"outputs", "class_ids"}


def test_model_without_preprocessor_is_refused(tmp_path):
    model = testing.small_bert_classifier()
    with pytest.raises(ValueError, match="preprocessor=None"):
        export.export_text_classifier(model, tmp_path / "sm")
    assert not (tmp_path / "sm").exists()


def test_class_names_must_match_outputs(tmp_path):
    model = testing.small_bert_classifier(num_classes=3, sequence_length=16)
    with pytest.raises(ValueError, match=r"class_names=\['a', 'b'\]"):
        export.export_text_classifier(model, tmp_path / "sm", ["a", "b"])
    assert not (tmp_path / "sm").exists()
