"""`remat`: recomputed transformer blocks give the same losses and
gradients, for full fine-tuning and every PEFT method."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import peft
from kfinetune import testing
from kfinetune import walk
from kfinetune.peft import rematerialise

METHODS = {
    "full": None,
    "lora": lambda: peft.LoRAConfig(rank=2),
    "adapter": lambda: peft.AdapterConfig(size=4),
    "ia3": lambda: peft.IA3Config(),
    "prefix": lambda: peft.PrefixConfig(length=3),
    "prompt": lambda: peft.PromptConfig(length=3),
}
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def loss_and_gradients(model, x, y):
    @tf.function(jit_compile=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = LOSS(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        # Embedding tables get `IndexedSlices`.
        return loss, [tf.convert_to_tensor(g) for g in gradients]

    return step(x, y)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_remat_keeps_losses_and_gradients(method):
    model = testing.small_bert_classifier()
    if METHODS[method] is not None:
        model = peft.apply(model, METHODS[method]())
    x = testing.small_bert_inputs(batch_size=4)
    y = np.array([0, 1, 1, 0])
    expected_loss, expected = loss_and_gradients(model, x, y)
    changed = peft.remat(model)
    assert changed == ["transformer_layer_0", "transformer_layer_1"]
    # Prompt tuning wraps the blocks: find them by path.
    (block,) = [
        s.layer for s in walk.sites(model) if s.path == "transformer_layer_0"
    ]
    assert rematerialise.is_rematerialised(block)
    loss, gradients = loss_and_gradients(model, x, y)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    assert len(gradients) == len(expected)
    for actual, wanted in zip(gradients, expected, strict=True):
        np.testing.assert_allclose(actual, wanted, atol=1e-5)
    peft.remat(model, enabled=False)
    assert not rematerialise.is_rematerialised(block)
    assert "call" not in vars(block)


def test_remat_trains_with_fit_under_xla_and_saves_without_it(tmp_path):
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig(rank=2))
    peft.remat(model)
    x = testing.small_bert_inputs(batch_size=8)
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=LOSS,
        jit_compile=True,
    )
    history = model.fit(x, np.arange(8) % 2, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    reloaded = testing.assert_keras_round_trip(model, x, tmp_path)
    block = reloaded.backbone.get_layer("transformer_layer_0")
    assert not rematerialise.is_rematerialised(block)


def test_remat_targets_and_errors():
    model = testing.small_bert_classifier()
    assert peft.remat(model, targets=r".*_layer_1") == ["transformer_layer_1"]
    # Applying twice changes nothing.
    assert peft.remat(model, targets=r".*_layer_1") == ["transformer_layer_1"]
    with pytest.raises(ValueError, match="No layer matches `targets`"):
        peft.remat(model, targets="nothing")
    with pytest.raises(ValueError, match="enabled"):
        peft.remat(model, enabled="yes")
    inputs = keras.Input((4,))
    dense = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="no keras-hub TransformerEncoder"):
        peft.remat(dense)
    with pytest.raises(ValueError, match="built Keras model"):
        peft.remat(keras.layers.Dense(2))
