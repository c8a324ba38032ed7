import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import data
from kfinetune import peft
from kfinetune import recipes
from kfinetune import testing
from kfinetune.recipes.domain_adapt import _texts_dataset

TEXTS = [
    "the movie was good",
    "i love this film",
    "the day was bad and boring",
    "we never hated it",
] * 8


def _tokenizer():
    return testing.small_bert_preprocessor().tokenizer


def _weights(model):
    return {v.path: np.array(v) for v in model.backbone.weights}


def _adapt(model, **kwargs):
    options = dict(batch_size=8, sequence_length=16, verbose=0)
    return recipes.domain_adapt(model, TEXTS, **{**options, **kwargs})


def _recorder(key="loss"):
    seen = []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(logs[key])
    )
    return callback, seen


def test_mlm_loss_goes_down_and_backbone_comes_back_adapted():
    backbone = testing.small_bert_backbone()
    before = np.array(backbone.token_embedding.embeddings)
    callback, losses = _recorder()
    returned = _adapt(
        backbone,
        tokenizer=_tokenizer(),
        epochs=4,
        learning_rate=3e-3,
        callbacks=[callback],
    )
    assert returned is backbone
    # The MLM output projection is the token embedding, transposed.
    assert not np.allclose(before, backbone.token_embedding.embeddings)
    # Keras logs the running mean over the epoch; compare whole epochs.
    assert len(losses) == 16
    assert losses[-1] < 0.8 * losses[3]


def test_classifier_sees_the_adapted_backbone_under_xla():
    model = testing.small_bert_classifier(sequence_length=16)
    backbone = model.backbone
    before = _weights(model)
    predictions = model.predict(TEXTS[:4], verbose=0)
    callback, losses = _recorder()

    returned = _adapt(
        model, learning_rate=1e-3, jit_compile=True, callbacks=[callback]
    )

    assert returned is model
    assert model.backbone is backbone
    assert len(losses) == 4 and np.all(np.isfinite(losses))
    after = _weights(model)
    assert any(not np.allclose(before[p], after[p]) for p in before)
    assert not np.allclose(predictions, model.predict(TEXTS[:4], verbose=0))


def test_only_lora_weights_move_training_on_labelled_texts(tmp_path):
    labelled = data.LabelledTexts(
        np.array(TEXTS, dtype=object), np.zeros(len(TEXTS), "int32"), ("a",)
    )
    model = peft.apply(
        testing.small_bert_classifier(sequence_length=16),
        peft.LoRAConfig(rank=2),
    )
    before = _weights(model)
    assert any("lora_" in path for path in before)

    recipes.domain_adapt(
        model,
        labelled,
        batch_size=8,
        learning_rate=1e-2,
        jit_compile=True,
        verbose=0,
    )

    after = _weights(model)
    for path in before:
        moved = not np.allclose(before[path], after[path])
        # lora_b starts at zero and lora_a only moves once it is not.
        if "lora_b" in path:
            assert moved, path
        elif "lora_" not in path:
            assert not moved, path
    # The adapted model still saves and reloads with its adapters.
    testing.assert_keras_round_trip(model, TEXTS[:4], str(tmp_path))


def test_accepts_a_batched_dataset_of_texts():
    # 32 different texts, in batches of 5.
    distinct = [
        f"{text} {word}"
        for text, word in zip(TEXTS, testing.VOCABULARY[5:], strict=False)
    ]
    assert len(set(distinct)) == len(TEXTS)
    batched = tf.data.Dataset.from_tensor_slices(distinct).batch(5)
    # The texts it trains on are the 32 texts, one by one, in order.
    texts = _texts_dataset(batched)
    assert [t.decode() for t in texts.as_numpy_iterator()] == distinct
    callback, losses = _recorder()
    backbone = testing.small_bert_backbone()
    before = {v.path: np.array(v) for v in backbone.weights}
    recipes.domain_adapt(
        backbone,
        batched,
        tokenizer=_tokenizer(),
        batch_size=16,
        sequence_length=16,
        callbacks=[callback],
        verbose=0,
    )
    # Batched again at `batch_size`: 32 texts, 2 steps, and they trained.
    assert len(losses) == 2 and np.isfinite(losses).all()
    moved = [
        v.path for v in backbone.weights if not np.allclose(v, before[v.path])
    ]
    assert "token_embedding/embeddings" in moved
    assert any(p.startswith("transformer_layer_1/") for p in moved)


