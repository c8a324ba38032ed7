import keras
import numpy as np
import pytest

from kfinetune import layers
from kfinetune import peft
from kfinetune import testing
from kfinetune.layers import einsum


def test_einsum_equations_treat_the_kernel_as_a_matrix():
    query = einsum.low_rank_equations("abc,cde->abde")
    assert query["a_axes"] == [0] and query["b_axes"] == [1, 2]
    assert query["down"] == "abc,cf->abf"
    assert query["up"] == "abf,fde->abde"
    output = einsum.low_rank_equations("abcd,cde->abe")
    assert output["a_axes"] == [0, 1] and output["b_axes"] == [2]


def dense_model(layer, input_dim=8):
    inputs = keras.Input((input_dim,))
    return keras.Model(inputs, layer(inputs))


def test_lora_dense_is_exact_at_init_trains_only_a_and_b(tmp_path):
    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(6, activation="gelu")
    base = dense_model(dense)
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    y = np.random.default_rng(1).normal(size=(32, 6)).astype("float32")
    expected = testing.predict(base, x)
    lora = layers.LoRA(dense, rank=2, alpha=4)
    model = dense_model(lora)
    testing.assert_outputs_close(testing.predict(model, x), expected)
    assert {v.path.split("/")[-1] for v in model.trainable_weights} == {
        "lora_a",
        "lora_b",
    }
    kernel = dense.kernel.numpy().copy()
    a_before, b_before = lora.lora_a.numpy().copy(), lora.lora_b.numpy()
    np.testing.assert_array_equal(b_before, 0.0)
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss="mse"
    )
    model.fit(x, y, epochs=3, verbose=0)
    np.testing.assert_array_equal(dense.kernel.numpy(), kernel)
    np.testing.assert_array_equal(dense.bias.numpy(), 0.0)
    assert not np.allclose(lora.lora_a.numpy(), a_before)
    assert not np.allclose(lora.lora_b.numpy(), b_before)
    # The update goes before the activation: gelu(x·W + b + 2·x·A·B).
    a, b = lora.lora_a.numpy(), lora.lora_b.numpy()
    manual = keras.activations.gelu(
        x @ (kernel + 2.0 * a @ b) + dense.bias.numpy()
    )
    trained = testing.predict(model, x)
    testing.assert_outputs_close(trained, manual, atol=1e-5)
    lora.merge()
    model.make_predict_function(force=True)
    testing.assert_outputs_close(testing.predict(model, x), trained, atol=1e-4)
    lora.unmerge()
    np.testing.assert_allclose(dense.kernel.numpy(), kernel, atol=1e-6)
    # The traced predict function still runs the merged path (fact 5).
    model.make_predict_function(force=True)
    testing.assert_outputs_close(testing.predict(model, x), trained, atol=1e-5)
    testing.assert_keras_round_trip(model, x, str(tmp_path))


def test_lora_einsum_attention_projection_parameter_count():
    dense = keras.layers.EinsumDense(
        "abc,cde->abde", output_shape=(None, 4, 8), bias_axes="de"
    )
    dense.build((None, None, 32))
    lora = layers.LoRA(dense, rank=3)
    lora.build((None, None, 32))
    # Standard LoRA: A is d_in × r and B is r × d_out with d_out = 4 · 8.
    assert lora.lora_a.shape == (32, 3)
    assert lora.lora_b.shape == (3, 4, 8)
    x = np.random.default_rng(0).normal(size=(2, 5, 32)).astype("float32")
    lora.lora_b.assign(np.ones(lora.lora_b.shape, "float32"))
    out = lora(x)
    manual = np.einsum("abc,cde->abde", x, dense.kernel.numpy()) + np.einsum(
        "abr,rde->abde", x @ lora.lora_a.numpy(), lora.lora_b.numpy()
    )
    np.testing.assert_allclose(out, manual + dense.bias.numpy(), atol=1e-4)


def test_lora_embedding_merges_exactly():
    embedding = keras.layers.Embedding(20, 6)
    inputs = keras.Input((5,), dtype="int32")
    model = keras.Model(inputs, layers.LoRA(embedding, rank=2)(inputs))
    lora = model.layers[-1]
    ids = np.random.default_rng(0).integers(0, 20, (4, 5))
    base = np.take(embedding.embeddings.numpy(), ids, axis=0)
    testing.assert_outputs_close(testing.predict(model, ids), base)
    lora.lora_a.assign(np.ones(lora.lora_a.shape, "float32"))
    model.make_predict_function(force=True)
    adapted = testing.predict(model, ids)
    assert not np.allclose(adapted, base)
    lora.merge()
    model.make_predict_function(force=True)
    testing.assert_outputs_close(
        testing.predict(model, ids), adapted, atol=1e-5
    )


