import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import data
from kfinetune import incremental
from kfinetune import peft
from kfinetune import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _data(batch_size=8, seed=0):
    x = testing.small_bert_inputs(batch_size, seed=seed)
    y = np.arange(batch_size, dtype="int32") % 2
    return x, y


def _shift(model, delta=0.01):
    for variable in model.trainable_variables:
        variable.assign(variable.numpy() + delta)


def _penalty(model):
    return float(keras.ops.sum(model.losses))


def _fit_loss(model, x, y, jit_compile):
    # A zero learning rate: the reported loss is the loss at these weights.
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.SGD(0.0),
        loss=LOSS,
        jit_compile=jit_compile,
    )
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(y))
    return model.fit(dataset, epochs=1, verbose=0).history["loss"][0]


def _regularizers(model):
    return [v.regularizer for v in model.weights]


def _fisher_of(model, seed=1):
    x, y = _data(4, seed)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(1)
    return incremental.fisher(model, dataset)


@pytest.mark.parametrize("method", ["l2sp", "ewc"])
def test_penalty_is_zero_at_the_anchor(method):
    model = testing.small_bert_classifier()
    fisher = _fisher_of(model) if method == "ewc" else None
    incremental.anchor(model, 3.0, method, fisher=fisher)
    assert len(model.losses) == len(model.trainable_variables)
    assert _penalty(model) == 0.0


def test_l2sp_penalty_is_half_strength_times_squared_distance():
    model = testing.small_bert_classifier()
    anchor = incremental.snapshot(model)
    _shift(model, 0.01)
    incremental.anchor(model, 2.0, anchor=anchor)
    size = sum(np.prod(v.shape) for v in model.trainable_variables)
    np.testing.assert_allclose(_penalty(model), size * 1e-4, rtol=1e-4)


def test_ewc_weights_each_element_by_its_fisher():
    model = testing.small_bert_classifier()
    kernel = model.get_layer("logits").kernel
    anchor = {kernel.path: kernel.numpy() - 0.5}
    fisher = {kernel.path: np.full(kernel.shape, 2.0, "float32")}
    fisher[kernel.path][0, 0] = 0.0
    incremental.anchor(model, 3.0, "ewc", anchor=anchor, fisher=fisher)
    expected = 0.5 * 3.0 * 2.0 * 0.25 * (np.prod(kernel.shape) - 1)
    np.testing.assert_allclose(_penalty(model), expected, rtol=1e-5)


@pytest.mark.parametrize("method", ["l2sp", "ewc"])
def test_penalty_gradient_equals_a_finite_difference(method):
    model = testing.small_bert_classifier()
    kernel = model.get_layer("logits").kernel
    rng = np.random.default_rng(0)
    anchor = {kernel.path: rng.normal(size=kernel.shape).astype("float32")}
    fisher = None
    if method == "ewc":
        fisher = {kernel.path: rng.uniform(size=kernel.shape).astype("float32")}
    incremental.anchor(model, 1.5, method, anchor=anchor, fisher=fisher)
    with tf.GradientTape() as tape:
        penalty = keras.ops.sum(model.losses)
    gradient = tape.gradient(penalty, kernel.value).numpy()
    values = kernel.numpy()
    step = 1e-2
    for index in [(0, 0), (3, 1), (31, 0)]:
        for sign in (1, -1):
            shifted = values.copy()
            shifted[index] += sign * step
            kernel.assign(shifted)
            if sign == 1:
                above = _penalty(model)
            else:
                below = _penalty(model)
        kernel.assign(values)
        np.testing.assert_allclose(
            (above - below) / (2 * step), gradient[index], rtol=1e-2
        )


def test_both_penalties_are_in_the_training_loss_under_xla():
    x, y = _data()
    plain = testing.small_bert_classifier()
    _shift(plain)
    expected = _fit_loss(plain, x, y, jit_compile=False)
    model = testing.small_bert_classifier()
    before = incremental.snapshot(model)
    head = {p: v for p, v in before.items() if p.startswith("logits/")}
    body = {p: v for p, v in before.items() if p not in head}
    fisher = {p: f for p, f in _fisher_of(model).items() if p in head}
    incremental.anchor(model, 4.0, anchor=body)
    incremental.anchor(model, 40.0, "ewc", anchor=head, fisher=fisher)
    _shift(model)
    penalty = _penalty(model)
    assert penalty > 0
    assert {type(r) for r in _regularizers(model)} == {
        incremental.L2SP,
        incremental.EWC,
    }
    np.testing.assert_allclose(
        _fit_loss(model, x, y, jit_compile=True), expected + penalty, rtol=1e-4
    )


