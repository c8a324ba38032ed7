import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import optimizers
from kfinetune import testing


def three_layer_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(5, name="bottom")(inputs)
    x = keras.layers.Dense(5, name="middle")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="top")(x))


X = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
Y = (np.arange(16) % 2).astype("int32")
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def gradients(model, variables):
    with tf.GradientTape() as tape:
        loss = LOSS(Y, model(X))
    return tape.gradient(loss, variables)


def test_sgd_update_is_lr_times_multiplier_times_gradient():
    model = three_layer_model()
    groups = optimizers.layer_groups(model)
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.SGD(0.1), groups, decay=0.5
    )
    assert optimizer.multipliers == {"bottom": 0.25, "middle": 0.5, "top": 1.0}
    variables = model.trainable_variables
    grads = gradients(model, variables)
    before = [v.numpy().copy() for v in variables]
    optimizer.apply(grads, variables)
    for v, b, g in zip(variables, before, grads, strict=True):
        multiplier = optimizer.multipliers[groups.group_of(v.path)]
        np.testing.assert_allclose(
            v.numpy(), b - 0.1 * multiplier * g.numpy(), rtol=1e-6, atol=1e-7
        )


def test_slice_gives_geometric_rates_from_bottom_to_top():
    groups = optimizers.layer_groups(three_layer_model())
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.SGD(), groups, lr=slice(1e-4, 1e-2)
    )
    rates = [float(optimizer.group_learning_rate(n)) for n in groups.names]
    np.testing.assert_allclose(rates, [1e-4, 1e-3, 1e-2], rtol=1e-5)


def test_a_group_unfrozen_late_takes_a_fresh_optimizers_first_step():
    model = three_layer_model()
    groups = optimizers.layer_groups(model)
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.Adam(1e-2), groups
    )
    optimizer.build(model.trainable_variables)
    top = [v for v in model.trainable_variables if v.path.startswith("top")]
    for _ in range(3):
        optimizer.apply(gradients(model, top), top)
    bottom = [
        v for v in model.trainable_variables if v.path.startswith("bottom")
    ]
    grads = gradients(model, bottom)
    copies = [keras.Variable(v.numpy()) for v in bottom]
    fresh = keras.optimizers.Adam(1e-2)
    fresh.apply(grads, copies)
    optimizer.apply(grads, bottom)
    for v, c in zip(bottom, copies, strict=True):
        np.testing.assert_allclose(v.numpy(), c.numpy(), rtol=1e-6)
    counts = {
        n: int(o.iterations) for n, o in optimizer.group_optimizers.items()
    }
    assert counts == {"bottom": 1, "middle": 0, "top": 3}


def test_groups_without_gradients_stay_bitwise_unchanged_with_weight_decay():
    model = three_layer_model()
    groups = optimizers.layer_groups(model)
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(1e-2, weight_decay=0.5),
        groups,
        weight_decay={"middle": 0.0},
    )
    model.get_layer("bottom").trainable = False
    frozen = [v.numpy().copy() for v in model.get_layer("bottom").weights]
    model.compile(optimizer, LOSS)
    model.fit(X, Y, epochs=2, verbose=0)
    for v, before in zip(
        model.get_layer("bottom").weights, frozen, strict=True
    ):
        np.testing.assert_array_equal(v.numpy(), before)
    assert optimizer.group_optimizers["middle"].weight_decay == 0.0
    # Frozen weights are optimizer state too: unfreezing needs no rebuild.
    model.get_layer("bottom").trainable = True
    model.compile(optimizer, LOSS)
    model.fit(X, Y, epochs=1, verbose=0)
    assert not np.array_equal(
        model.get_layer("bottom").kernel.numpy(), frozen[0]
    )


def test_reduce_lr_on_plateau_scales_every_group_also_with_a_schedule():
    model = three_layer_model()
    groups = optimizers.layer_groups(model)
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, 100)
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.Adam(schedule), groups, decay=0.5
    )
    model.compile(optimizer, LOSS)
    model.fit(X, Y, epochs=1, verbose=0)
    before = {n: float(optimizer.group_learning_rate(n)) for n in groups.names}
    optimizer.learning_rate = float(optimizer.learning_rate) * 0.1
    after = {n: float(optimizer.group_learning_rate(n)) for n in groups.names}
    for name in groups.names:
        assert after[name] == pytest.approx(before[name] * 0.1, rel=1e-5)
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", patience=0, factor=0.5, min_delta=10.0
    )
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[plateau])
    assert float(optimizer.scale) < 0.1


