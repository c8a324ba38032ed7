import keras
import numpy as np
import pytest

from kfinetune import compat
from kfinetune import layers
from kfinetune import peft
from kfinetune import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
CONFIG = peft.PromptConfig(length=3, init="vocab")


@pytest.fixture
def data():
    x = testing.small_bert_inputs(batch_size=8)
    return x, (np.arange(8) % 2).astype("int32")


def prompted():
    return peft.apply(testing.small_bert_classifier(), CONFIG)


def with_padding_changed(x):
    changed = {k: v.copy() for k, v in x.items()}
    changed["token_ids"][changed["padding_mask"] == 0] = 9
    assert (changed["token_ids"] != x["token_ids"]).any()
    return changed


def test_sequence_output_keeps_its_length_and_pooler_reads_cls(data):
    x, _ = data
    model = prompted()
    backbone = model.backbone
    outputs = backbone(x)
    assert tuple(outputs["sequence_output"].shape) == (8, 16, 32)
    # The pooler reads position 0 of the stripped sequence: [CLS].
    pooled = backbone.pooled_dense(outputs["sequence_output"][:, 0, :])
    testing.assert_outputs_close(outputs["pooled_output"], pooled, atol=1e-6)
    # Inside, the encoders see the prompts at 1..3, right after [CLS].
    insertion = backbone.get_layer("prompt_default")
    embedded = insertion(
        backbone.embeddings_add(
            (
                backbone.token_embedding(x["token_ids"]),
                backbone.position_embedding(
                    backbone.token_embedding(x["token_ids"])
                ),
                backbone.segment_embedding(x["segment_ids"]),
            )
        )
    )
    assert tuple(embedded.shape) == (8, 19, 32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(embedded)[0, 1:4],
        insertion.prompt_embeddings.numpy(),
    )
    # And the prompts change what [CLS] sees.
    with peft.disable(model):
        assert (
            np.abs(
                keras.ops.convert_to_numpy(backbone(x)["pooled_output"])
                - keras.ops.convert_to_numpy(outputs["pooled_output"])
            ).max()
            > 1e-3
        )


def test_padding_tokens_do_not_change_outputs_and_only_prompts_train(data):
    x, y = data
    model = prompted()
    frozen = {
        v.path: v.numpy().copy()
        for v in model.base.weights
        if "prompt_" not in v.path and not v.path.startswith("logits")
    }
    assert [v.path for v in model.trainable_weights] == [
        "embeddings_layer_norm/prompt_default/prompt_embeddings",
        "logits/kernel",
        "logits/bias",
    ]
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=2, verbose=0)
    for v in model.base.weights:
        if v.path in frozen:
            np.testing.assert_array_equal(v.numpy(), frozen[v.path])
    expected = testing.predict(model, x)
    testing.assert_outputs_close(
        testing.predict(model, with_padding_changed(x)), expected, atol=1e-6
    )


def test_disable_delete_and_round_trips(data, tmp_path):
    x, y = data
    base = testing.small_bert_classifier()
    reference = testing.predict(base, x)
    model = peft.apply(base, CONFIG)
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=1, verbose=0)
    trained = testing.predict(model, x)
    testing.assert_keras_round_trip(model, x, str(tmp_path))
    testing.assert_saved_model_round_trip(model, x, str(tmp_path / "sm"))
    peft.save(model, tmp_path / "prompt.h5")
    loaded = peft.load(testing.small_bert_classifier(), tmp_path / "prompt.h5")
    testing.assert_outputs_close(testing.predict(loaded, x), trained)
    info = peft.summary(model, print_fn=lambda line: None)
    assert info["adapters"]["default"]["parameters"] == 3 * 32
    peft.delete(model, "default")
    names = [layer.name for layer in base.backbone.layers]
    assert "embeddings_layer_norm" in names and "transformer_layer_1" in names
    assert not any(name.startswith("prompt_") for name in names)
    head = base.get_layer("logits")
    fresh = testing.small_bert_classifier()
    fresh.get_layer("logits").set_weights(head.get_weights())
    testing.assert_outputs_close(
        testing.predict(model, x), testing.predict(fresh, x)
    )
    assert np.abs(testing.predict(fresh, x) - reference).max() > 0


def test_xla_mirrored_and_bfloat16(data):
    x, y = data
    testing.assert_jit_compile_consistent(prompted, x, y)
    testing.assert_mirrored_consistent(prompted, x, y)
    model = testing.assert_bfloat16_close(prompted, x)
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=1, verbose=0)