def test_anchor_resets_the_compiled_train_function_and_release_removes_it():
    x, y = _data()
    model = testing.small_bert_classifier()
    anchor = incremental.snapshot(model)
    _shift(model)
    plain = _fit_loss(model, x, y, jit_compile=False)
    incremental.anchor(model, 4.0, anchor=anchor)
    # Fit again without compiling: a stale traced step would miss the
    # penalty.
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(y))
    anchored = model.fit(dataset, verbose=0).history["loss"][0]
    np.testing.assert_allclose(anchored, plain + _penalty(model), rtol=1e-4)
    assert incremental.release(model) == len(model.trainable_variables)
    assert model.losses == []
    assert model.train_function is None


def test_anchor_holds_weights_back_during_training():
    x, y = _data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(y))

    def drift(strength):
        model = testing.small_bert_classifier()
        before = incremental.snapshot(model)
        if strength:
            incremental.anchor(model, strength)
        testing.compile_and_build(
            model, optimizer=keras.optimizers.SGD(0.1), loss=LOSS
        )
        model.fit(dataset.repeat(20), verbose=0)
        after = incremental.snapshot(model)
        return sum(np.sum((after[p] - before[p]) ** 2) for p in before)

    assert drift(5.0) < 0.5 * drift(None)


def test_frozen_variables_are_not_penalised():
    model = testing.small_bert_classifier()
    anchor = incremental.snapshot(model)
    _shift(model)
    incremental.anchor(model, 1.0, anchor=anchor)
    model.backbone.trainable = False
    head = [v for v in model.trainable_variables]
    assert len(model.losses) == len(head) == 2
    expected = 0.5 * 1e-4 * sum(np.prod(v.shape) for v in head)
    np.testing.assert_allclose(_penalty(model), expected, rtol=1e-4)
    model.backbone.trainable = True
    assert len(model.losses) == len(model.trainable_variables)


def test_anchor_penalises_the_trainable_weights_of_a_peft_model():
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig(2))
    incremental.anchor(model, 1.0)
    _shift(model)
    trainable = model.trainable_variables
    assert len(model.losses) == len(trainable)
    assert any("lora" in v.path for v in trainable)
    expected = 0.5 * 1e-4 * sum(np.prod(v.shape) for v in trainable)
    np.testing.assert_allclose(_penalty(model), expected, rtol=1e-4)


def test_anchor_covers_only_the_weights_it_is_given():
    model = testing.small_bert_classifier()
    _shift(model)
    logits = model.get_layer("logits")
    incremental.anchor(model, 1.0, anchor={logits.bias.path: np.zeros(2)})
    assert logits.bias.regularizer is not None
    assert logits.kernel.regularizer is None
    assert len(model.losses) == 1


def test_anchor_from_another_architecture_fails_before_changing_anything():
    model = testing.small_bert_classifier()
    for other in (
        testing.small_bert_classifier(num_classes=3),
        testing.small_bert_classifier(num_layers=3),
    ):
        with pytest.raises(ValueError, match="another architecture"):
            incremental.anchor(model, 1.0, anchor=incremental.snapshot(other))
        assert all(r is None for r in _regularizers(model))
    with pytest.raises(ValueError, match="another architecture"):
        incremental.anchor(
            model,
            1.0,
            "ewc",
            fisher=_fisher_of(testing.small_bert_classifier(3)),
        )
    assert all(r is None for r in _regularizers(model))


def test_anchor_argument_errors():
    model = testing.small_bert_classifier()
    fisher = _fisher_of(model)
    cases = [
        ({"strength": 0.0}, "Received: strength=0.0"),
        ({"strength": -1}, "Received: strength=-1"),
        ({"method": "l1"}, "Received: method='l1'"),
        ({"method": "ewc"}, "Received: fisher=None"),
        ({"fisher": fisher}, "method='l2sp'"),
        ({"anchor": {}}, "Received: anchor=dict"),
        ({"anchor": [1.0]}, "Received: anchor=list"),
        (
            {"method": "ewc", "fisher": fisher, "anchor": {"x": 0}},
            "Received: anchor paths",
        ),
    ]
    for kwargs, message in cases:
        arguments = {"strength": 1.0, **kwargs}
        with pytest.raises(ValueError, match=message):
            incremental.anchor(model, **arguments)
    negative = {p: -np.ones_like(f) for p, f in fisher.items()}
    with pytest.raises(ValueError, match="non-negative"):
        incremental.anchor(model, 1.0, "ewc", fisher=negative)
    kernel = model.get_layer("logits").kernel
    subset = {kernel.path: kernel.numpy()}
    with pytest.raises(ValueError, match="lacks some"):
        incremental.anchor(model, 1.0, "ewc", anchor=subset, fisher=fisher)
    nan = {kernel.path: np.full(kernel.shape, np.nan, "float32")}
    with pytest.raises(ValueError, match="finite"):
        incremental.anchor(model, 1.0, anchor=nan)
    assert all(r is None for r in _regularizers(model))
    with pytest.raises(ValueError, match="Received: model="):
        incremental.release("model")


