"""Prefix tuning and prompt tuning on keras-hub's rotary, grouped-query
decoders (Llama, Gemma, Mistral, Qwen): exact references, padding, training,
saving, and cached `generate()` against decoding without a cache."""

import keras
import keras_hub
import numpy as np
import pytest

from kfinetune import layers
from kfinetune import peft
from kfinetune import testing
from kfinetune.layers import prompt_wrappers
from kfinetune.peft import injected

FAMILIES = [f for f in testing.CAUSAL_LM_FAMILIES if f != "gpt2"]
LENGTH = 3
# Token ids standing in for the prefix or the prompts in the references.
CONTEXT = [7, 12, 30]
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def x():
    return testing.small_gpt2_inputs(batch_size=2, sequence_length=10)


def call(model, x):
    return keras.ops.convert_to_numpy(model(x)).astype("float32")


def with_context(x):
    """`x` with the `CONTEXT` tokens in front of every row."""
    context = np.tile(np.array([CONTEXT], "int32"), (len(x["token_ids"]), 1))
    return {
        "token_ids": np.concatenate([context, x["token_ids"]], 1),
        "padding_mask": np.concatenate(
            [np.ones_like(context), x["padding_mask"]], 1
        ),
    }


def assert_trains_only(model, x, method):
    """Fits a few steps; only the method's weights change."""
    before = {v.path: v.numpy().copy() for v in model.weights}
    trainable = [v.path for v in model.trainable_weights]
    assert trainable and all(f"{method}_" in p for p in trainable), trainable
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss=LOSS, run_eagerly=True
    )
    model.fit(x, x["token_ids"], epochs=2, verbose=0)
    for v in model.weights:
        changed = np.abs(v.numpy() - before[v.path]).max() > 0
        assert changed == (v.path in trainable), v.path


def assert_padding_changes_nothing(model, x):
    changed = {k: v.copy() for k, v in x.items()}
    changed["token_ids"][x["padding_mask"] == 0] = 9
    real = x["padding_mask"] == 1
    np.testing.assert_allclose(
        call(model, changed)[real], call(model, x)[real], atol=1e-5
    )