def test_initialisations():
    base = testing.small_bert_classifier(sequence_length=16)
    backbone = base.backbone
    tokenizer = base.preprocessor.tokenizer
    ids = [int(i) for i in tokenizer("good movie")]
    model = peft.apply(
        base, peft.PromptConfig(length=3, init="text", text="good movie")
    )
    prompts = backbone.get_layer("prompt_default").prompt_embeddings.numpy()
    # The text's tokens, repeated to fill the length, through the
    # embedding layer norm the prompts enter after.
    rows = backbone.token_embedding.embeddings.numpy()[ids + ids[:1]]
    layer_norm = backbone.get_layer("prompt_default").layer
    np.testing.assert_allclose(
        prompts, keras.ops.convert_to_numpy(layer_norm(rows)), atol=1e-6
    )
    assert model.adapters["default"].config.text == "good movie"
    by_ids = peft.PromptConfig(
        length=3, init="text", text="good movie", tokenizer=tokenizer
    )
    assert by_ids.text == ids
    random = peft.apply(
        testing.small_bert_classifier(), peft.PromptConfig(length=50)
    )
    values = random.backbone.get_layer("prompt_default").prompt_embeddings
    assert 0.3 < float(np.std(values.numpy())) < 3.0


def test_gpt2_prompts_before_the_first_token_and_cached_generation():
    lm = testing.small_gpt2_causal_lm()
    x = testing.small_gpt2_inputs(batch_size=4)
    model = peft.apply(lm, peft.PromptConfig(length=2))
    insertion = lm.backbone.get_layer("prompt_default")
    assert insertion.position == 0
    assert insertion.layer.name == "embeddings_add"
    logits = testing.predict(model, x)
    assert logits.shape == (4, 16, len(testing.VOCABULARY))
    changed = {k: v.copy() for k, v in x.items()}
    changed["token_ids"][:, -1] = 9
    np.testing.assert_allclose(
        testing.predict(model, changed)[:, :-1], logits[:, :-1], atol=1e-5
    )
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, x["token_ids"], epochs=1, verbose=0)
    # The cache holds the prompts' keys and values in front of the tokens'.
    lm.compile(sampler="greedy", run_eagerly=True)
    generated = model.generate(x, stop_token_ids=None)["token_ids"]
    np.testing.assert_array_equal(generated, testing.greedy_decoding(model, x))


def test_prompt_embedding_layer_in_a_new_model(tmp_path):
    tokens = keras.Input((None,), dtype="int32")
    mask = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(20, 16)(tokens)
    prompted_seq, prompted_mask = layers.PromptEmbedding(length=4, position=1)(
        embedded, padding_mask=mask
    )
    hidden = keras.layers.MultiHeadAttention(2, 8)(
        prompted_seq, prompted_seq, attention_mask=prompted_mask[:, None, :]
    )
    model = keras.Model([tokens, mask], keras.layers.Dense(2)(hidden[:, 0]))
    x = [np.arange(24).reshape(4, 6) % 20, np.ones((4, 6), "int32")]
    testing.compile_and_build(model, optimizer="adam", loss=LOSS)
    model.fit(x, np.arange(4) % 2, epochs=1, verbose=0)
    testing.assert_keras_round_trip(model, x, str(tmp_path))
    layer = layers.PromptEmbedding(length=2, position=1)
    out, out_mask = layer(
        np.zeros((1, 3, 4), "float32"), padding_mask=np.array([[1, 1, 0]])
    )
    np.testing.assert_array_equal(out_mask, [[1, 1, 1, 1, 0]])
    np.testing.assert_allclose(out[0, 1:3], layer.prompt_embeddings.numpy())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: peft.PromptConfig(length=0), "length=0"),
        (lambda: peft.PromptConfig(length=-1), "length=-1"),
        (lambda: peft.PromptConfig(length=4, init="zeros"), "init='zeros'"),
        (lambda: peft.PromptConfig(length=4, init="text"), "text=None"),
        (
            lambda: peft.PromptConfig(length=4, text="hello"),
            "only used with init='text'",
        ),
        (
            lambda: peft.PromptConfig(length=2, init="text", text=[5, 6, 7]),
            "3 tokens, more than length=2",
        ),
        (lambda: peft.PromptConfig(length=2, position=-1), "position=-1"),
        (lambda: layers.PromptEmbedding(length=0), "length=0"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "build, config, message",
    [
        (
            lambda: testing.small_bert_classifier(sequence_length=16),
            peft.PromptConfig(
                length=2, init="text", text="good movie that was bad"
            ),
            "5 tokens, more than length=2",
        ),
        (
            testing.small_bert_classifier,
            peft.PromptConfig(length=2, init="text", text="good movie"),
            "needs a tokenizer",
        ),
        (
            lambda: keras.Sequential(
                [keras.Input((4,)), keras.layers.Dense(2)]
            ),
            peft.PromptConfig(length=2),
            "cannot find the embedding output",
        ),
        (
            testing.small_bert_classifier,
            peft.PromptConfig(length=2, targets="logits"),
            "no keras-hub TransformerEncoder",
        ),
    ],
)
def test_unsupported_models_are_refused_and_unchanged(build, config, message):
    model = build()
    state = testing.model_state(model)
    with pytest.raises(ValueError, match=message):
        peft.apply(model, config)
    testing.assert_model_unchanged(model, state)