def test_existing_regularizers_are_refused():
    model = testing.small_bert_classifier()
    incremental.anchor(model, 1.0)
    with pytest.raises(ValueError, match="release"):
        incremental.anchor(model, 1.0)
    incremental.release(model)
    bias = model.get_layer("logits").bias
    bias.regularizer = keras.regularizers.L2(0.1)
    with pytest.raises(ValueError, match="would replace it"):
        incremental.anchor(model, 1.0)
    assert [r for r in _regularizers(model) if r is not None] == [
        bias.regularizer
    ]
    assert incremental.release(model) == 0
    assert isinstance(bias.regularizer, keras.regularizers.L2)


def test_duplicate_paths_are_refused():
    backbone = testing.small_bert_backbone()
    twin = testing.small_bert_backbone()
    inputs = {
        name: keras.Input((16,), dtype="int32", name=name)
        for name in ("token_ids", "segment_ids", "padding_mask")
    }
    outputs = keras.layers.Concatenate()(
        [backbone(inputs)["pooled_output"], twin(inputs)["pooled_output"]]
    )
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="Received: duplicates="):
        incremental.anchor(model, 1.0)


def test_fisher_is_the_mean_of_squared_per_example_gradients():
    model = testing.small_bert_classifier()
    x, y = _data(3)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(1)
    fisher = incremental.fisher(model, dataset)
    assert list(fisher) == [v.path for v in model.trainable_variables]
    kernel = model.get_layer("logits").kernel
    squares = []
    for i in range(3):
        with tf.GradientTape() as tape:
            xi = {k: v[i : i + 1] for k, v in x.items()}
            value = LOSS(y[i : i + 1], model(xi, training=False))
        squares.append(tape.gradient(value, kernel.value).numpy() ** 2)
    np.testing.assert_allclose(
        fisher[kernel.path], np.mean(squares, 0), rtol=1e-4, atol=1e-9
    )
    assert all(np.all(f >= 0) for f in fisher.values())
    again = incremental.fisher(model, dataset)
    for path in fisher:
        np.testing.assert_array_equal(again[path], fisher[path])


def test_fisher_preprocesses_raw_text_for_keras_hub_tasks():
    model = testing.small_bert_classifier(sequence_length=8)
    dataset = tf.data.Dataset.from_tensor_slices(
        (["a good movie", "bad day"], np.array([1, 0], "int32"))
    ).batch(1)
    fisher = incremental.fisher(model, dataset)
    assert np.sum(fisher[model.get_layer("logits").kernel.path]) > 0


def test_fisher_errors():
    model = testing.small_bert_classifier()
    x, y = _data(2)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(1)
    with pytest.raises(ValueError, match="Received: dataset="):
        incremental.fisher(model, (x, y))
    with pytest.raises(ValueError, match="infinite"):
        incremental.fisher(model, dataset.repeat())
    with pytest.raises(ValueError, match="no batches"):
        incremental.fisher(model, dataset.take(0))
    with pytest.raises(ValueError, match="Received: model="):
        incremental.fisher("model", dataset)


def test_regularizer_configs_round_trip_and_saved_models_reload_unanchored(
    tmp_path,
):
    model = testing.small_bert_classifier()
    kernel = model.get_layer("logits").kernel
    fisher = _fisher_of(model)
    incremental.anchor(model, 2.0, "ewc", fisher=fisher)
    revived = testing.assert_config_round_trip(kernel.regularizer)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(revived.fisher), fisher[kernel.path]
    )
    x, _ = _data()
    reloaded = testing.assert_keras_round_trip(model, x, str(tmp_path))
    assert reloaded.losses == []
    assert all(r is None for r in _regularizers(reloaded))


