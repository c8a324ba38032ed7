"""Tests for `kfinetune.preprocessing`."""

import gc
import weakref

import numpy as np
import pytest
import tensorflow as tf

from kfinetune import preprocessing
from kfinetune import testing

TEXTS = ["i love this movie", "what an awful day", "so happy", "never again"]


@pytest.fixture(scope="module")
def classifier():
    return testing.small_bert_classifier(sequence_length=16)


def test_predicts_what_keras_hub_predicts_and_keeps_the_preprocessor(
    classifier,
):
    preprocessor = classifier.preprocessor
    # keras-hub's own path: the preprocessor mapped over a tf.data pipeline.
    expected = classifier.predict(np.array(TEXTS), verbose=0)
    weights = [w.path for w in classifier.weights]
    for x in (
        TEXTS,
        np.array(TEXTS),
        tf.data.Dataset.from_tensor_slices(TEXTS).batch(3),
    ):
        # The same TensorFlow preprocessing, the same batches: equal bits.
        np.testing.assert_array_equal(
            preprocessing.predict(classifier, x), expected
        )
        assert classifier.preprocessor is preprocessor
    # Batches of another size round differently, within float32 noise.
    testing.assert_outputs_close(
        preprocessing.predict(classifier, TEXTS, batch_size=3), expected
    )
    assert [w.path for w in classifier.weights] == weights
    # One traced function per input structure, whatever the batch size.
    assert len(preprocessing._FUNCTIONS[preprocessor]) == 1


def test_pairs_and_models_without_a_preprocessor(classifier):
    first, second = np.array(TEXTS[:2]), np.array(TEXTS[2:])
    pairs = preprocessing.predict(classifier, (first, second))
    np.testing.assert_array_equal(
        pairs, classifier.predict((first, second), verbose=0)
    )
    # The second texts count.
    assert not np.allclose(pairs, preprocessing.predict(classifier, first))
    # A dataset of pairs holds them as `predict` reads them: `((a, b),)`.
    dataset = tf.data.Dataset.from_tensor_slices(((first, second),))
    np.testing.assert_array_equal(
        preprocessing.predict(classifier, dataset.batch(1)), pairs
    )
    features = preprocessing.preprocess(classifier.preprocessor, TEXTS)
    assert set(features) == {"token_ids", "segment_ids", "padding_mask"}
    assert features["token_ids"].shape == (4, 16)
    with preprocessing.without_preprocessor(classifier):
        assert classifier.preprocessor is None
        # A model without a preprocessor takes its inputs as they are.
        np.testing.assert_array_equal(
            preprocessing.predict(classifier, features),
            classifier.predict(features, verbose=0),
        )
    assert classifier.preprocessor is not None


def test_the_preprocessor_stays_when_predict_fails(classifier):
    preprocessor = classifier.preprocessor
    with pytest.raises(ValueError, match="empty dataset"):
        preprocessing.predict(
            classifier, tf.data.Dataset.from_tensor_slices(TEXTS).take(0)
        )
    assert classifier.preprocessor is preprocessor


def test_the_cached_function_does_not_keep_its_preprocessor_alive():
    def lengths(x):
        return {"lengths": tf.strings.length(x)}

    features = preprocessing.preprocess(lengths, TEXTS)
    np.testing.assert_array_equal(features["lengths"], [len(t) for t in TEXTS])
    preprocessor = weakref.ref(lengths)
    # Outside `assert`: pytest's rewritten asserts keep what they compare.
    cached = lengths in preprocessing._FUNCTIONS
    assert cached
    del lengths
    gc.collect()
    assert preprocessor() is None
