import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import callbacks
from kfinetune import compat
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
    # Built: gradients alone, in the order of the weights it was built over.
    optimizer.apply(grads)
    for v, b, g in zip(variables, before, grads, strict=True):
        multiplier = optimizer.multipliers[groups.group_of(v.path)]
        np.testing.assert_allclose(
            v.numpy(), b - 0.2 * multiplier * g.numpy(), rtol=1e-5, atol=1e-6
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
    optimizer.exclude_from_weight_decay(var_names=["bias"])
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
    middle = reloaded.get_layer("middle")
    copy = reloaded.optimizer.group_optimizers["middle"]
    assert compat.uses_weight_decay(copy, middle.kernel)
    assert not compat.uses_weight_decay(copy, middle.bias)
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    reloaded.fit(X, Y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.weights, reloaded.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


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
    optimizer = optimizers.LayerwiseOptimizer(keras.optimizers.SGD(), groups)
    extra = keras.Variable(np.zeros(3), name="stray")
    with pytest.raises(ValueError, match="in no group"):
        optimizer.build([extra])
    optimizer.build(model.trainable_variables)
    # Another model's weights have the same paths, but are not the weights
    # the groups were built over: refused, not stepped as if they were.
    other = three_layer_model()
    before = [v.numpy().copy() for v in model.trainable_variables]
    with pytest.raises(ValueError, match="'bottom/kernel': it is in no group"):
        optimizer.apply(
            gradients(other, other.trainable_variables),
            other.trainable_variables,
        )
    for v, b in zip(model.trainable_variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)
    assert all(
        int(o.iterations) == 0 for o in optimizer.group_optimizers.values()
    )


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


# Gradient settings: compared with a plain Keras optimizer with the same
# settings on a one-block small BERT (tracing the train function is most of
# a test's time), over its three groups at the same rate (no decay).

BERT_X = testing.small_bert_inputs(batch_size=8)
BERT_Y = Y[:8]
SPARSE_EMBEDDINGS = ("token_embedding", "segment_embedding")


def schedule():
    return keras.optimizers.schedules.ExponentialDecay(1e-2, 3, 0.5)


def small_bert():
    return testing.small_bert_classifier(num_layers=1)


def bert_weights(
    make_optimizer, strategy=None, jit_compile=False, frozen=(), prebuilt=True
):
    """Trains `small_bert()` for 6 batches of 4 and returns its weights
    (and the optimizer).

    By default the optimizer is built before `fit` (as Keras does under a
    distribution strategy): these tests compare what the steps compute.
    `test_settings_also_match_when_built_inside_the_first_trace` and the
    tests above cover the optimizer built inside the train function's first
    trace (`prebuilt=False`), as Keras does without a strategy.
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = small_bert()
        for name in frozen:
            model.backbone.get_layer(name).trainable = False
        compile_model = (
            testing.compile_and_build if prebuilt else type(model).compile
        )
        compile_model(
            model,
            optimizer=make_optimizer(model),
            loss=LOSS,
            jit_compile=jit_compile,
        )
    model.fit(BERT_X, BERT_Y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    return [v.numpy() for v in model.weights], model.optimizer


def assert_weights_close(actual, expected, atol=2e-5):
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, atol=atol, rtol=0)


def layerwise(inner, **kwargs):
    """`make_optimizer` for `bert_weights`: a LayerwiseOptimizer over the
    model's default groups."""
    return lambda model: optimizers.LayerwiseOptimizer(
        inner(), optimizers.layer_groups(model), **kwargs
    )


def inner_optimizer(name, **settings):
    """AdamW, or SGD where the settings clip the gradients.

    SGD's step is proportional to the gradient, so two runs whose
    gradients round differently stay within rounding of each other. Adam's
    step is about the learning rate whatever a small gradient's size: with
    gradients clipped near zero, rounding, which differs between CPUs,
    decides the sign of many steps (seen on another machine: weights
    6.4e-5 apart with `clipnorm=0.01`, against a tolerance of 2e-5).
    """
    if name == "sgd":
        rate = keras.optimizers.schedules.ExponentialDecay(0.1, 3, 0.5)
        return keras.optimizers.SGD(rate, **settings)
    return keras.optimizers.AdamW(schedule(), **settings)


@functools.cache
def keras_weights(name, settings):
    weights, _ = bert_weights(
        lambda model: inner_optimizer(name, **dict(settings))
    )
    return weights


SETTINGS = [
    ("sgd", {"global_clipnorm": 0.05}),
    ("sgd", {"clipnorm": 0.01}),
    ("sgd", {"clipvalue": 0.001}),
    (
        "adamw",
        {"use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 3},
    ),
    ("sgd", {"gradient_accumulation_steps": 2, "global_clipnorm": 0.05}),
    (
        "adamw",
        {
            "gradient_accumulation_steps": 3,
            "use_ema": True,
            "ema_momentum": 0.5,
        },
    ),
]


@pytest.mark.parametrize("place", ["layerwise", "inner"])
@pytest.mark.parametrize(
    "name, settings",
    SETTINGS,
    ids=["-".join([n, *map(str, s.values())]) for n, s in SETTINGS],
)
def test_gradient_settings_match_a_plain_keras_optimizer(name, settings, place):
    expected = keras_weights(name, tuple(settings.items()))
    # The settings change the result here (clipping happens, ...).
    unset = keras_weights(name, ())
    assert any(
        not np.allclose(e, u, atol=1e-3)
        for e, u in zip(expected, unset, strict=True)
    )
    if place == "layerwise":
        make = layerwise(lambda: inner_optimizer(name), **settings)
    else:
        make = layerwise(lambda: inner_optimizer(name, **settings))
    actual, optimizer = bert_weights(make)
    assert_weights_close(actual, expected)
    steps = 6 // settings.get("gradient_accumulation_steps", 1)
    assert int(optimizer.iterations) == steps
    assert int(compat.apply_counter(optimizer)) == 6
    counts = {int(o.iterations) for o in optimizer.group_optimizers.values()}
    assert counts == {steps}


def test_settings_also_match_when_built_inside_the_first_trace():
    settings = {
        "gradient_accumulation_steps": 2,
        "global_clipnorm": 0.05,
        "use_ema": True,
        "ema_momentum": 0.5,
    }
    make = layerwise(lambda: inner_optimizer("sgd"), **settings)
    built_first, _ = bert_weights(make)
    built_in_trace, optimizer = bert_weights(make, prebuilt=False)
    assert_weights_close(built_in_trace, built_first, atol=1e-6)
    assert int(compat.apply_counter(optimizer)) == 6
    counts = {int(o.iterations) for o in optimizer.group_optimizers.values()}
    assert counts == {3}


@pytest.mark.parametrize("mode", ["retrace", "static"])
@pytest.mark.parametrize("place", ["layerwise", "inner"])
def test_ema_averages_every_weight_also_of_groups_not_yet_unfrozen(place, mode):
    model = three_layer_model()
    groups = optimizers.layer_groups(model)
    ema = {"use_ema": True, "ema_momentum": 0.5}
    if place == "layerwise":
        optimizer = optimizers.LayerwiseOptimizer(
            keras.optimizers.AdamW(1e-2), groups, **ema
        )
    else:
        optimizer = optimizers.LayerwiseOptimizer(
            keras.optimizers.AdamW(1e-2, **ema), groups
        )
    model.compile(optimizer, LOSS)
    start = {v.path: v.numpy().copy() for v in model.weights}
    ends = {}

    class LastWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.update({v.path: v.numpy().copy() for v in model.weights})

    # Two stages: the bottom group never trains.
    model.fit(
        X,
        Y,
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[
            callbacks.GradualUnfreezing(groups, mode=mode, verbose=0),
            LastWeights(),
        ],
    )
    for v in model.weights:
        if v.path.startswith("bottom"):
            np.testing.assert_allclose(v.numpy(), start[v.path], rtol=1e-6)
        else:
            # The end of fit swapped the averages in.
            assert not np.allclose(v.numpy(), ends[v.path], atol=1e-6)


def test_loss_scale_factor_scales_the_loss_and_divides_the_gradients():
    sgd = keras.optimizers.SGD
    # Keras 3.15's own `apply` cannot divide the sparse gradients of the
    # embedding tables: compare with plain Keras with those frozen.
    expected, _ = bert_weights(
        lambda model: sgd(0.1, loss_scale_factor=128.0),
        frozen=SPARSE_EMBEDDINGS,
    )
    for inner, kwargs in (
        ({}, {"loss_scale_factor": 128.0}),
        ({"loss_scale_factor": 128.0}, {}),
    ):
        actual, optimizer = bert_weights(
            layerwise(lambda inner=inner: sgd(0.1, **inner), **kwargs),
            frozen=SPARSE_EMBEDDINGS,
        )
        assert_weights_close(actual, expected, atol=1e-6)
        assert float(optimizer.scale_loss(2.0)) == 256.0
    # With the sparse gradients: scaling by a power of two is exact, so the
    # weights are those of training without it.
    unscaled, _ = bert_weights(lambda model: sgd(0.1))
    scaled, _ = bert_weights(
        layerwise(lambda: sgd(0.1), loss_scale_factor=128.0)
    )
    assert_weights_close(scaled, unscaled, atol=1e-6)


def test_xla_and_a_loss_scale_optimizer_match_keras_with_the_settings():
    settings = {
        "global_clipnorm": 0.05,
        "gradient_accumulation_steps": 2,
        "use_ema": True,
        "ema_momentum": 0.5,
    }
    # SGD with clipped gradients: see `inner_optimizer`.
    expected, _ = bert_weights(
        lambda model: keras.optimizers.LossScaleOptimizer(
            inner_optimizer("sgd", **settings)
        ),
        jit_compile=True,
    )
    actual, _ = bert_weights(
        lambda model: keras.optimizers.LossScaleOptimizer(
            layerwise(lambda: inner_optimizer("sgd"), **settings)(model)
        ),
        jit_compile=True,
    )
    assert_weights_close(actual, expected)


def test_mixed_bfloat16_matches_keras_with_the_settings():
    settings = {"global_clipnorm": 0.05, "gradient_accumulation_steps": 2}
    # SGD with clipped gradients: see `inner_optimizer`.
    with testing.dtype_policy("mixed_bfloat16"):
        expected, _ = bert_weights(
            lambda model: inner_optimizer("sgd", **settings)
        )
        actual, _ = bert_weights(
            layerwise(lambda: inner_optimizer("sgd"), **settings)
        )
    # The weights stay float32: the same steps give the same weights.
    assert_weights_close(actual, expected)


def test_mirrored_accumulation_and_static_unfreezing_match_one_device():
    def run(strategy):
        with strategy.scope():
            model = testing.small_bert_classifier()
            groups = optimizers.layer_groups(model)
            optimizer = optimizers.LayerwiseOptimizer(
                keras.optimizers.SGD(0.1),
                groups,
                decay=0.5,
                gradient_accumulation_steps=2,
            )
            model.compile(optimizer, LOSS)
        unfreezing = callbacks.GradualUnfreezing(
            groups, mode="static", verbose=0
        )
        model.fit(
            BERT_X,
            BERT_Y,
            batch_size=4,
            epochs=4,
            shuffle=False,
            verbose=0,
            callbacks=[unfreezing],
        )
        counts = {
            n: int(o.iterations.numpy())
            for n, o in optimizer.group_optimizers.items()
        }
        return [v.numpy() for v in model.weights], counts

    single, single_counts = run(tf.distribute.get_strategy())
    mirrored, mirrored_counts = run(testing.two_cpu_strategy())
    # Stage s trains the top s + 1 groups for 2 batches: one step each.
    expected = {"embeddings": 1, "block_0": 2, "block_1": 3, "head": 4}
    assert single_counts == mirrored_counts == expected
    assert_weights_close(mirrored, single, atol=1e-5)


def test_mirrored_clipping_matches_keras():
    # Keras clips each replica's gradients before they are summed.
    strategy = testing.two_cpu_strategy()
    expected, _ = bert_weights(
        lambda model: keras.optimizers.SGD(0.1, global_clipnorm=0.5),
        strategy=strategy,
    )
    actual, _ = bert_weights(
        layerwise(lambda: keras.optimizers.SGD(0.1), global_clipnorm=0.5),
        strategy=strategy,
    )
    assert_weights_close(actual, expected, atol=1e-6)


def test_the_group_copies_run_without_what_spans_every_group():
    groups = optimizers.layer_groups(three_layer_model())
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(
            1e-3,
            global_clipnorm=1.0,
            loss_scale_factor=4.0,
            gradient_accumulation_steps=2,
            use_ema=True,
            ema_momentum=0.9,
        ),
        groups,
    )
    assert optimizer.global_clipnorm == 1.0
    assert optimizer.loss_scale_factor == 4.0
    assert optimizer.gradient_accumulation_steps == 2
    assert optimizer.use_ema and optimizer.ema_momentum == 0.9
    for copy in optimizer.group_optimizers.values():
        assert copy.global_clipnorm is None
        assert copy.loss_scale_factor is None
        assert copy.gradient_accumulation_steps is None
        assert not copy.use_ema
    # Per-weight clipping stays with each group's optimizer.
    per_weight = optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(1e-3, clipnorm=0.5),
        groups,
        optimizers={"top": keras.optimizers.SGD(clipvalue=0.1)},
    )
    assert per_weight.clipnorm is None and per_weight.clipvalue is None
    clips = {
        n: (o.clipnorm, o.clipvalue)
        for n, o in per_weight.group_optimizers.items()
    }
    assert clips == {
        "bottom": (0.5, None),
        "middle": (0.5, None),
        "top": (None, 0.1),
    }


@pytest.mark.parametrize(
    "inner, kwargs, message",
    [
        (
            {"global_clipnorm": 1.0},
            {"global_clipnorm": 2.0},
            r"global_clipnorm=2.0, optimizer.global_clipnorm=1.0",
        ),
        (
            {"use_ema": True, "ema_momentum": 0.9},
            {"use_ema": True},
            r"ema_momentum=0.99.*'ema_momentum': 0.9",
        ),
        ({}, {"clipnorm": 1.0, "clipvalue": 1.0}, "Only one of `clipnorm`"),
        (
            {"global_clipnorm": 1.0},
            {"clipvalue": 1.0},
            r"Only one of .*clipvalue=1.0, global_clipnorm=1.0",
        ),
        (
            {"clipnorm": 1.0},
            {"global_clipnorm": 1.0},
            r"clipped twice.*optimizer.clipnorm=1.0",
        ),
        ({}, {"gradient_accumulation_steps": 1}, "steps=1"),
        ({}, {"use_ema": True, "ema_momentum": 2.0}, "ema_momentum=2.0"),
    ],
)
def test_gradient_settings_set_twice_or_invalid_are_refused(
    inner, kwargs, message
):
    groups = optimizers.layer_groups(three_layer_model())
    with pytest.raises(ValueError, match=message):
        optimizers.LayerwiseOptimizer(
            keras.optimizers.SGD(0.1, **inner), groups, **kwargs
        )


@pytest.mark.parametrize(
    "setting",
    [
        {"global_clipnorm": 1.0},
        {"loss_scale_factor": 2.0},
        {"gradient_accumulation_steps": 2},
        {"use_ema": True},
    ],
)
def test_a_groups_own_optimizer_cannot_set_what_spans_every_group(setting):
    groups = optimizers.layer_groups(three_layer_model())
    ((key, value),) = setting.items()
    with pytest.raises(
        ValueError, match=rf"Received: optimizers\['top'\]\.{key}={value}"
    ):
        optimizers.LayerwiseOptimizer(
            keras.optimizers.SGD(0.1),
            groups,
            optimizers={"top": keras.optimizers.SGD(0.1, **setting)},
        )


def test_a_groups_own_optimizer_must_be_an_optimizer_clipping_once():
    groups = optimizers.layer_groups(three_layer_model())
    with pytest.raises(ValueError, match=r"optimizers\['top'\]='sgd'"):
        optimizers.LayerwiseOptimizer(
            keras.optimizers.SGD(), groups, optimizers={"top": "sgd"}
        )
    with pytest.raises(
        ValueError, match=r"clipped twice.*optimizers\['top'\].clipnorm=1.0"
    ):
        optimizers.LayerwiseOptimizer(
            keras.optimizers.SGD(),
            groups,
            clipvalue=0.5,
            optimizers={"top": keras.optimizers.SGD(clipnorm=1.0)},
        )


# Weight-decay exclusions: lost in the group copies (rebuilt from configs,
# which do not hold them) unless carried over.

EXCLUDED = ["bias", "gamma", "beta"]


def adamw_excluding(names):
    # Learning rate 1e-3 and weight decay 100: a decayed weight shrinks by
    # 10 % a step, while an Adam step moves it by about 1e-3.
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=100.0)
    optimizer.exclude_from_weight_decay(var_names=names)
    return optimizer


