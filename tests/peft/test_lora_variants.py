"""LoRA's variants: rsLoRA, DoRA, PiSSA / OLoRA / Gaussian init, LoRA+.

Each test asserts the mathematics (scales, DoRA's merged kernel, the
outputs at step 0, LoRA+'s step ratio) and the round trips the variants
must survive, on a one-block random BERT; and that they train alike with
XLA and under `MirroredStrategy` (measured: the losses within 9e-8
relative and the trained weights within 8.3e-7 of one eager device with
XLA, 1.2e-7 mirrored on two CPUs)."""

import contextlib

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import layers
from kfinetune import optimizers
from kfinetune import peft
from kfinetune import testing
from kfinetune.peft import injected

ALL = [peft.ALL_LINEAR]


@pytest.fixture(scope="module")
def x():
    return testing.small_bert_inputs(batch_size=4, sequence_length=8)


def bert():
    return testing.small_bert_classifier(num_layers=1)


def loras(model, name=None):
    return [
        w
        for w in injected.wrappers(model.base, name)
        if isinstance(w, layers.LoRA)
    ]


def perturb(model, seed=0):
    """Moves B (and DoRA's magnitudes) off their start, as training would."""
    rng = np.random.default_rng(seed)
    for wrapper in loras(model):
        wrapper.lora_b.assign(rng.normal(0, 0.3, wrapper.lora_b.shape))
        if wrapper.use_dora:
            m = wrapper.lora_magnitude
            m.assign(m.numpy() * rng.uniform(0.8, 1.2, m.shape))
    peft.reset_compiled_functions(model)


def as_matrix(wrapper, kernel):
    """A kernel as PyTorch's `(out, in)` weight would be, transposed:
    `(d_in, d_out)`, input axes first."""
    matrix, _ = wrapper._kernel_matrix(kernel)
    return matrix


def test_rslora_scales_by_alpha_over_sqrt_rank():
    lora = layers.LoRA(keras.layers.Dense(8), rank=4, alpha=6, use_rslora=True)
    assert lora.scale == 3.0
    assert layers.LoRA(keras.layers.Dense(8), rank=4, alpha=6).scale == 1.5
    config = peft.LoRAConfig(rank=16, alpha=8, use_rslora=True)
    assert config.scale == 2.0
    # The update is scaled by it.
    dense = keras.layers.Dense(8)
    dense.build((None, 8))
    lora.build((None, 8))
    lora.lora_b.assign(np.ones(lora.lora_b.shape))
    rows = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    kernel, a = lora.layer.kernel.numpy(), lora.lora_a.numpy()
    expected = rows @ kernel + 3.0 * rows @ a @ np.ones((4, 8))
    np.testing.assert_allclose(lora(rows), expected, atol=1e-5)


def dora_layer(kind):
    keras.utils.set_random_seed(0)
    if kind == "dense":
        base = keras.layers.Dense(6, activation="gelu")
        shape = (None, 8)
    elif kind == "query":
        # keras-hub's query: (hidden, heads, head_dim).
        base = keras.layers.EinsumDense(
            "abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de"
        )
        shape = (None, None, 8)
    else:
        # keras-hub's attention output: (heads, head_dim, hidden).
        base = keras.layers.EinsumDense(
            "abcd,cde->abe", output_shape=(None, 8), bias_axes="e"
        )
        shape = (None, None, 2, 4)
    base.build(shape)
    # A batch of 2 × 5 tokens (or 4 rows for the Dense).
    size = (4, 8) if kind == "dense" else (2, 5, *shape[2:])
    rows = np.random.default_rng(1).normal(size=size).astype("float32")
    lora = layers.LoRA(base, rank=2, alpha=4, use_dora=True, use_rslora=True)
    lora.build(shape)
    return lora, rows


