import numpy as np
import pytest
import tensorflow as tf

from kfinetune import peft
from kfinetune import recipes
from kfinetune import testing


def dataset():
    x = testing.small_bert_inputs(batch_size=32)
    y = (np.arange(32) % 2).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def test_fine_tune_trains_the_head_first_then_everything():
    model = testing.small_bert_classifier()
    embeddings = model.backbone.get_layer("token_embedding")
    start = embeddings.embeddings.numpy().copy()
    history = recipes.fine_tune(model, dataset(), epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    # Every group, the embeddings included, trains by the end.
    assert not np.array_equal(embeddings.embeddings.numpy(), start)


def test_fine_tune_composes_with_lora():
    base = testing.small_bert_classifier()
    model = peft.apply(base, peft.LoRAConfig())
    kernel = "transformer_layer_0/self_attention_layer/query/kernel"
    before = {v.path: v.numpy().copy() for v in base.weights}[kernel]
    recipes.fine_tune(model, dataset(), epochs=2, verbose=0)
    after = {v.path: v.numpy() for v in base.weights}[kernel]
    np.testing.assert_array_equal(after, before)


def test_repeated_dataset_is_refused():
    model = testing.small_bert_classifier()
    with pytest.raises(ValueError, match="known length"):
        recipes.fine_tune(model, dataset().repeat(), epochs=1)
