import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from kfinetune import layers
from kfinetune import testing


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def dense_model(seed=0, alpha=0.4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    mixup = layers.Mixup(alpha=alpha, seed=seed, name="mixup")
    outputs = keras.layers.Dense(3, name="head")(mixup(inputs))
    return keras.Model(inputs, outputs)


def test_identity_outside_training_and_mixes_rolled_batch_in_training():
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    mixup = layers.Mixup(alpha=0.4, seed=1)
    np.testing.assert_array_equal(mixup(x), x)
    assert float(mixup.mixup_lambda) == 1.0
    for _ in range(3):
        mixed = ops.convert_to_numpy(mixup(x, training=True))
        lam = float(mixup.mixup_lambda)
        assert 0.0 <= lam <= 1.0
        np.testing.assert_allclose(
            mixed, lam * x + (1 - lam) * np.roll(x, 1, axis=0), atol=1e-6
        )
    mixup(x, training=False)
    assert float(mixup.mixup_lambda) == 1.0


def draws(alpha, seed, count, jit_compile=False):
    mixup = layers.Mixup(alpha=alpha, seed=seed)
    x = np.zeros((2, 1), "float32")
    mixup(x, training=True)

    @tf.function(jit_compile=jit_compile)
    def draw():
        values = tf.TensorArray(tf.float32, size=count)
        for i in tf.range(count):
            mixup(x, training=True)
            values = values.write(i, mixup.mixup_lambda.value)
        return values.stack()

    return draw().numpy()


def test_lambda_is_beta_distributed_reproducible_and_compiles_with_xla():
    np.testing.assert_array_equal(draws(0.4, 3, 20), draws(0.4, 3, 20))
    assert not np.array_equal(draws(0.4, 3, 20), draws(0.4, 4, 20))
    for alpha in (0.2, 2.0):
        values = draws(alpha, 0, 600, jit_compile=alpha == 0.2)
        # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
        assert abs(values.mean() - 0.5) < 0.04
        np.testing.assert_allclose(
            values.var(), 1 / (4 * (2 * alpha + 1)), rtol=0.2
        )
    # A tiny alpha puts lambda at 0 or 1 without NaN: no mixing.
    tiny = draws(1e-4, 0, 50)
    assert np.isfinite(tiny).all()
    assert np.minimum(tiny, 1 - tiny).max() < 1e-3


@pytest.mark.parametrize("one_hot", [False, True])
def test_loss_and_gradients_equal_the_mixup_formula(one_hot):
    model = dense_model()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6)).astype("float32")
    y = np.array([0, 1, 2, 1])
    base = sparse_ce()
    if one_hot:
        y = np.eye(3, dtype="float32")[y]
        base = keras.losses.CategoricalCrossentropy(from_logits=True)
    loss = layers.MixupLoss(base, model.get_layer("mixup"))
    with tf.GradientTape(persistent=True) as tape:
        logits = model(x, training=True)
        value = loss(y, logits)
        lam = float(model.get_layer("mixup").mixup_lambda)
        manual = lam * base(y, logits) + (1 - lam) * base(
            np.roll(y, 1, axis=0), logits
        )
    assert 0.0 < lam < 1.0
    np.testing.assert_allclose(float(value), float(manual), rtol=1e-6)
    grads = tape.gradient(value, model.trainable_weights)
    expected = tape.gradient(manual, model.trainable_weights)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)
    # The features were mixed with the same lambda.
    kernel, bias = (w.numpy() for w in model.get_layer("head").weights)
    mixed = lam * x + (1 - lam) * np.roll(x, 1, axis=0)
    np.testing.assert_allclose(logits, mixed @ kernel + bias, atol=1e-5)


def test_evaluate_reports_the_plain_loss():
    model = dense_model()
    testing.compile_and_build(
        model,
        optimizer="sgd",
        loss=layers.MixupLoss(sparse_ce(), model.layers[1]),
    )
    x = np.random.default_rng(1).normal(size=(8, 6)).astype("float32")
    y = np.arange(8) % 3
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert float(model.get_layer("mixup").mixup_lambda) != 1.0
    evaluated = model.evaluate(x, y, batch_size=8, verbose=0)
    plain = float(sparse_ce()(y, model.predict(x, verbose=0)))
    np.testing.assert_allclose(evaluated, plain, rtol=1e-5)


def bert_with_mixup(seed=0):
    backbone = testing.small_bert_backbone(seed=seed)
    pooled = backbone(backbone.input)["pooled_output"]
    mixup = layers.Mixup(alpha=0.4, seed=seed, name="mixup")
    head = keras.layers.Dense(2, name="logits")
    return keras.Model(backbone.input, head(mixup(pooled))), backbone, head


def test_bert_with_mixup_trains_with_xla_and_round_trips(tmp_path):
    model, backbone, head = bert_with_mixup()
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.SGD(0.1),
        loss=layers.MixupLoss(sparse_ce(), model.get_layer("mixup")),
        jit_compile=True,
    )
    x = testing.small_bert_inputs(batch_size=8)
    y = np.arange(8) % 2
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(
        not np.allclose(b, a.numpy())
        for b, a in zip(before, model.trainable_weights, strict=True)
    )
    # Inference is the identity: the same as the model without the layer.
    expected = head(backbone(x)["pooled_output"])
    testing.assert_outputs_close(testing.predict(model, x), expected)
    reloaded = testing.assert_keras_round_trip(model, x, str(tmp_path))
    assert isinstance(reloaded.get_layer("mixup"), layers.Mixup)
    testing.assert_config_round_trip(model.get_layer("mixup"))
    testing.assert_config_round_trip(model.loss)


def test_bad_arguments_are_errors_naming_them():
    with pytest.raises(ValueError, match="Received: alpha=0"):
        layers.Mixup(alpha=0)
    with pytest.raises(ValueError, match="Received: seed=-2"):
        layers.Mixup(seed=-2)
    with pytest.raises(ValueError, match="Received: mixup="):
        layers.MixupLoss(sparse_ce(), keras.layers.Dropout(0.1))
    with pytest.raises(ValueError, match="Received: loss='no_such_loss'"):
        layers.MixupLoss("no_such_loss", layers.Mixup())


def test_exports_as_the_identity_and_trains_in_mixed_bfloat16(tmp_path):
    x = np.random.default_rng(2).normal(size=(4, 6)).astype("float32")
    y = np.arange(4) % 3
    testing.assert_saved_model_round_trip(dense_model(), x, str(tmp_path))
    with testing.dtype_policy("mixed_bfloat16"):
        model = dense_model()
    testing.compile_and_build(
        model,
        optimizer="sgd",
        loss=layers.MixupLoss(sparse_ce(), model.get_layer("mixup")),
        jit_compile=True,
    )
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert 0.0 <= float(model.get_layer("mixup").mixup_lambda) <= 1.0