@pytest.mark.parametrize("kind", ["dense", "query", "attention_output"])
def test_dora_computes_and_merges_the_formula(kind):
    lora, rows = dora_layer(kind)
    base = lora.layer
    kernel = base.kernel.numpy().copy()
    w = as_matrix(lora, kernel)
    # The magnitude starts at the column norms of W (one per output unit:
    # the norm of a row of PyTorch's (out, in) weight).
    np.testing.assert_allclose(
        np.reshape(lora.lora_magnitude.numpy(), -1),
        np.linalg.norm(w, axis=0),
        rtol=1e-6,
    )
    before = np.asarray(lora(rows))
    np.testing.assert_allclose(before, np.asarray(base(rows)), atol=1e-5)
    rng = np.random.default_rng(2)
    lora.lora_b.assign(rng.normal(0, 0.5, lora.lora_b.shape))
    m = lora.lora_magnitude.numpy()
    m = m * rng.uniform(0.5, 1.5, m.shape)
    lora.lora_magnitude.assign(m)
    s = 4 / np.sqrt(2)
    a = np.reshape(lora.lora_a.numpy(), (w.shape[0], 2))
    b = np.reshape(lora.lora_b.numpy(), (2, w.shape[1]))
    adapted = w + s * a @ b
    expected_matrix = (
        np.reshape(m, -1) * adapted / np.linalg.norm(adapted, axis=0)
    )
    out = np.asarray(lora(rows))
    lora.merge()
    np.testing.assert_allclose(
        as_matrix(lora, base.kernel), expected_matrix, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(np.asarray(lora(rows)), out, atol=1e-5)
    lora.unmerge()
    np.testing.assert_allclose(base.kernel.numpy(), kernel, atol=1e-6)
    np.testing.assert_allclose(np.asarray(lora(rows)), out, atol=1e-5)
    # The norm is a constant for the gradient, as in PEFT: the gradient of
    # the output's sum with respect to m is the direction's output.
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(lora.pre_activation(tf.constant(rows)) * 1.0)
    grad = tape.gradient(total, lora.lora_magnitude.value)
    direction = adapted / np.linalg.norm(adapted, axis=0)
    flat = np.reshape(rows, (-1, w.shape[0]))
    np.testing.assert_allclose(
        np.reshape(grad, -1), (flat @ direction).sum(0), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_pissa_and_olora_keep_the_outputs_at_step_zero(init, x):
    base = bert()
    kernels = {v.path: v.numpy().copy() for v in base.weights}
    expected = testing.predict(base, x)
    model = peft.apply(
        base, peft.LoRAConfig(rank=4, alpha=8, init=init, targets=ALL)
    )
    testing.assert_outputs_close(testing.predict(model, x), expected, atol=1e-5)
    wrapper = loras(model)[0]
    original = as_matrix(wrapper, kernels[wrapper.kernel.path])
    principal = as_matrix(wrapper, wrapper.delta())
    residual = as_matrix(wrapper, wrapper.kernel)
    np.testing.assert_allclose(residual + principal, original, atol=1e-5)
    if init == "pissa":
        # s·A·B is the part along the top-4 singular vectors.
        u, sv, vh = np.linalg.svd(original, full_matrices=False)
        np.testing.assert_allclose(
            principal, (u[:, :4] * sv[:4]) @ vh[:4], atol=1e-5
        )
    else:
        # OLoRA: B's rows orthonormal (PEFT's Q), A from R.
        b = np.reshape(wrapper.lora_b.numpy(), (4, -1))
        np.testing.assert_allclose(b @ b.T, np.eye(4), atol=1e-5)
    perturb(model)
    adapted = testing.predict(model, x)
    # Disabled, the adapter computes the original model again.
    with peft.disable(model):
        testing.assert_outputs_close(
            testing.predict(model, x), expected, atol=1e-5
        )
    testing.assert_outputs_close(testing.predict(model, x), adapted)
    peft.delete(model, "default")
    for v in base.weights:
        np.testing.assert_allclose(v.numpy(), kernels[v.path], atol=1e-5)


def test_residual_inits_convert_to_plain_lora_and_save(tmp_path, x):
    base = bert()
    model = peft.apply(
        base, peft.LoRAConfig(rank=2, alpha=4, init="pissa", use_rslora=True)
    )
    perturb(model)
    adapted = testing.predict(model, x)
    path = tmp_path / "pissa.adapter.h5"
    peft.save(model, path)
    with h5py.File(path) as f:
        assert int(f.attrs["format_version"]) == 2
    # The file is relative to the original base: load recomputes the
    # residual there.
    loaded = peft.load(bert(), path)
    testing.assert_outputs_close(testing.predict(loaded, x), adapted, atol=1e-5)
    with pytest.raises(ValueError, match="convert_to_lora=False"):
        peft.save_hf(model, tmp_path / "hf")
    directory = peft.save_hf(model, tmp_path / "hf", convert_to_lora=True)
    # A plain LoRA of rank 2r on the original base, the same outputs.
    plain = peft.load_hf(bert(), directory)
    config = plain.adapters["default"].config
    assert (config.rank, config.init, config.use_rslora) == (4, "default", True)
    assert config.scale == pytest.approx(4 / np.sqrt(2))
    testing.assert_outputs_close(testing.predict(plain, x), adapted, atol=1e-5)
    with pytest.raises(ValueError, match="convert_to_lora=True"):
        peft.save_hf(plain, tmp_path / "again", convert_to_lora=True)
    # merge_and_unload: the residual plus the adapter's whole update.
    merged = peft.merge_and_unload(model)
    testing.assert_outputs_close(testing.predict(merged, x), adapted, atol=1e-5)


def test_variants_compose_with_named_adapters_and_round_trips(tmp_path, x):
    keras.utils.set_random_seed(0)
    base = bert()
    expected = testing.predict(base, x)
    model = peft.apply(
        base,
        peft.LoRAConfig(rank=2, alpha=4, use_dora=True, use_rslora=True),
        name="dora",
    )
    model = peft.apply(
        model,
        peft.LoRAConfig(
            rank=2,
            init="gaussian",
            targets=[r".*/feedforward_(intermediate|output)_dense"],
        ),
        name="gauss",
    )
    peft.set_active(model, ["dora", "gauss"])
    testing.assert_outputs_close(testing.predict(model, x), expected, atol=1e-5)
    for cls_config in (model.adapters["dora"].config,):
        assert peft.LoRAConfig.from_config(cls_config.get_config()) == (
            cls_config
        )
    for wrapper in loras(model)[:2]:
        testing.assert_config_round_trip(wrapper)
    y = np.array([0, 1, 1, 0], "int32")
    testing.compile_and_build(
        model,
        optimizer=optimizers.lora_plus(keras.optimizers.Adam(1e-2), model),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    magnitudes = [w.lora_magnitude.numpy().copy() for w in loras(model, "dora")]
    model.fit(x, y, epochs=2, verbose=0)
    moved = [
        not np.allclose(w.lora_magnitude.numpy(), m)
        for w, m in zip(loras(model, "dora"), magnitudes, strict=True)
    ]
    assert all(moved)
    trained = testing.predict(model, x)
    peft.merge(model)
    testing.assert_outputs_close(testing.predict(model, x), trained, atol=1e-5)
    testing.assert_keras_round_trip(model, x, str(tmp_path), atol=1e-5)
    peft.unmerge(model)
    testing.assert_outputs_close(testing.predict(model, x), trained, atol=1e-5)
    peft.save(model, tmp_path / "both.h5")
    loaded = peft.load(bert(), tmp_path / "both.h5")
    testing.assert_outputs_close(testing.predict(loaded, x), trained, atol=1e-5)
    # A plain LoRA file stays format version 1.
    plain = peft.apply(bert(), peft.LoRAConfig(rank=2))
    peft.save(plain, tmp_path / "plain.h5")
    with h5py.File(tmp_path / "plain.h5") as f:
        assert int(f.attrs["format_version"]) == 1
    assert "use_dora" not in plain.adapters["default"].config.get_config()


def test_lora_plus_moves_b_ratio_times_as_fast_under_sgd(x):
    model = peft.apply(bert(), peft.LoRAConfig(rank=2))
    perturb(model)
    optimizer = optimizers.lora_plus(keras.optimizers.SGD(0.1), model, ratio=16)
    assert optimizer.multipliers == {"lora_b": 16.0, "rest": 1.0}
    assert optimizer.groups.names == ["lora_b", "rest"]
    variables = model.trainable_weights
    before = [v.numpy().copy() for v in variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(x)))
    grads = tape.gradient(loss, variables)
    optimizer.apply(grads, variables)
    for v, old, g in zip(variables, before, grads, strict=True):
        rate = 1.6 if v.path.endswith("/lora_b") else 0.1
        np.testing.assert_allclose(
            old - v.numpy(), rate * np.asarray(g), rtol=1e-4, atol=1e-7
        )
    assert any(v.path.endswith("/lora_a") for v in variables)
    restored = keras.optimizers.deserialize(
        keras.optimizers.serialize(optimizer)
    )
    assert restored.multipliers == optimizer.multipliers
    with pytest.raises(ValueError, match="ratio=0"):
        optimizers.lora_plus(keras.optimizers.SGD(0.1), model, ratio=0)
    with pytest.raises(ValueError, match="has none"):
        optimizers.lora_plus(keras.optimizers.SGD(0.1), bert())


def test_int8_bases_take_rslora_and_refuse_dora_and_pissa(x):
    base = bert()
    base.backbone.quantize("int8")
    for kwargs, message in (
        ({"use_dora": True}, r"quantized \(int8\).*use_dora=True"),
        ({"init": "pissa"}, r"quantized \(int8\).*init='pissa'"),
    ):
        state = testing.model_state(base)
        with pytest.raises(ValueError, match=message):
            peft.apply(base, peft.LoRAConfig(rank=2, **kwargs))
        testing.assert_model_unchanged(base, state)
    model = peft.apply(base, peft.LoRAConfig(rank=2, use_rslora=True))
    assert loras(model)[0].quantized
    optimizers.lora_plus(keras.optimizers.SGD(0.1), model)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"use_dora": "yes"}, "use_dora='yes'"),
        ({"use_rslora": 1}, "use_rslora=1"),
        ({"init": "loftq"}, "init='loftq'"),
    ],
)
def test_bad_variant_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        peft.LoRAConfig(**kwargs)
    with pytest.raises(ValueError, match=message):
        layers.LoRA(keras.layers.Dense(4), rank=2, **kwargs)


