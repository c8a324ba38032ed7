"""Training control on keras-hub generators (the five causal LM families and
BART): layer groups, layer-wise decay with gradual unfreezing,
rematerialisation, and LoRA over an int8 base."""

import gc

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import callbacks
from kfinetune import optimizers
from kfinetune import peft
from kfinetune import testing
from kfinetune.peft import quantized_heads
from kfinetune.peft import rematerialise

FAMILIES = (*testing.CAUSAL_LM_FAMILIES, "bart")
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
# The weights above the last block: the final norm, and the output
# projection where it is not the token embedding (Llama, Mistral).
HEADS = {
    "gpt2": {"layer_norm/gamma", "layer_norm/beta"},
    "llama": {
        "token_embedding/reverse_embeddings",
        "sequence_output_layernorm/scale",
    },
    "gemma": {"final_normalization/scale"},
    "mistral": {
        "token_embedding/reverse_embeddings",
        "sequence_output_layernorm/scale",
    },
    "qwen": {"sequence_output_layernorm/scale"},
}
# Where each group's blocks live: the layer names keras-hub gives them.
BLOCKS = {
    "gemma": {"block_{i}": "decoder_block_{i}"},
    "bart": {
        "encoder_block_{i}": "transformer_encoder_layer_{i}",
        "decoder_block_{i}": "transformer_decoder_layer_{i}",
    },
}
# int8 weights with per-channel scales and int8 activations: a relative
# error of about 2% on these small models (measured 1.3-2.4%).
INT8_RELATIVE_ERROR = 0.05


def build(family, num_layers=1):
    if family == "bart":
        model = testing.small_seq2seq_lm(num_layers=num_layers)
        return model, testing.small_seq2seq_inputs(batch_size=2)
    model = testing.small_causal_lm(family, num_layers=num_layers)
    return model, testing.small_gpt2_inputs(batch_size=2)


def next_tokens(family, x):
    prefix = "decoder_" if family == "bart" else ""
    ids = x[f"{prefix}token_ids"]
    return np.concatenate([ids[:, 1:], np.zeros_like(ids[:, :1])], axis=1)


def prompts(family, x):
    """The first 3 (decoder) tokens of each row as the prompt."""
    prefix = "decoder_" if family == "bart" else ""
    x = dict(x)
    mask = np.zeros_like(x[f"{prefix}padding_mask"])
    mask[:, :3] = 1
    x[f"{prefix}padding_mask"] = mask
    return x


def weights(model):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}


def logits(model, x):
    return keras.ops.convert_to_numpy(model(x))


def quantize(model):
    """`model.quantize("int8")`, in a tenth of the time.

    Keras runs `gc.collect()` for every float kernel it replaces; each
    collection walks every object alive (half a million once TensorFlow is
    imported), which made this take 3 to 6 seconds a model. Frozen objects
    are skipped (see `collect_and_freeze_after_each_module`).
    """
    gc.collect()
    gc.freeze()
    model.quantize("int8")


