"""Every private attribute kfinetune.compat touches, checked against the
installed Keras and keras-hub: private attributes change without notice, so
an upgrade that breaks one must fail here first."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import compat
from kfinetune import encoders
from kfinetune import layers
from kfinetune import testing
from kfinetune import walk


def test_a_built_layer_refuses_new_state_unless_unlocked():
    mha = (
        testing.small_bert_backbone()
        .get_layer("transformer_layer_0")
        ._self_attention_layer
    )
    with pytest.raises(ValueError, match="cannot add new elements of state"):
        mha.extra = keras.layers.Dense(2)
    with compat.unlocked(mha):
        mha.extra = keras.layers.Dense(2)
    assert mha._tracker.locked


def test_set_sublayer_keeps_weight_order_and_untracks_the_old_layer():
    backbone = testing.small_bert_backbone()
    mha = backbone.get_layer("transformer_layer_0")._self_attention_layer
    old = mha._query_dense
    order = [v.path for v in backbone.weights]
    new = keras.layers.EinsumDense(
        old.equation, output_shape=old.partial_output_shape, name="query"
    )
    compat.set_sublayer(mha, "_query_dense", None, new)
    assert mha._query_dense is new
    assert not any(layer is old for layer in mha._layers)
    assert [layer.name for layer in mha._layers].index("query") == 0
    compat.set_sublayer(mha, "_query_dense", None, old)
    assert [v.path for v in backbone.weights] == order


def test_distribution_strategy_of_a_model():
    strategy = testing.two_cpu_strategy()
    with strategy.scope():
        mirrored = testing.small_bert_classifier()
    assert compat.distribution_strategy(mirrored) is strategy
    plain = testing.small_bert_classifier()
    default = compat.distribution_strategy(plain)
    assert default is not strategy


def test_functional_and_rebuildable_models_are_recognised():
    task = testing.small_bert_classifier()
    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    encoder = task.backbone.get_layer("transformer_layer_0")
    assert compat.is_functional(task) and compat.is_functional(task.backbone)
    assert compat.is_functional(functional) and compat.is_functional(sequential)
    assert not compat.is_functional(encoder)
    assert compat.is_rebuildable(functional) and compat.is_rebuildable(
        sequential
    )
    assert not compat.is_rebuildable(task)
    assert not compat.is_rebuildable(task.backbone)


def test_keras_hub_encoder_sublayers_are_attributes():
    # The engine finds sublayers through the layers' attributes; keras-hub's
    # encoder keeps its attention and feed-forward layers there.
    encoder = testing.small_bert_backbone().get_layer("transformer_layer_0")
    names = {k for k, v in vars(encoder).items() if isinstance(v, keras.Layer)}
    assert {
        "_self_attention_layer",
        "_feedforward_intermediate_dense",
        "_feedforward_output_dense",
    } <= names


def test_replace_node_runs_the_new_layer_and_undoes_cleanly(tmp_path):
    backbone = testing.small_bert_backbone()
    x = testing.small_bert_inputs()
    expected = backbone.predict(x, verbose=0)["sequence_output"]
    order = [v.path for v in backbone.weights]
    old = backbone.get_layer("embeddings_layer_norm")

    class Doubled(keras.layers.Wrapper):
        def call(self, inputs):
            return 2.0 * self.layer(inputs)

    new = Doubled(old)
    compat.replace_node(backbone, old, new)
    assert backbone.embeddings_layer_norm is new
    assert [layer for layer in backbone.layers if layer is new]
    assert not [layer for layer in backbone.layers if layer is old]
    assert [v.path for v in backbone.weights] == order
    outputs = backbone(x)["sequence_output"]
    assert abs(keras.ops.convert_to_numpy(outputs) - expected).max() > 1e-3
    # The graph still exports (TensorFlow refuses edited tracked lists).
    backbone.export(str(tmp_path / "sm"), verbose=False)
    compat.replace_node(backbone, new, old)
    assert backbone.embeddings_layer_norm is old
    assert [v.path for v in backbone.weights] == order
    outputs = keras.ops.convert_to_numpy(backbone(x)["sequence_output"])
    assert abs(outputs - expected).max() < 1e-5
    layer_1 = backbone.transformer_layers[1]
    wrapped = Doubled(layer_1)
    compat.replace_node(backbone, layer_1, wrapped)
    assert backbone.transformer_layers[1] is wrapped


def test_apply_counter_counts_every_apply_also_with_accumulation():
    variable = keras.Variable([1.0, 2.0])
    optimizer = keras.optimizers.SGD(0.1, gradient_accumulation_steps=2)
    for _ in range(3):
        optimizer.apply([keras.ops.ones(2)], [variable])
    counter = compat.apply_counter(optimizer)
    assert isinstance(counter, keras.Variable)
    assert int(counter) == 3 and int(optimizer.iterations) == 1
    counter.assign_add(1)
    assert int(optimizer.iterations) == 2


def test_uses_weight_decay_reads_the_exclusions_the_config_drops():
    kept, by_name, by_weight = (
        keras.Variable([1.0, 2.0], name=name)
        for name in ("kernel", "bias", "gamma")
    )
    variables = (kept, by_name, by_weight)
    optimizer = keras.optimizers.AdamW(weight_decay=0.1)
    optimizer.exclude_from_weight_decay(
        var_list=[by_weight], var_names=["bias"]
    )
    uses = [compat.uses_weight_decay(optimizer, v) for v in variables]
    assert uses == [True, False, False]
    copy = type(optimizer).from_config(optimizer.get_config())
    assert all(compat.uses_weight_decay(copy, v) for v in variables)


def test_syncs_without_merge_call_except_under_mirrored_strategy_on_cpu():
    assert compat.syncs_without_merge_call()
    with testing.two_cpu_strategy().scope():
        assert not compat.syncs_without_merge_call()


def test_self_attention_layer_is_the_encoders_attention():
    encoder = testing.small_bert_backbone().get_layer("transformer_layer_0")
    attention = compat.self_attention_layer(encoder)
    assert isinstance(attention, keras.layers.MultiHeadAttention)
    assert any(layer is attention for layer in encoder._layers)


def test_recording_call_shadows_call_in_eager_runs_only_inside():
    backbone = testing.small_bert_backbone()
    encoder = backbone.get_layer("transformer_layer_0")
    attention = compat.self_attention_layer(encoder)
    x = testing.small_bert_inputs(batch_size=2)
    seen = []

    def record(original, *args, **kwargs):
        kwargs["return_attention_scores"] = True
        output, scores = original(*args, **kwargs)
        seen.append(scores.shape)
        return output

    expected = backbone(x)["sequence_output"]
    with compat.recording_call(attention, record):
        inside = backbone(x)["sequence_output"]
    assert seen == [(2, 4, 16, 16)]
    assert "call" not in vars(attention)
    backbone(x)
    assert len(seen) == 1
    np.testing.assert_allclose(inside, expected, atol=1e-6)


def test_set_feedforward_activation_changes_what_the_encoder_computes():
    backbone = testing.small_bert_backbone(num_layers=1)
    encoder = backbone.get_layer("transformer_layer_0")
    x = testing.small_bert_inputs(batch_size=2)
    before = keras.ops.convert_to_numpy(backbone(x)["sequence_output"])
    compat.set_feedforward_activation(encoder, keras.activations.relu)
    assert encoder.get_config()["activation"] == "relu"
    after = keras.ops.convert_to_numpy(backbone(x)["sequence_output"])
    assert np.abs(after - before).max() > 1e-3


@pytest.mark.parametrize("family", ["albert", "electra", "deberta_v3"])
def test_set_feedforward_activation_reaches_every_family(family):
    # ALBERT shares its layers across depth and DeBERTa-v3 has its own
    # encoder layer class; both keep the same private attribute.
    backbone = testing.small_backbone(family, num_layers=1)
    layers_ = [
        layer
        for layer in backbone.layers
        if layer.name.startswith(("group_", "transformer_layer_", "disent"))
    ]
    x = {
        "token_ids": np.array([[2, 7, 9, 3]]),
        "segment_ids": np.zeros((1, 4), "int32"),
        "padding_mask": np.ones((1, 4), "int32"),
    }
    x = {name: x[name] for name in backbone.input}
    before = keras.ops.convert_to_numpy(encoders.sequence_output(backbone, x))
    for layer in layers_:
        compat.set_feedforward_activation(layer, keras.activations.relu)
        assert layer.get_config()["activation"] == "relu"
    after = keras.ops.convert_to_numpy(encoders.sequence_output(backbone, x))
    assert layers_ and np.abs(after - before).max() > 1e-3


def _traces_of_first_fit(model, data):
    """How many times the first `fit` traces `model.train_step`."""
    traces = []
    train_step = model.train_step

    def counting(batch):
        traces.append(1)
        return train_step(batch)

    object.__setattr__(model, "train_step", counting)
    model.fit(data, epochs=1, verbose=0)
    return len(traces)


@pytest.mark.parametrize("build_first", [False, True])
def test_build_for_fit_creates_in_advance_what_the_first_trace_would(
    build_first,
):
    keras.utils.set_random_seed(0)
    model = testing.small_bert_classifier(sequence_length=8)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    texts = np.array(["the cat sat", "a dog ran", "cats and dogs", "the end"])
    data = tf.data.Dataset.from_tensor_slices((texts, [0, 1, 0, 1])).batch(2)
    if build_first:
        spec = data.map(model.preprocess_samples).element_spec
        before = len(model.metrics_variables)
        compat.build_for_fit(model, spec)
        assert model.optimizer.built
        # The accuracy's total and count.
        assert len(model.metrics_variables) == before + 2
    # Variables created inside the first trace make TensorFlow trace again.
    assert _traces_of_first_fit(model, data) == (1 if build_first else 2)


def test_call_arguments_are_a_layers_symbolic_arguments_by_name():
    inputs = {
        "x": keras.Input((5, 3), name="x"),
        "a": keras.Input((5,), name="a"),
        "b": keras.Input((5,), name="b"),
    }
    crf = layers.CRF(3)
    keras.Model(
        inputs, crf(inputs["x"], mask=inputs["b"], chain_mask=inputs["a"])
    )
    args, kwargs = compat.call_arguments(crf)
    # KerasTensor's == is symbolic: compare identities.
    assert len(args) == 1 and args[0] is inputs["x"]
    assert set(kwargs) == {"mask", "chain_mask"}
    assert kwargs["mask"] is inputs["b"] and kwargs["chain_mask"] is inputs["a"]


@pytest.mark.parametrize("family", ["llama", "gemma", "mistral", "qwen"])
def test_key_value_projections_give_the_cache_shape(family):
    lm = testing.small_causal_lm(family)
    attention = next(
        s.layer
        for s in walk.sites(lm)
        if s.path == f"{lm.backbone.transformer_layers[0].path}/"
        f"{'attention' if family == 'gemma' else 'self_attention'}"
    )
    key, value = compat.key_value_projections(attention)
    assert isinstance(key, keras.layers.EinsumDense)
    assert (key.name, value.name) == ("key", "value")
    # Two key/value heads of size 8, the shape of the layer's cache.
    assert tuple(key.partial_output_shape[-2:]) == (2, 8)
    assert tuple(value.partial_output_shape[-2:]) == (2, 8)
    x = np.zeros((1, 3, 32), "float32")
    cache = keras.ops.zeros((1, 2, 5, 2, 8))
    mask = np.ones((1, 3, 5), "int32")
    _, cache = attention(
        x, attention_mask=mask, cache=cache, cache_update_index=1
    )
    assert tuple(cache.shape) == (1, 2, 5, 2, 8)


def test_slice_update_differentiates_once_registered():
    # On TensorFlow `slice_update` runs XlaDynamicUpdateSlice, which has no
    # gradient of its own; when this fails, Keras changed the operation.
    tensor = tf.Variable(np.arange(12.0).reshape(3, 4).astype("float32"))
    update = tf.Variable(np.ones((2, 2), "float32"))
    weights = tf.constant(np.arange(1.0, 13.0).reshape(3, 4), "float32")
    compat.differentiable_slice_update()
    compat.differentiable_slice_update()

    def gradients():
        with tf.GradientTape() as tape:
            updated = keras.ops.slice_update(2.0 * tensor, [1, 1], 3.0 * update)
            loss = tf.reduce_sum(updated * weights)
        return tape.gradient(loss, [tensor, update])

    expected_tensor = 2.0 * weights.numpy()
    expected_tensor[1:3, 1:3] = 0.0
    expected_update = 3.0 * weights.numpy()[1:3, 1:3]
    for run in (gradients, tf.function(gradients, jit_compile=True)):
        tensor_gradient, update_gradient = run()
        np.testing.assert_allclose(tensor_gradient, expected_tensor)
        np.testing.assert_allclose(update_gradient, expected_update)
    graph = (
        tf.function(lambda: keras.ops.slice_update(tensor, [0, 0], update))
        .get_concrete_function()
        .graph
    )
    assert "XlaDynamicUpdateSlice" in [op.type for op in graph.get_operations()]
