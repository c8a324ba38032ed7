import keras
import numpy as np
import pytest

from kfinetune import layers
from kfinetune import peft
from kfinetune import testing
from kfinetune.peft import injected

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
CONFIG = peft.PrefixConfig(length=3, hidden=16)


@pytest.fixture
def data():
    x = testing.small_bert_inputs(batch_size=8)
    return x, (np.arange(8) % 2).astype("int32")


def prefixed():
    return peft.apply(testing.small_bert_classifier(), CONFIG)


def with_padding_changed(x):
    changed = {k: v.copy() for k, v in x.items()}
    changed["token_ids"][changed["padding_mask"] == 0] = 9
    assert (changed["token_ids"] != x["token_ids"]).any()
    return changed


def test_attention_weights_on_prefix_and_padding():
    model = prefixed()
    wrapper = injected.wrappers(model)[0]
    x = testing.small_bert_inputs(batch_size=4)
    hidden = np.random.default_rng(0).normal(size=(4, 16, 32))
    hidden = hidden.astype("float32")
    mask = x["padding_mask"][:, None, :]
    _, weights = wrapper(
        hidden, hidden, attention_mask=mask, return_attention_scores=True
    )
    weights = keras.ops.convert_to_numpy(weights)
    assert weights.shape == (4, 4, 16, 3 + 16)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    # Every query attends to every prefix position, never to padding.
    assert (weights[..., :3] > 0).all()
    padded = np.broadcast_to(
        x["padding_mask"][:, None, None, :] == 0, weights[..., 3:].shape
    )
    assert padded.any()
    assert (weights[..., 3:][padded] == 0).all()


def test_matches_attention_over_concatenated_keys_and_values():
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    wrapper = layers.PrefixAttention(attention, length=2, reparameterize=False)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 8)).astype("float32")
    mask = np.ones((3, 5, 5), "int32")
    mask[0, :, 3:] = 0
    actual = keras.ops.convert_to_numpy(wrapper(x, x, attention_mask=mask))
    q = keras.ops.convert_to_numpy(attention.query_dense(x)) / 2.0
    k = keras.ops.convert_to_numpy(attention.key_dense(x))
    v = keras.ops.convert_to_numpy(attention.value_dense(x))
    pk = np.broadcast_to(wrapper.prefix_key.numpy(), (3, 2, 2, 4))
    pv = np.broadcast_to(wrapper.prefix_value.numpy(), (3, 2, 2, 4))
    k, v = np.concatenate([pk, k], 1), np.concatenate([pv, v], 1)
    scores = np.einsum("btnh,bsnh->bnts", q, k)
    full_mask = np.concatenate([np.ones((3, 5, 2)), mask], -1)[:, None]
    scores = np.where(full_mask > 0, scores, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = np.einsum("bnts,bsnh->btnh", probs, v)
    expected = keras.ops.convert_to_numpy(attention.output_dense(out))
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_padding_tokens_do_not_change_outputs_and_base_stays_frozen(data):
    x, y = data
    model = prefixed()
    base_weights = {
        v.path: v.numpy().copy()
        for v in model.base.weights
        if "prefix_" not in v.path and not v.path.startswith("logits")
    }
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=2, verbose=0)
    for v in model.base.weights:
        if v.path in base_weights:
            np.testing.assert_array_equal(v.numpy(), base_weights[v.path])
    expected = testing.predict(model, x)
    testing.assert_outputs_close(
        testing.predict(model, with_padding_changed(x)), expected, atol=1e-6
    )
    with peft.disable(model):
        disabled = testing.predict(model, x)
    base = testing.small_bert_classifier()
    base.get_layer("logits").set_weights(
        model.base.get_layer("logits").get_weights()
    )
    testing.assert_outputs_close(disabled, testing.predict(base, x))


def test_folded_prefix_equals_reparameterised_and_round_trips(data, tmp_path):
    x, y = data
    model = prefixed()
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=2, verbose=0)
    trained = testing.predict(model, x)
    info = peft.summary(model, print_fn=lambda line: None)
    # Per layer: the MLP (3×32 embedding, 32×16 + 16, 16×64 + 64) and the
    # folded keys and values (2 × 3×4×8, not trained).
    assert info["adapters"]["default"]["parameters"] == 2 * (
        96 + 528 + 1088 + 192
    )
    peft.merge(model)
    assert not any(
        "prefix_mlp" in v.path or "prefix_embedding" in v.path
        for v in model.trainable_weights
    )
    testing.assert_outputs_close(testing.predict(model, x), trained, atol=1e-5)
    reloaded = testing.assert_keras_round_trip(model, x, str(tmp_path))
    assert reloaded.adapters["default"].merged
    testing.assert_saved_model_round_trip(model, x, str(tmp_path / "sm"))
    peft.unmerge(model)
    testing.assert_outputs_close(testing.predict(model, x), trained, atol=1e-5)
    (tmp_path / "unmerged").mkdir()
    testing.assert_keras_round_trip(model, x, str(tmp_path / "unmerged"))