@functools.cache
def keras_adamw_excluding_weights():
    return bert_weights(lambda model: adamw_excluding(EXCLUDED))[0]


@pytest.mark.parametrize("place", ["layerwise", "inner"])
def test_exclusions_from_weight_decay_match_a_plain_keras_optimizer(place):
    if place == "inner":
        make = layerwise(lambda: adamw_excluding(EXCLUDED))
    else:

        def make(model):
            optimizer = layerwise(lambda: adamw_excluding(None))(model)
            optimizer.exclude_from_weight_decay(var_names=EXCLUDED)
            return optimizer

    actual, _ = bert_weights(make)
    assert_weights_close(actual, keras_adamw_excluding_weights())
    for variable, value in zip(small_bert().weights, actual, strict=True):
        start = variable.numpy()
        if variable.name in EXCLUDED:
            # Six Adam steps, no decay.
            assert np.abs(value - start).max() < 0.02, variable.path
        else:
            shrunk = np.linalg.norm(value) / np.linalg.norm(start)
            assert shrunk < 0.6, variable.path


def decayed(optimizer, model):
    """The paths of the weights that one step on zero gradients changes:
    only weight decay moves them."""
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    optimizer.apply([keras.ops.zeros_like(v) for v in variables], variables)
    return {
        v.path
        for v, b in zip(variables, before, strict=True)
        if not np.array_equal(v.numpy(), b)
    }