def test_config_round_trip_and_keras_save_keep_per_group_state(tmp_path):
    model = three_layer_model()
    groups = optimizers.layer_groups(model)
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(1e-2),
        groups,
        decay=0.8,
        optimizers={"bottom": keras.optimizers.SGD(1e-3)},
        weight_decay={"top": 0.0},
    )
    revived = testing.assert_config_round_trip(optimizer)
    assert revived.multipliers == optimizer.multipliers
    model.compile(optimizer, LOSS)
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    counts = {
        n: int(o.iterations)
        for n, o in reloaded.optimizer.group_optimizers.items()
    }
    assert counts == {"bottom": 4, "middle": 4, "top": 4}
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    reloaded.fit(X, Y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.weights, reloaded.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_keras_hub_model_under_xla_and_loss_scaling():
    model = testing.small_bert_classifier()
    groups = optimizers.layer_groups(model)
    optimizer = keras.optimizers.LossScaleOptimizer(
        optimizers.LayerwiseOptimizer(
            keras.optimizers.AdamW(1e-3), groups, decay=0.8
        )
    )
    model.compile(optimizer, LOSS, jit_compile=True)
    x = testing.small_bert_inputs(batch_size=8)
    history = model.fit(x, Y[:8], epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_mirrored_strategy_matches_one_device():
    x = testing.small_bert_inputs(batch_size=8)

    def run(strategy):
        with strategy.scope():
            model = testing.small_bert_classifier()
            optimizer = optimizers.LayerwiseOptimizer(
                keras.optimizers.SGD(0.1),
                optimizers.layer_groups(model),
                decay=0.5,
            )
            model.compile(optimizer, LOSS)
        history = model.fit(x, Y[:8], batch_size=8, epochs=3, verbose=0)
        return history.history["loss"]

    single = run(tf.distribute.get_strategy())
    mirrored = run(testing.two_cpu_strategy())
    np.testing.assert_allclose(mirrored, single, rtol=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"decay": 0}, "decay=0"),
        ({"decay": 1.5}, "decay=1.5"),
        ({"lr": slice(1e-2, 1e-4)}, r"lr=slice\(0.01, 0.0001\)"),
        ({"lr": (1e-4, 1e-2)}, "must be a slice"),
        ({"decay": 0.5, "lr": slice(1e-4, 1e-2)}, "not both"),
        ({"optimizers": {"nope": keras.optimizers.SGD()}}, "nope"),
        ({"weight_decay": {"nope": 0.0}}, "nope"),
    ],
)
def test_bad_arguments(kwargs, message):
    groups = optimizers.layer_groups(three_layer_model())
    with pytest.raises(ValueError, match=message):
        optimizers.LayerwiseOptimizer(
            keras.optimizers.SGD(0.1), groups, **kwargs
        )


def test_a_schedule_and_a_slice_are_refused_together():
    groups = optimizers.layer_groups(three_layer_model())
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, 100)
    with pytest.raises(ValueError, match="one or the other"):
        optimizers.LayerwiseOptimizer(
            keras.optimizers.Adam(schedule), groups, lr=slice(1e-4, 1e-2)
        )


def test_weights_outside_the_groups_are_refused():
    model = three_layer_model()
    groups = optimizers.layer_groups(
        model, {"top": "top/.*", "rest": "middle/.*|bottom/.*"}
    )
    other = three_layer_model()
    optimizer = optimizers.LayerwiseOptimizer(keras.optimizers.SGD(), groups)
    extra = keras.Variable(np.zeros(3), name="stray")
    with pytest.raises(ValueError, match="in no group"):
        optimizer.build([extra])
    assert other is not None


def test_lora_with_a_higher_learning_rate_for_the_head():
    from kfinetune import peft

    base = testing.small_bert_classifier()
    model = peft.apply(base, peft.LoRAConfig())
    groups = optimizers.layer_groups(
        model, {"lora": ".*/lora_default/.*", "head": "logits/.*"}
    )
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(1e-3),
        groups,
        optimizers={"head": keras.optimizers.AdamW(1e-2)},
    )
    model.compile(optimizer, LOSS)
    x = testing.small_bert_inputs(batch_size=8)
    model.fit(x, Y[:8], epochs=2, verbose=0)
    assert float(optimizer.group_learning_rate("head")) == pytest.approx(1e-2)
    assert float(optimizer.group_learning_rate("lora")) == pytest.approx(1e-3)
    # Optimizer state only for what trains: LoRA factors and the head.
    lora = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    state = sum(
        int(np.prod(v.shape))
        for o in optimizer.group_optimizers.values()
        for v in o.variables
        if len(v.shape)
    )
    assert state == 2 * lora


def test_adapters_with_layerwise_decay():
    from kfinetune import peft

    model = peft.apply(testing.small_bert_classifier(), peft.AdapterConfig())
    groups = optimizers.layer_groups(model)
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(1e-3), groups, decay=0.5
    )
    model.compile(optimizer, LOSS)
    x = testing.small_bert_inputs(batch_size=8)
    history = model.fit(x, Y[:8], epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    counts = {
        n: int(o.iterations) for n, o in optimizer.group_optimizers.items()
    }
    # Embeddings hold no adapter weights: that group never steps.
    assert counts == {"embeddings": 0, "block_0": 3, "block_1": 3, "head": 3}