def test_adapter_file_into_a_fresh_model(data, tmp_path):
    x, y = data
    model = prefixed()
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=1, verbose=0)
    expected = testing.predict(model, x)
    peft.save(model, tmp_path / "prefix.h5")
    loaded = peft.load(testing.small_bert_classifier(), tmp_path / "prefix.h5")
    testing.assert_outputs_close(testing.predict(loaded, x), expected)


def test_plain_prefix_trains_keys_and_values(data):
    x, y = data
    model = peft.apply(
        testing.small_bert_classifier(),
        peft.PrefixConfig(length=2, reparameterize=False),
    )
    paths = [v.path for v in model.trainable_weights if "prefix_" in v.path]
    assert (
        sorted(p.rsplit("/", 1)[1] for p in paths)
        == ["prefix_key"] * 2 + ["prefix_value"] * 2
    )
    before = testing.predict(model, x)
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=1, verbose=0)
    assert np.abs(testing.predict(model, x) - before).max() > 1e-4


def test_xla_mirrored_and_bfloat16(data):
    x, y = data
    testing.assert_jit_compile_consistent(prefixed, x, y)
    testing.assert_mirrored_consistent(prefixed, x, y)
    model = testing.assert_bfloat16_close(prefixed, x)
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=1, verbose=0)


def test_gpt2_prefix_causal_padding_and_cached_decoding():
    lm = testing.small_gpt2_causal_lm()
    model = peft.apply(lm, peft.PrefixConfig(length=3, hidden=16))
    x = testing.small_gpt2_inputs(batch_size=4)
    logits = testing.predict(model, x)
    # Causal: changing the last token changes no earlier position's logits.
    changed = {k: v.copy() for k, v in x.items()}
    changed["token_ids"][:, -1] = 9
    np.testing.assert_allclose(
        testing.predict(model, changed)[:, :-1], logits[:, :-1], atol=1e-5
    )
    # Padding: token ids under padding change nothing at real positions.
    changed = {k: v.copy() for k, v in x.items()}
    changed["token_ids"][x["padding_mask"] == 0] = 9
    real = x["padding_mask"] == 1
    np.testing.assert_allclose(
        testing.predict(model, changed)[real], logits[real], atol=1e-5
    )
    # The key/value cache holds the real tokens; the prefix joins at every
    # step, so token-by-token decoding gives the full forward's logits.
    row = int(np.argmax(x["padding_mask"].sum(1)))
    real = int(x["padding_mask"][row].sum())
    assert real > 8
    ids = keras.ops.convert_to_tensor(x["token_ids"][row : row + 1])
    cache = keras.ops.zeros((1, 2, 2, 16, 4, 8))
    for index in range(real):
        step, _, cache = lm.call_with_cache(
            ids[:, index : index + 1], cache, index
        )
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(step)[0, 0],
            logits[row, index],
            atol=1e-4,
        )
    generated = lm.generate(x, stop_token_ids=None)
    assert generated["token_ids"].shape == (4, 16)


def test_prefix_attention_layer_in_a_new_model(tmp_path):
    tokens = keras.Input((None, 16))
    mask = keras.Input((None,), dtype="int32")
    attention = layers.PrefixAttention(
        keras.layers.MultiHeadAttention(num_heads=2, key_dim=8),
        length=4,
        hidden=8,
    )
    hidden = attention(tokens, tokens, attention_mask=mask[:, None, :])
    outputs = keras.layers.Dense(2)(
        keras.layers.GlobalAveragePooling1D()(hidden)
    )
    model = keras.Model([tokens, mask], outputs)
    x = [
        np.random.default_rng(0).normal(size=(4, 6, 16)).astype("float32"),
        np.ones((4, 6), "int32"),
    ]
    testing.compile_and_build(model, optimizer="adam", loss=LOSS)
    model.fit(x, np.arange(4) % 2, epochs=1, verbose=0)
    testing.assert_keras_round_trip(model, x, str(tmp_path))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: peft.PrefixConfig(length=0), "length=0"),
        (lambda: peft.PrefixConfig(length=-2), "length=-2"),
        (lambda: peft.PrefixConfig(length=4, hidden=0), "hidden=0"),
        (lambda: peft.PrefixConfig(length=4, reparameterize="yes"), "'yes'"),
        (
            lambda: layers.PrefixAttention(keras.layers.Dense(3), length=2),
            "Dense",
        ),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_model_without_attention_is_refused_and_unchanged():
    inputs = keras.Input((8,))
    model = keras.Model(
        inputs, keras.layers.Dense(2)(keras.layers.Dense(4)(inputs))
    )
    state = testing.model_state(model)
    with pytest.raises(ValueError, match="MultiHeadAttention"):
        peft.apply(model, peft.PrefixConfig(length=4))
    testing.assert_model_unchanged(model, state)
    bert = testing.small_bert_classifier()
    state = testing.model_state(bert)
    with pytest.raises(ValueError, match="not a MultiHeadAttention"):
        peft.apply(bert, peft.PrefixConfig(length=4, targets=".*/query"))
    testing.assert_model_unchanged(bert, state)
