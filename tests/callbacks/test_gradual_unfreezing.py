import keras
import numpy as np
import pytest

from kfinetune import callbacks
from kfinetune import optimizers
from kfinetune import peft
from kfinetune import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
X = testing.small_bert_inputs(batch_size=16)
Y = (np.arange(16) % 2).astype("int32")


class Snapshots(keras.callbacks.Callback):
    """Every weight, by path, at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(
            {v.path: v.numpy().copy() for v in self.model.weights}
        )


def train(mode, model=None, epochs=4, **kwargs):
    model = model or testing.small_bert_classifier()
    groups = optimizers.layer_groups(model)
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.Adam(1e-2), groups, decay=0.7
    )
    model.compile(optimizer, LOSS)
    start = {v.path: v.numpy().copy() for v in model.weights}
    snapshots = Snapshots()
    model.fit(
        X,
        Y,
        batch_size=8,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[
            callbacks.GradualUnfreezing(groups, mode=mode, verbose=0, **kwargs),
            snapshots,
        ],
    )
    return model, groups, start, snapshots.epochs


@pytest.mark.parametrize("mode", ["retrace", "static"])
def test_each_group_starts_training_at_its_stage_inside_one_fit(mode):
    model, groups, start, epochs = train(mode)
    # Stage s (epoch s) trains the top s + 1 groups.
    for k, name in enumerate(reversed(groups.names)):
        for epoch, weights in enumerate(epochs):
            moved = any(
                not np.array_equal(weights[p], start[p]) for p in groups[name]
            )
            assert moved == (epoch >= k), (name, epoch)


def test_both_modes_end_with_the_same_weights():
    retrace = train("retrace")[3][-1]
    static = train("static")[3][-1]
    for path, value in retrace.items():
        np.testing.assert_allclose(static[path], value, atol=1e-4, rtol=0)


def test_step_unit_and_stage_log(capsys):
    model = testing.small_bert_classifier()
    groups = optimizers.layer_groups(model)
    model.compile(
        optimizers.LayerwiseOptimizer(keras.optimizers.SGD(0.1), groups), LOSS
    )
    model.fit(
        X,
        Y,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[callbacks.GradualUnfreezing(groups, every=1, unit="step")],
    )
    out = capsys.readouterr().out
    assert "stage 4/4" in out and "stage 1/4, training ['head']" in out


def test_never_unfreezes_what_a_peft_method_froze():
    base = testing.small_bert_classifier()
    model = peft.apply(base, peft.LoRAConfig())
    kernels = {
        v.path: v.numpy().copy()
        for v in base.weights
        if v.path.endswith("query/kernel")
    }
    _, groups, start, epochs = train("retrace", model=model)
    lora = "transformer_layer_0/self_attention_layer/query/lora_default/lora_b"
    assert not np.array_equal(epochs[-1][lora], start[lora])
    for path, value in kernels.items():
        np.testing.assert_array_equal(epochs[-1][path], value)


def test_batchnorm_option_on_a_conv_model():
    keras.utils.set_random_seed(0)

    def conv_model():
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
        x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))

    images = np.random.default_rng(0).normal(size=(16, 8, 8, 3))
    for train_bn in (False, True):
        model = conv_model()
        groups = optimizers.layer_groups(
            model, {"body": "conv/.*|bn/.*", "head": "out/.*"}
        )
        model.compile(
            optimizers.LayerwiseOptimizer(keras.optimizers.SGD(0.1), groups),
            LOSS,
        )
        bn = model.get_layer("bn")
        before = [w.numpy().copy() for w in bn.weights]
        conv = model.get_layer("conv").kernel.numpy().copy()
        model.fit(
            images,
            Y,
            epochs=1,
            verbose=0,
            callbacks=[
                callbacks.GradualUnfreezing(
                    groups, every=2, train_batchnorm=train_bn, verbose=0
                )
            ],
        )
        np.testing.assert_array_equal(model.get_layer("conv").kernel, conv)
        bn_moved = any(
            not np.array_equal(w.numpy(), b)
            for w, b in zip(bn.weights, before, strict=True)
        )
        assert bn_moved == train_bn


def test_never_unfreezes_a_batchnorm_layer_frozen_before_fit():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    bn = model.get_layer("bn")
    bn.trainable = False
    groups = optimizers.layer_groups(
        model, {"body": "conv/.*|bn/.*", "head": "out/.*"}
    )
    model.compile(
        optimizers.LayerwiseOptimizer(keras.optimizers.SGD(0.1), groups),
        LOSS,
    )
    before = [w.numpy().copy() for w in bn.weights]
    conv = model.get_layer("conv").kernel.numpy().copy()
    images = np.random.default_rng(0).normal(size=(16, 8, 8, 3))
    model.fit(
        images,
        Y,
        epochs=2,
        verbose=0,
        callbacks=[callbacks.GradualUnfreezing(groups, verbose=0)],
    )
    # The body group trained in the second stage, its frozen layer did not.
    assert not np.array_equal(model.get_layer("conv").kernel, conv)
    for w, b in zip(bn.weights, before, strict=True):
        np.testing.assert_array_equal(w.numpy(), b)
    assert not bn.trainable
    assert not any(w.trainable for w in bn.weights)


def test_one_callback_serves_two_models():
    def build():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        x = keras.layers.Dense(5, name="bottom")(inputs)
        return keras.Model(inputs, keras.layers.Dense(2, name="top")(x))

    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    first, second = build(), build()
    groups = optimizers.layer_groups(first)
    unfreezing = callbacks.GradualUnfreezing(groups, verbose=0)
    for model in (first, second):
        model.compile(
            optimizers.LayerwiseOptimizer(keras.optimizers.SGD(0.1), groups),
            LOSS,
        )
        bottom = model.get_layer("bottom").kernel.numpy().copy()
        model.fit(x, Y, epochs=1, verbose=0, callbacks=[unfreezing])
        # The first stage trains the top group only, on either model.
        np.testing.assert_array_equal(model.get_layer("bottom").kernel, bottom)
        assert all(w.trainable for w in model.weights)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    def run(extra, directory):
        model = testing.small_bert_classifier()
        groups = optimizers.layer_groups(model)
        model.compile(
            optimizers.LayerwiseOptimizer(
                keras.optimizers.Adam(1e-2), groups, decay=0.7
            ),
            LOSS,
        )
        model.fit(
            X,
            Y,
            batch_size=8,
            epochs=4,
            shuffle=False,
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(str(directory)),
                callbacks.GradualUnfreezing(groups, verbose=0),
                *extra,
            ],
        )
        return model

    uninterrupted = run([], tmp_path / "a")
    with pytest.raises(RuntimeError, match="interrupted"):
        run([Interrupt()], tmp_path / "b")
    resumed = run([], tmp_path / "b")
    for a, b in zip(uninterrupted.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every": 0}, "every=0"),
        ({"unit": "batch"}, "unit='batch'"),
        ({"mode": "fast"}, "mode='fast'"),
        ({"every": True}, "every=True"),
        ({"train_batchnorm": "yes"}, "train_batchnorm='yes'"),
        ({"verbose": 2}, "verbose=2"),
        (
            {"mode": "static", "train_batchnorm": True},
            "needs `mode='retrace'`",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    groups = optimizers.layer_groups(testing.small_bert_classifier())
    with pytest.raises(ValueError, match=message):
        callbacks.GradualUnfreezing(groups, **kwargs)


def test_needs_a_layerwise_optimizer_over_the_groups():
    model = testing.small_bert_classifier()
    groups = optimizers.layer_groups(model)
    model.compile(keras.optimizers.Adam(), LOSS)
    with pytest.raises(ValueError, match="LayerwiseOptimizer over the same"):
        model.fit(
            X,
            Y,
            epochs=1,
            verbose=0,
            callbacks=[callbacks.GradualUnfreezing(groups)],
        )


def test_optimizer_state_survives_keras_save_load_mid_schedule(tmp_path):
    def three_groups():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        x = keras.layers.Dense(5, name="bottom")(inputs)
        x = keras.layers.Dense(5, name="middle")(x)
        return keras.Model(inputs, keras.layers.Dense(2, name="top")(x))

    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model = three_groups()
    groups = optimizers.layer_groups(model)
    model.compile(
        optimizers.LayerwiseOptimizer(
            keras.optimizers.Adam(1e-2), groups, decay=0.5
        ),
        LOSS,
    )

    def fit(m, start, stop):
        m.fit(
            x,
            Y,
            batch_size=8,
            initial_epoch=start,
            epochs=stop,
            shuffle=False,
            verbose=0,
            callbacks=[callbacks.GradualUnfreezing(groups, verbose=0)],
        )

    fit(model, 0, 2)  # the bottom group is still frozen
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    counts = {
        n: int(o.iterations)
        for n, o in reloaded.optimizer.group_optimizers.items()
    }
    assert counts == {"bottom": 0, "middle": 2, "top": 4}
    fit(model, 2, 3)
    fit(reloaded, 2, 3)
    for a, b in zip(model.weights, reloaded.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_step_unit_refuses_a_first_stage_that_trains_nothing():
    model = testing.small_bert_classifier()
    groups = optimizers.layer_groups(model)
    top = groups.names[-1]
    for weight in model.weights:
        if weight.path in set(groups[top]):
            weight.trainable = False
    flags = {weight.path: weight.trainable for weight in model.weights}
    model.compile(
        optimizers.LayerwiseOptimizer(keras.optimizers.SGD(0.1), groups), LOSS
    )
    with pytest.raises(ValueError, match=f"top group {top!r}"):
        model.fit(
            X,
            Y,
            batch_size=8,
            epochs=1,
            verbose=0,
            callbacks=[callbacks.GradualUnfreezing(groups, unit="step")],
        )
    assert {w.path: w.trainable for w in model.weights} == flags