def model_with_nonzero_biases():
    model = three_layer_model()
    for layer in model.layers[1:]:
        layer.bias.assign(np.ones(layer.bias.shape))
    return model


def test_exclusions_of_inner_own_and_layerwise_optimizers_add_up():
    model = model_with_nonzero_biases()
    inner = keras.optimizers.AdamW(0.1, weight_decay=0.5)
    inner.exclude_from_weight_decay(var_names=["bias"])
    own = keras.optimizers.AdamW(0.1, weight_decay=0.5)
    own.exclude_from_weight_decay(var_list=[model.get_layer("top").kernel])
    optimizer = optimizers.LayerwiseOptimizer(
        inner, optimizers.layer_groups(model), optimizers={"top": own}
    )
    optimizer.exclude_from_weight_decay(
        var_list=[model.get_layer("middle").kernel]
    )
    # The inner optimizer's exclusions are those of its copies only.
    assert decayed(optimizer, model) == {"bottom/kernel", "top/bias"}
    # Later, they would not reach the built group optimizers: refused.
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_names=["kernel"])
    inner.exclude_from_weight_decay(var_names=["kernel"])
    before = [v.numpy().copy() for v in model.weights]
    with pytest.raises(ValueError, match="changed after.*group='bottom'"):
        decayed(optimizer, model)
    for v, b in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)