def test_second_prompt_adapter_is_refused():
    model = prompted()
    with pytest.raises(ValueError, match="already has soft prompts"):
        peft.apply(model, CONFIG, name="other")


def test_failure_midway_puts_every_graph_node_back(monkeypatch):
    model = testing.small_bert_classifier()
    x = testing.small_bert_inputs()
    expected = testing.predict(model, x)
    state = testing.model_state(model)
    original = compat.replace_node
    calls = []

    def failing(graph, old, new):
        calls.append(old)
        if len(calls) == 3:
            raise RuntimeError("injected failure")
        original(graph, old, new)

    monkeypatch.setattr(compat, "replace_node", failing)
    with pytest.raises(RuntimeError, match="injected failure"):
        peft.apply(model, CONFIG)
    monkeypatch.setattr(compat, "replace_node", original)
    testing.assert_model_unchanged(model, state)
    testing.assert_outputs_close(testing.predict(model, x), expected, atol=0)
    names = [layer.name for layer in model.backbone.layers]
    assert "embeddings_layer_norm" in names
    assert model.backbone.transformer_layers[0].name == "transformer_layer_0"


def test_prompts_with_lora_and_a_prefix_as_named_adapters(data, tmp_path):
    x, y = data
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig())
    model = peft.apply(model, CONFIG, name="prompt")
    model = peft.apply(model, peft.PrefixConfig(length=2, hidden=8), "prefix")
    peft.set_active(model, ["default", "prompt", "prefix"])
    paths = [v.path for v in model.trainable_weights]
    for method in ("lora_default", "prompt_prompt", "prefix_prefix"):
        assert any(method in path for path in paths), method
    testing.compile_and_build(
        model, optimizer=keras.optimizers.Adam(1e-2), loss=LOSS
    )
    model.fit(x, y, epochs=1, verbose=0)
    reloaded = testing.assert_keras_round_trip(model, x, str(tmp_path))
    assert reloaded.active == ["default", "prompt", "prefix"]
    peft.set_active(model, "default")
    only_lora = testing.predict(model, x)
    peft.delete(model, "prompt")
    peft.delete(model, "prefix")
    testing.assert_outputs_close(testing.predict(model, x), only_lora)


def test_bart_prompts_go_before_the_encoder_and_generate():
    lm = testing.small_seq2seq_lm(num_layers=1)
    model = peft.apply(lm, peft.PromptConfig(length=2))
    # As in Hugging Face PEFT, the prompts extend the encoder's input only.
    insertion = lm.backbone.get_layer("prompt_default")
    assert insertion.layer.name == "encoder_embeddings_layer_norm"
    wrapped = [
        layer.name
        for layer in lm.backbone.layers
        if layer.name.startswith("prompt_default_")
    ]
    assert wrapped == ["prompt_default_transformer_encoder_layer_0"]
    x = testing.small_seq2seq_inputs()
    logits = testing.predict(model, x)
    changed = {k: v.copy() for k, v in x.items()}
    changed["encoder_token_ids"][x["encoder_padding_mask"] == 0] = 9
    np.testing.assert_allclose(
        testing.predict(model, changed), logits, atol=1e-5
    )
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    model.fit(x, x["decoder_token_ids"], epochs=1, verbose=0)
    # keras-hub's generate() runs the encoder's layers through the
    # backbone's attributes, which hold the wrappers.
    lm.compile(sampler="greedy", run_eagerly=True)
    query = dict(x)
    query["decoder_padding_mask"] = np.zeros_like(x["decoder_padding_mask"])
    query["decoder_padding_mask"][:, :2] = 1
    generated = model.generate(query, stop_token_ids=None)
    np.testing.assert_array_equal(
        generated["decoder_token_ids"], testing.greedy_decoding(model, query)
    )