def assert_keras_round_trip(model, x, directory):
    # `kfinetune.testing.assert_keras_round_trip` compares `predict`s,
    # which trace a function per model: slow for this many models.
    path = str(directory / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is type(model)
    np.testing.assert_allclose(call(reloaded, x), call(model, x), atol=1e-5)


def assert_generate_is_greedy_decoding(model, lm, x):
    lm.compile(sampler="greedy", run_eagerly=True)
    generated = model.generate(x, stop_token_ids=None)["token_ids"]
    np.testing.assert_array_equal(generated, testing.greedy_decoding(model, x))


def context_cache(lm):
    """The base model's key/value cache of `CONTEXT`, per layer."""
    backbone = lm.backbone
    head_dim = getattr(backbone, "head_dim", None) or (
        backbone.hidden_dim // backbone.num_query_heads
    )
    shape = (1, backbone.num_layers, 2, LENGTH)
    shape += (backbone.num_key_value_heads, head_dim)
    ids = np.array([CONTEXT], "int32")
    _, _, cache = lm.call_with_cache(ids, keras.ops.zeros(shape), 0)
    return keras.ops.convert_to_numpy(cache)[0]


@pytest.fixture(scope="module", params=FAMILIES)
def prefixed(request, x):
    """A model with a reparameterised prefix, trained a little, and its
    outputs when its merged prefix was, before training, the base model's
    own keys and values of `CONTEXT`, with what the base model gives with
    `CONTEXT` in front of the text."""
    lm = testing.small_causal_lm(request.param)
    base = call(lm, x)
    reference = call(lm, with_context(x))[:, LENGTH:]
    cache = context_cache(lm)
    model = peft.apply(lm, peft.PrefixConfig(length=LENGTH, hidden=8))
    layers = [layer.path for layer in lm.backbone.transformer_layers]
    wrappers = injected.wrappers(model)
    assert len(wrappers) == len(layers)
    peft.merge(model)
    for wrapper in wrappers:
        index = layers.index(wrapper.path.split("/")[0])
        wrapper.prefix_key.assign(cache[index, 0])
        wrapper.prefix_value.assign(cache[index, 1])
    with_cache_prefix = call(model, x)
    peft.unmerge(model)
    assert_trains_only(model, x, "prefix")
    return model, lm, base, reference, with_cache_prefix


def test_prefix_of_context_keys_and_values_equals_the_context_in_front(
    prefixed,
):
    # Unrotated prefix keys at cache positions 0..2, real tokens behind:
    # exactly the base model reading CONTEXT first, in every layer.
    _, _, base, reference, with_cache_prefix = prefixed
    np.testing.assert_allclose(with_cache_prefix, reference, atol=1e-4)
    assert np.abs(with_cache_prefix - base).max() > 1e-2


def test_prefix_merges_masks_padding_round_trips_and_generates(
    prefixed, x, tmp_path
):
    model, lm, *_ = prefixed
    trained = call(model, x)
    peft.merge(model)
    assert not any("prefix_mlp" in v.path for v in model.trainable_weights)
    np.testing.assert_allclose(call(model, x), trained, atol=1e-5)
    assert_padding_changes_nothing(model, x)
    assert_keras_round_trip(model, x, tmp_path)
    assert_generate_is_greedy_decoding(model, lm, x)


@pytest.fixture(scope="module", params=FAMILIES)
def prompted(request, x):
    """A trained model whose prompts start as the token embeddings of
    `CONTEXT`, and what the base model gives with `CONTEXT` in front."""
    lm = testing.small_causal_lm(request.param)
    base = call(lm, x)
    reference = call(lm, with_context(x))[:, LENGTH:]
    model = peft.apply(
        lm, peft.PromptConfig(length=LENGTH, init="text", text=CONTEXT)
    )
    before = call(model, x)
    assert_trains_only(model, x, "prompt")
    return model, lm, base, reference, before


def test_prompts_of_context_embeddings_equal_the_context_in_front(prompted):
    # Also in Gemma: the prompts are scaled by sqrt(hidden_dim) like the
    # token embeddings, and the real tokens sit at rotary positions 3...
    model, lm, base, reference, before = prompted
    np.testing.assert_allclose(before, reference, atol=1e-4)
    assert np.abs(before - base).max() > 1e-2
    first = lm.backbone.transformer_layers[0]
    assert first.name == "prompt_default" and first.insert


def test_prompt_padding_round_trip_and_cached_generation(prompted, x, tmp_path):
    model, lm, *_ = prompted
    shape = (*x["token_ids"].shape, len(testing.VOCABULARY))
    assert call(model, x).shape == shape
    assert_padding_changes_nothing(model, x)
    assert_keras_round_trip(model, x, tmp_path)
    assert_generate_is_greedy_decoding(model, lm, x)


def test_prompts_elsewhere_than_before_the_first_token_do_not_generate(x):
    lm = testing.small_causal_lm("llama")
    model = peft.apply(lm, peft.PromptConfig(length=2, position=1))
    assert call(model, x).shape[1] == x["token_ids"].shape[1]
    with pytest.raises(NotImplementedError, match="position=1"):
        model.generate(x, stop_token_ids=None)


def test_prompts_only_before_the_first_decoder_layer():
    lm = testing.small_causal_lm("qwen")
    state = testing.model_state(lm)
    with pytest.raises(ValueError, match="before the first decoder layer"):
        peft.apply(
            lm, peft.PromptConfig(length=2, targets="transformer_layer_1")
        )
    testing.assert_model_unchanged(lm, state)


def test_a_prefixed_decoder_attention_needs_the_cache_index_with_a_cache():
    lm = testing.small_causal_lm("mistral")
    peft.apply(lm, peft.PrefixConfig(length=2, reparameterize=False))
    attention = lm.backbone.transformer_layers[0]._self_attention_layer
    assert isinstance(attention, layers.PrefixAttention)
    hidden = np.zeros((1, 1, 32), "float32")
    with pytest.raises(ValueError, match="cache_update_index=None"):
        attention(hidden_states=hidden, cache=keras.ops.zeros((1, 2, 4, 2, 8)))
    mha = layers.PrefixAttention(
        keras.layers.MultiHeadAttention(num_heads=2, key_dim=4), length=2
    )
    with pytest.raises(ValueError, match="value=None"):
        mha(hidden, hidden_states=hidden)


@pytest.mark.parametrize(
    "arguments, message",
    [({"insert": 1}, "insert=1"), ({"scale": 0.0}, "scale=0.0")],
)
def test_prompt_mask_bad_arguments(arguments, message):
    decoder = keras_hub.layers.TransformerDecoder(16, num_heads=2)
    with pytest.raises(ValueError, match=message):
        prompt_wrappers.PromptMask(decoder, length=2, **arguments)