def test_checkpoint_dir_writes_and_resumes(tmp_path):
    directory = str(tmp_path / "mlm")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        _adapt(
            testing.small_bert_classifier(sequence_length=16),
            epochs=2,
            checkpoint_dir=directory,
            callbacks=[Interrupt()],
        )
    assert os.path.exists(os.path.join(directory, "mlm.weights.h5"))
    assert os.listdir(os.path.join(directory, "backup"))

    epochs = []
    resume = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epochs.append(epoch)
    )
    _adapt(
        testing.small_bert_classifier(sequence_length=16),
        epochs=2,
        checkpoint_dir=directory,
        callbacks=[resume],
    )
    assert epochs == [1]
    # The backup goes once the run completes; the weights file stays.
    assert not os.path.exists(os.path.join(directory, "backup"))
    assert os.path.exists(os.path.join(directory, "mlm.weights.h5"))


@pytest.mark.parametrize(
    "texts, message",
    [
        ([], r"at least one text. Received: texts=\[\]"),
        (["good", 3], r"texts\[1\] is a int. Received: texts\[1\]=3"),
        ("the movie", "Received: texts='the movie'"),
        (tf.data.Dataset.from_tensor_slices(["a"]).take(0), "empty dataset"),
        (tf.data.Dataset.from_tensor_slices([1, 2]), "element_spec="),
        (
            tf.data.Dataset.from_tensor_slices((["a"], [0])),
            "not `\\(text, label\\)` pairs",
        ),
        (
            data.LabelledTexts([("a", "b")], [0], ["x", "y"]),
            r"holds sentence pairs.*Pass `texts.texts.ravel\(\)`",
        ),
    ],
)
def test_bad_texts_raise_before_training(texts, message):
    model = testing.small_bert_classifier(sequence_length=16)
    before = _weights(model)
    with pytest.raises(ValueError, match=message):
        recipes.domain_adapt(model, texts, verbose=0)
    after = _weights(model)
    assert all(np.array_equal(before[p], after[p]) for p in before)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mask_rate": 0}, "Received: mask_rate=0"),
        ({"mask_rate": 1.5}, "Received: mask_rate=1.5"),
        ({"sequence_length": 1000}, "Received: sequence_length=1000"),
        ({"epochs": 0}, "Received: epochs=0"),
        ({"checkpoint_every": 0}, "Received: checkpoint_every=0"),
        ({"tokenizer": "bert"}, "Received: tokenizer='bert'"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    model = testing.small_bert_classifier(sequence_length=16)
    with pytest.raises(ValueError, match=message):
        recipes.domain_adapt(model, TEXTS, verbose=0, **kwargs)


def test_backbone_without_tokenizer_raises():
    with pytest.raises(ValueError, match="Received: tokenizer=None"):
        recipes.domain_adapt(testing.small_bert_backbone(), TEXTS)


def test_tokenizer_of_another_vocabulary_raises():
    backbone = testing.small_bert_backbone()
    tokenizer = testing.small_bert_preprocessor().tokenizer.__class__(
        vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good"]
    )
    with pytest.raises(ValueError, match="vocabulary_size=6"):
        recipes.domain_adapt(backbone, TEXTS, tokenizer=tokenizer)


def test_model_without_bert_backbone_raises():
    model = testing.small_gpt2_causal_lm()
    with pytest.raises(ValueError, match="Received: model_or_backbone="):
        recipes.domain_adapt(model, TEXTS)