class TiedLanguageModel(keras.Model):
    """A subclassed model using one `ReversibleEmbedding` both ways: the
    lookup and the projection back to the vocabulary."""

    def __init__(self, tie_weights, **kwargs):
        super().__init__(**kwargs)
        self.tie_weights = tie_weights
        self.embedding = keras.layers.ReversibleEmbedding(
            20, 6, tie_weights=tie_weights, logit_soft_cap=30.0
        )
        self.mix = keras.layers.Dense(6)

    def call(self, ids):
        return self.embedding(self.mix(self.embedding(ids)), reverse=True)

    def get_config(self):
        return {**super().get_config(), "tie_weights": self.tie_weights}


@pytest.mark.parametrize("tie_weights", [True, False])
def test_lora_on_a_reversible_embedding_adapts_the_table_in_both_uses(
    tie_weights,
):
    keras.utils.set_random_seed(0)
    base_model = TiedLanguageModel(tie_weights)
    ids = np.random.default_rng(0).integers(0, 20, (4, 5))
    base = testing.predict(base_model, ids)
    embedding = base_model.embedding
    # One layer object, one attribute: called both ways, wrapped once.
    model = peft.apply(
        base_model,
        peft.LoRAConfig(rank=2, alpha=4, targets=[embedding.path]),
    )
    lora = base_model.embedding
    assert isinstance(lora, layers.LoRA) and lora.layer is embedding
    testing.assert_outputs_close(testing.predict(model, ids), base)
    lora.lora_a.assign(np.full(lora.lora_a.shape, 0.5, "float32"))
    model.make_predict_function(force=True)
    adapted = testing.predict(model, ids)
    assert not np.allclose(adapted, base)
    # By hand: the lookup uses the adapted table; so does the tied
    # projection, while an untied one keeps its own weight.
    table = embedding.embeddings.numpy() + 2.0 * (
        lora.lora_a.numpy() @ lora.lora_b.numpy()
    )
    hidden = model.mix(np.take(table, ids, axis=0)).numpy()
    output = table.T if tie_weights else embedding.reverse_embeddings.numpy()
    expected = 30.0 * np.tanh(hidden @ output / 30.0)
    np.testing.assert_allclose(adapted, expected, rtol=1e-5, atol=1e-5)
    # Merged, the one table carries the update for both uses.
    lora.merge()
    model.make_predict_function(force=True)
    testing.assert_outputs_close(
        testing.predict(model, ids), adapted, atol=1e-5
    )
    with pytest.raises(ValueError, match=r"no reverse projection"):
        layers.LoRA(keras.layers.Embedding(20, 6), rank=2)(
            np.zeros((1, 6), "float32"), reverse=True
        )


def test_scale_is_alpha_over_rank():
    assert layers.LoRA(keras.layers.Dense(4), rank=2, alpha=8).scale == 4.0
    assert layers.LoRA(keras.layers.Dense(4), rank=2).scale == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rank": 0}, "rank=0"),
        ({"rank": 2.5}, "rank=2.5"),
        ({"rank": 2, "alpha": 0}, "alpha=0"),
        ({"rank": 2, "dropout": 1.0}, "dropout=1.0"),
        ({"rank": 2, "dropout": -0.1}, "dropout=-0.1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.LoRA(keras.layers.Dense(4), **kwargs)


def test_rank_larger_than_the_kernel_is_refused():
    lora = layers.LoRA(keras.layers.Dense(4), rank=5)
    with pytest.raises(ValueError, match=r"at most min\(d_in, d_out\) = 4"):
        lora.build((None, 8))


def test_unsupported_layers_are_refused():
    with pytest.raises(ValueError, match="not Dense, EinsumDense or Embedding"):
        layers.LoRA(keras.layers.Conv1D(4, 3), rank=2)
    dense = keras.layers.Dense(4)
    dense.build((None, 8))
    dense.enable_lora(2)
    with pytest.raises(ValueError, match="built-in LoRA"):
        layers.LoRA(dense, rank=2)