def test_dora_and_residual_inits_refuse_what_they_cannot_adapt():
    with pytest.raises(ValueError, match=r"Embedding.*use_dora=True"):
        layers.LoRA(keras.layers.Embedding(10, 4), rank=2, use_dora=True)
    with pytest.raises(ValueError, match=r"Embedding.*init='olora'"):
        layers.LoRA(keras.layers.Embedding(10, 4), rank=2, init="olora")
    inner = layers.LoRA(keras.layers.Dense(4), rank=2)
    with pytest.raises(ValueError, match="another LoRA.*use_dora=True"):
        layers.LoRA(inner, rank=2, use_dora=True)
    dora = layers.LoRA(keras.layers.Dense(4), rank=2, use_dora=True)
    with pytest.raises(ValueError, match="already has a DoRA"):
        layers.LoRA(dora, rank=2)
    # Through a config, such layers are skipped with the reason.
    model = peft.apply(bert(), peft.LoRAConfig(rank=2), name="first")
    with pytest.raises(ValueError, match="cannot share a layer"):
        peft.apply(model, peft.LoRAConfig(rank=2, use_dora=True), name="d")
    assert list(model.adapters) == ["first"]


# One model with every variant, each on its own layers (one build and
# trace per run instead of one per variant): DoRA; PiSSA with rsLoRA (its
# factors depend on the scale); OLoRA; trained with LoRA+.
VARIANT_ADAPTERS = {
    "dora": {"use_dora": True, "targets": [r".*/(query|value)"]},
    "pissa": {
        "init": "pissa",
        "use_rslora": True,
        "targets": [r".*/feedforward_intermediate_dense"],
    },
    "olora": {
        "init": "olora",
        "targets": [r".*/(attention_output|feedforward_output_dense)"],
    },
}