def lora_gradients(model, x, y):
    """The gradients of the LoRA factors, set to the same nonzero values
    in every model (with `B = 0`, `A` would have none)."""
    rng = np.random.default_rng(0)
    for variable in model.trainable_weights:
        variable.assign(rng.normal(0, 0.1, variable.shape))
    with tf.GradientTape() as tape:
        loss = LOSS(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    return {
        v.path: keras.ops.convert_to_numpy(g)
        for v, g in zip(model.trainable_weights, grads, strict=True)
    }


def relative_error(actual, expected):
    return np.linalg.norm(actual - expected) / np.linalg.norm(expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_groups_of_generators_bottom_to_top(family):
    model, _ = build(family, num_layers=2)
    groups = optimizers.layer_groups(model)
    blocks = BLOCKS.get(family, {"block_{i}": "transformer_layer_{i}"})
    names = [name.format(i=i) for name in blocks for i in range(2)]
    if family == "bart":
        # No weight follows BART's last decoder block (post-norm blocks,
        # and the LM head is the token embedding): it is the top group.
        assert groups.names == ["embeddings", *names]
    else:
        assert groups.names == ["embeddings", *names, "head"]
        assert set(groups["head"]) == HEADS[family]
    every = [p for name in groups for p in groups[name]]
    assert sorted(every) == sorted(v.path for v in model.weights)
    for name, layer in blocks.items():
        for i in range(2):
            paths = {
                v.path
                for v in model.backbone.get_layer(layer.format(i=i)).weights
            }
            assert set(groups[name.format(i=i)]) == paths
    # The token embedding is in the bottom group, also where it is the LM
    # head too (tied: GPT-2, Gemma, Qwen, BART).
    assert "token_embedding/embeddings" in groups["embeddings"]
    if family == "bart":
        # The decoder's embeddings come after the encoder's blocks.
        assert {
            "decoder_position_embedding/embeddings",
            "decoder_embeddings_layer_norm/gamma",
        } <= set(groups["embeddings"])


@pytest.mark.parametrize("family", FAMILIES)
def test_remat_finds_the_blocks_and_keeps_losses_and_gradients(family):
    model, x = build(family)
    y = next_tokens(family, x)

    def loss_and_gradients():
        with tf.GradientTape() as tape:
            loss = LOSS(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        return loss, [tf.convert_to_tensor(g) for g in grads]

    expected_loss, expected = loss_and_gradients()
    layers = list(BLOCKS.get(family, {"": "transformer_layer_{i}"}).values())
    assert peft.remat(model) == [name.format(i=0) for name in layers]
    block = model.backbone.get_layer(layers[-1].format(i=0))
    assert rematerialise.is_rematerialised(block)
    loss, gradients = loss_and_gradients()
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    for actual, wanted in zip(gradients, expected, strict=True):
        np.testing.assert_allclose(actual, wanted, atol=1e-6)
    peft.remat(model, enabled=False)
    assert not rematerialise.is_rematerialised(block)


class Snapshots(keras.callbacks.Callback):
    """The model's weights when `fit` starts and after each epoch."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_begin(self, logs=None):
        self.weights.append(weights(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(weights(self.model))


@pytest.mark.parametrize(
    "family, mode", [("gemma", "retrace"), ("bart", "static")]
)
def test_gradual_unfreezing_with_layerwise_decay(family, mode):
    model, x = build(family)
    groups = optimizers.layer_groups(model)
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.Adam(1e-2), groups, decay=0.5
    )
    model.compile(optimizer=optimizer, loss=LOSS, run_eagerly=True)
    top = groups.names[-1]
    for i, name in enumerate(reversed(groups.names)):
        np.testing.assert_allclose(
            optimizer.group_learning_rate(name),
            0.5**i * optimizer.group_learning_rate(top),
        )
    snapshots = Snapshots()
    unfreezing = callbacks.GradualUnfreezing(groups, mode=mode, verbose=0)
    model.fit(
        x,
        next_tokens(family, x),
        epochs=len(groups),
        verbose=0,
        callbacks=[unfreezing, snapshots],
    )
    # Epoch e trains the top e + 1 groups; the others stay bitwise equal.
    for epoch in range(len(groups)):
        before, after = snapshots.weights[epoch : epoch + 2]
        moved = [
            name
            for name in groups.names
            if any(
                not np.array_equal(before[p], after[p]) for p in groups[name]
            )
        ]
        assert moved == groups.names[len(groups) - epoch - 1 :], epoch
    assert all(v.trainable for v in model.weights)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_over_an_int8_base_matches_the_float_model(family):
    config = peft.LoRAConfig(rank=2, alpha=4)
    model, x = build(family)
    y = next_tokens(family, x)
    expected = logits(model, x)
    expected_gradients = lora_gradients(peft.apply(model, config), x, y)
    model, _ = build(family)
    quantize(model.backbone)
    actual = logits(model, x)
    assert 0 < relative_error(actual, expected) < INT8_RELATIVE_ERROR
    # Keras's int8 LM head (the token embedding's reverse projection) has
    # no input gradient of its own: every LoRA factor below it would train
    # on a gradient unrelated to the float model's (relative error ~1).
    model = peft.apply(model, config)
    gradients = lora_gradients(model, x, y)
    assert gradients.keys() == expected_gradients.keys()
    for path, wanted in expected_gradients.items():
        assert relative_error(gradients[path], wanted) < 0.1, path
    # A quantized table's scale stays in the group of its table.
    groups = optimizers.layer_groups(model)
    assert groups.group_of("token_embedding/embeddings_scale") == "embeddings"
    if family in ("llama", "mistral"):
        assert groups.group_of("token_embedding/reverse_embeddings_scale") == (
            "head"
        )


@pytest.mark.parametrize("family", ["llama", "bart"])
def test_lora_over_an_int8_base_with_remat_trains_and_generates(family):
    model, x = build(family)
    quantize(model.backbone)
    model = peft.apply(model, peft.LoRAConfig(rank=2, alpha=4))
    assert peft.remat(model)
    before = weights(model)
    trainable = {v.path for v in model.trainable_weights}
    assert trainable and all("/lora_" in p for p in trainable)
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=LOSS,
        sampler="greedy",
        run_eagerly=True,
    )
    history = model.fit(x, next_tokens(family, x), epochs=3, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < loss[0]
    after = weights(model)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed == trainable
    assert any(v.dtype == "int8" for v in model.weights)
    query = prompts(family, x)
    generated = model.generate(query, stop_token_ids=None)
    key = "decoder_token_ids" if family == "bart" else "token_ids"
    np.testing.assert_array_equal(
        generated[key], testing.greedy_decoding(model, query)
    )


def test_int8_lora_generator_reloads_with_its_head_gradients(tmp_path):
    model, x = build("gemma")
    y = next_tokens("gemma", x)
    quantize(model.backbone)
    model = peft.apply(model, peft.LoRAConfig(rank=2, alpha=4))
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.backbone.token_embedding.quantization_mode == "int8"
    expected = lora_gradients(model, x, y)
    for name, gradient in lora_gradients(reloaded, x, y).items():
        np.testing.assert_allclose(gradient, expected[name], atol=1e-6)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_int8_reverse_projection_passes_the_float_gradient(tie_weights):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3, 8))
    layer = keras.layers.ReversibleEmbedding(
        20, 8, tie_weights=tie_weights, logit_soft_cap=2.0
    )
    model = keras.Model(inputs, layer(inputs, reverse=True))
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 8)), "float32")

    def input_gradient():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = keras.ops.sum(keras.ops.sin(model(x)))
        return tape.gradient(loss, x).numpy()

    expected = input_gradient()
    quantize(model)
    assert quantized_heads.pass_gradients(model) == [layer.path]
    assert quantized_heads.pass_gradients(model) == []
    assert relative_error(input_gradient(), expected) < 0.05