def test_exclusions_by_name_survive_the_config_and_bad_ones_are_refused():
    model = model_with_nonzero_biases()
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(0.1, weight_decay=0.5),
        optimizers.layer_groups(model),
    )
    with pytest.raises(ValueError, match="var_names='bias'"):
        optimizer.exclude_from_weight_decay(var_names="bias")
    with pytest.raises(ValueError, match=r"var_list=\['bias'\]"):
        optimizer.exclude_from_weight_decay(var_list=["bias"])
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    revived = testing.assert_config_round_trip(optimizer)
    kernels = {"bottom/kernel", "middle/kernel", "top/kernel"}
    assert decayed(revived, model) == kernels


def float8_model():
    model = three_layer_model()
    model.quantize("float8")
    return model


def test_float8_scales_and_factors_are_neither_scaled_nor_clipped():
    def run(make_optimizer):
        model = float8_model()
        model.compile(make_optimizer(model), LOSS)
        model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return [v.numpy() for v in model.weights]

    settings = {"loss_scale_factor": 4.0, "global_clipnorm": 0.1}
    expected = run(lambda model: keras.optimizers.SGD(0.1, **settings))
    actual = run(
        lambda model: optimizers.LayerwiseOptimizer(
            keras.optimizers.SGD(0.1),
            optimizers.layer_groups(model),
            **settings,
        )
    )
    assert_weights_close(actual, expected, atol=1e-6)