def with_every_variant(base):
    model = base
    for name, options in VARIANT_ADAPTERS.items():
        model = peft.apply(
            model, peft.LoRAConfig(rank=2, alpha=4, **options), name=name
        )
    peft.set_active(model, list(VARIANT_ADAPTERS))
    return model


def train_variants(base, jit_compile=False, strategy=None):
    """Applies `with_every_variant` to `base` (outside `strategy`'s scope),
    trains it 3 steps with LoRA+ and returns the losses and the trained
    weights."""
    model = with_every_variant(base)
    x = testing.small_bert_inputs(batch_size=8, sequence_length=8)
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1], "int32")
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    with scope:
        testing.compile_and_build(
            model,
            data=dataset,
            optimizer=optimizers.lora_plus(keras.optimizers.SGD(0.1), model),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
    history = model.fit(dataset, steps_per_epoch=1, epochs=3, verbose=0)
    weights = {v.path: v.numpy() for v in model.trainable_weights}
    return model, history.history["loss"], weights


def test_variants_train_alike_under_xla_and_mirrored_strategy():
    """DoRA, rsLoRA, PiSSA, OLoRA and LoRA+ give the same losses and
    trained weights with `jit_compile=True` (XLA) and under
    `MirroredStrategy` on two CPUs as eagerly on one device. There, the
    model is built in the strategy's scope and the adapters are applied
    outside it: their variables, and the residual kernels PiSSA and OLoRA
    write, are the strategy's all the same."""
    model, losses, weights = train_variants(bert())
    # Every variant trains: B left zero (DoRA's magnitudes and PiSSA's
    # and OLoRA's factors moved too).
    assert len(loras(model)) == 5
    for wrapper in loras(model):
        assert wrapper.lora_b.numpy().any()
        if wrapper.use_dora:
            norms = np.linalg.norm(as_matrix(wrapper, wrapper.kernel), axis=0)
            assert not np.allclose(
                np.reshape(wrapper.lora_magnitude.numpy(), -1), norms
            )
    _, xla_losses, xla_weights = train_variants(bert(), jit_compile=True)
    np.testing.assert_allclose(xla_losses, losses, rtol=1e-4)
    strategy = testing.two_cpu_strategy()
    with strategy.scope():
        base = bert()
    mirrored, mirrored_losses, mirrored_weights = train_variants(
        base, strategy=strategy
    )
    for variable in mirrored.weights:
        assert isinstance(variable.value, tf.distribute.DistributedValues), (
            variable.path
        )
    np.testing.assert_allclose(mirrored_losses, losses, rtol=1e-3)
    assert sorted(xla_weights) == sorted(mirrored_weights) == sorted(weights)
    for path, value in weights.items():
        np.testing.assert_allclose(xla_weights[path], value, atol=1e-4)
        np.testing.assert_allclose(
            mirrored_weights[path], value, rtol=1e-3, atol=1e-5
        )