def test_regularizer_argument_errors():
    with pytest.raises(ValueError, match="Received: strength=-1"):
        incremental.L2SP(-1, [0.0])
    with pytest.raises(ValueError, match="dtype"):
        incremental.L2SP(1.0, np.array([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        incremental.EWC(1.0, [0.0, 1.0], [1.0])


def test_grow_head_keeps_the_old_logits_and_copies_the_backbone():
    keras.utils.set_random_seed(0)
    model = testing.small_bert_classifier(sequence_length=16)
    texts = np.array(["a good movie", "the worst day ever", "fun", "sad"])
    before = testing.predict(model, texts)
    grown = incremental.grow_head(model, 4)
    assert type(grown) is type(model)
    assert grown.num_classes == 4
    assert grown.preprocessor is model.preprocessor
    after = testing.predict(grown, texts)
    assert after.shape == (4, 4)
    testing.assert_outputs_close(after[:, :2], before)
    old_head, new_head = model.get_layer("logits"), grown.get_layer("logits")
    np.testing.assert_array_equal(
        new_head.kernel.numpy()[:, :2], old_head.kernel.numpy()
    )
    np.testing.assert_array_equal(
        new_head.bias.numpy(), [*old_head.bias.numpy(), 0, 0]
    )
    assert np.all(new_head.kernel.numpy()[:, 2:] != 0)
    for old, new in zip(
        model.backbone.weights, grown.backbone.weights, strict=True
    ):
        assert old is not new
        np.testing.assert_array_equal(old.numpy(), new.numpy())
    testing.compile_and_build(
        grown, optimizer=keras.optimizers.SGD(0.1), loss=LOSS
    )
    grown.fit(texts, np.array([0, 1, 2, 3]), verbose=0)
    testing.assert_outputs_close(testing.predict(model, texts), before)


def test_grow_head_errors():
    model = testing.small_bert_classifier()
    for num_classes in (2, 1, 2.5):
        with pytest.raises(ValueError, match=f"num_classes={num_classes}"):
            incremental.grow_head(model, num_classes)
    with pytest.raises(ValueError, match="PEFTModel"):
        incremental.grow_head(peft.apply(model, peft.LoRAConfig(2)), 3)
    with pytest.raises(ValueError, match="TextClassifier"):
        incremental.grow_head(testing.small_bert_backbone(), 3)


def _numbered(start, size):
    values = np.arange(start, start + size, dtype="int64")
    return tf.data.Dataset.from_tensor_slices((values, values % 2))


def _firsts(dataset):
    return [int(x) for x, _ in dataset.as_numpy_iterator()]


def test_replay_adds_the_ratio_of_old_examples_once_each_pass():
    mixed = data.replay(_numbered(0, 30), _numbered(100, 50), 0.25, seed=0)
    assert mixed.cardinality() == 40
    passes = [_firsts(mixed) for _ in range(2)]
    for elements in passes:
        new = [x for x in elements if x < 100]
        old = [x for x in elements if x >= 100]
        assert new == list(range(30))
        assert len(old) == len(set(old)) == 10
        assert set(old) <= set(range(100, 150))
        assert elements[:10] != new[:10]
    assert passes[0] != passes[1]
    again = data.replay(_numbered(0, 30), _numbered(100, 50), 0.25, seed=0)
    assert _firsts(again) == passes[0]
    other = data.replay(_numbered(0, 30), _numbered(100, 50), 0.25, seed=1)
    assert _firsts(other) != passes[0]


def test_replay_cycles_a_small_old_set_and_keeps_new_alone_at_zero():
    mixed = data.replay(_numbered(0, 4), _numbered(100, 3), 0.75)
    old = [x for x in _firsts(mixed) if x >= 100]
    assert len(old) == 12 and set(old) == {100, 101, 102}
    assert _firsts(data.replay(_numbered(0, 4), _numbered(100, 3), 0)) == [
        0,
        1,
        2,
        3,
    ]


def test_replay_errors():
    new, old = _numbered(0, 4), _numbered(100, 4)
    for ratio in (1, -0.1, True):
        with pytest.raises(ValueError, match=f"Received: ratio={ratio}"):
            data.replay(new, old, ratio)
    with pytest.raises(ValueError, match="Received: seed=-1"):
        data.replay(new, old, 0.5, seed=-1)
    with pytest.raises(ValueError, match="new.cardinality"):
        data.replay(new.repeat(), old)
    with pytest.raises(ValueError, match="old.cardinality"):
        data.replay(new, old.filter(lambda x, y: True))
    with pytest.raises(ValueError, match="old.cardinality"):
        data.replay(new, old.take(0))
    with pytest.raises(ValueError, match="Received: new="):
        data.replay([1, 2], old)
    strings = tf.data.Dataset.from_tensor_slices((["a"], [0]))
    with pytest.raises(ValueError, match="Received: new.element_spec"):
        data.replay(new, strings)