def test_float8_with_gradient_accumulation_is_refused():
    model = float8_model()
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.SGD(0.1),
        optimizers.layer_groups(model),
        gradient_accumulation_steps=2,
    )
    variables = len(optimizer.variables)
    with pytest.raises(ValueError, match="float8.*steps=2"):
        optimizer.build(model.trainable_variables)
    assert not optimizer.built and len(optimizer.variables) == variables


@pytest.mark.parametrize("place", ["layerwise", "inner"])
def test_config_round_trip_keeps_the_gradient_settings(place):
    settings = {
        "global_clipnorm": 1.0,
        "use_ema": True,
        "ema_momentum": 0.9,
        "ema_overwrite_frequency": 5,
        "loss_scale_factor": 8.0,
        "gradient_accumulation_steps": 4,
    }
    groups = optimizers.layer_groups(three_layer_model())
    if place == "layerwise":
        optimizer = optimizers.LayerwiseOptimizer(
            keras.optimizers.AdamW(1e-3), groups, **settings
        )
    else:
        optimizer = optimizers.LayerwiseOptimizer(
            keras.optimizers.AdamW(1e-3, **settings), groups
        )
    revived = testing.assert_config_round_trip(optimizer)
    for key, value in settings.items():
        assert getattr(revived, key) == value, key


def test_keras_save_mid_accumulation_resumes_exactly(tmp_path):
    model = three_layer_model()
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(1e-2),
        optimizers.layer_groups(model),
        decay=0.5,
        global_clipnorm=0.1,
        use_ema=True,
        ema_momentum=0.5,
        gradient_accumulation_steps=3,
    )
    model.compile(optimizer, LOSS)
    # 4 batches: one step and one batch accumulated.
    model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert int(optimizer.iterations) == 1
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert int(compat.apply_counter(reloaded.optimizer)) == 4
    model.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    reloaded.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.weights, reloaded.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
