"""Every task model on every keras-hub encoder family of
`kfinetune.encoders`: LoRA, a few training steps, `.keras` save and load,
SavedModel export and reload, on tiny random encoders.

Token ids are drawn directly: tokenization is not the point here (the
data classes' tokenizer tests cover it).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kfinetune as kft
from kfinetune import encoders
from kfinetune import multitask
from kfinetune import peft
from kfinetune import testing

FAMILIES = sorted(testing.FAMILY_NAMES)
TASKS = ("text_classifier", "token_softmax", "token_crf", "qa", "multitask")
LENGTH = 8
ROWS = 4
NUM_TAGS = 3
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _backbone(family):
    return testing.small_backbone(family, num_layers=1, seed=1)


@pytest.fixture(scope="module")
def rows():
    """Four rows of 8 tokens, the last two rows padded; segment 0 then 1
    (a question, then its context)."""
    rng = np.random.default_rng(0)
    lengths = np.array([8, 8, 6, 5])
    positions = np.arange(LENGTH)[None, :]
    padding_mask = (positions < lengths[:, None]).astype("int32")
    token_ids = rng.integers(5, 40, (ROWS, LENGTH)).astype("int32")
    token_ids *= padding_mask
    segment_ids = ((positions >= 3) * padding_mask).astype("int32")
    # Words: two pieces for the word starting at 1, one piece elsewhere.
    word_starts = tuple(
        tuple(p for p in range(1, n - 1) if p != 2) for n in lengths
    )
    labels = np.full((ROWS, LENGTH), -1, "int32")
    weights = np.zeros((ROWS, LENGTH), "float32")
    for row, starts in enumerate(word_starts):
        for i, start in enumerate(starts):
            labels[row, start] = (row + i) % NUM_TAGS
            weights[row, start] = 1.0
        # Continuation pieces carry their word's tag, out of the loss.
        labels[row, 2] = labels[row, 1]
    aligned = kft.data.TokenLabels(
        inputs={
            "token_ids": token_ids,
            "segment_ids": np.zeros_like(token_ids),
            "padding_mask": padding_mask,
        },
        labels=labels,
        sample_weight=weights,
        word_starts=word_starts,
        num_words=tuple(len(s) for s in word_starts),
        tag_names=("O", "B-X", "I-X"),
    )
    features = kft.qa.QAFeatures(
        token_ids=token_ids,
        segment_ids=segment_ids,
        padding_mask=padding_mask,
        start_positions=np.array([3, 4, 0, 3], "int32"),
        end_positions=np.array([5, 4, 0, 4], "int32"),
        example_index=np.arange(ROWS, dtype="int32"),
        offsets=np.full((ROWS, LENGTH, 2), -1, "int32"),
        examples=(),
    )
    return {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "padding_mask": padding_mask,
        "classes": np.array([0, 1, 2, 1], "int32"),
        "aligned": aligned,
        "features": features,
    }


def _task(task, family, rows):
    """The model of `task` on a fresh encoder of `family`, its training
    batch (a `tf.data.Dataset`), its prediction inputs and its loss."""
    backbone = _backbone(family)
    x = {name: rows[name] for name in encoders.input_names(backbone)}
    aligned = rows["aligned"]
    if task == "text_classifier":
        model = kft.presets.text_classifier(3, backbone=backbone)
        data = (x, rows["classes"])
        loss = SPARSE
    elif task in ("token_softmax", "token_crf"):
        crf = task == "token_crf"
        model = kft.presets.token_classifier(
            NUM_TAGS, LENGTH, crf=crf, backbone=backbone
        )
        # The rows hold exactly the model's inputs.
        x = aligned.inputs_for(model)
        dataset = aligned.dataset(sample_weights=not crf, model=model)
        loss = kft.layers.CRFLoss() if crf else SPARSE
        return model, dataset.batch(ROWS), x, loss
    elif task == "qa":
        model = kft.qa.question_answerer(backbone, LENGTH)
        features = rows["features"]
        x = features.inputs()
        data = (x, features.targets())
        loss = {"start": SPARSE, "end": SPARSE}
    else:
        model = multitask.build(
            backbone,
            {
                "sentiment": multitask.Classification(3),
                "tags": multitask.TokenClassification(NUM_TAGS),
            },
        )
        y = {"sentiment": rows["classes"], "tags": aligned.labels}
        # Only first pieces are tagged.
        weights = {
            "sentiment": np.ones(ROWS, "float32"),
            "tags": aligned.sample_weight,
        }
        y["tags"] = np.maximum(y["tags"], 0)
        data = (x, y, weights)
        loss = {"sentiment": SPARSE, "tags": SPARSE}
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(ROWS)
    return model, dataset, x, loss


def _assert_keras_round_trip(model, x, directory):
    """`testing.assert_keras_round_trip`, calling the models eagerly:
    tracing a `predict` function costs more than one batch takes."""
    expected = model(x, training=False)
    model.save(directory / "model.keras")
    reloaded = keras.models.load_model(directory / "model.keras")
    assert type(reloaded) is type(model)
    testing.assert_outputs_close(reloaded(x, training=False), expected)


# A SavedModel export costs seconds (the CRF's decoding most, so on the
# cheapest encoder), too much for all 35 pairs: each family exports one
# task, and every task is exported by at least one family.
EXPORTED = {
    ("bert", "token_crf"),
    ("electra", "multitask"),
    ("distil_bert", "token_softmax"),
    ("albert", "text_classifier"),
    ("deberta_v3", "qa"),
    ("xlm_roberta", "token_softmax"),
    ("roberta", "text_classifier"),
}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_fit_save_load_export(family, task, rows, tmp_path):
    assert {f for f, _ in EXPORTED} == set(FAMILIES)
    assert {t for _, t in EXPORTED} == set(TASKS)
    model, dataset, x, loss = _task(task, family, rows)
    assert sorted(x) == sorted(model.input)
    model = peft.apply(model, peft.LoRAConfig(rank=2))
    lora = [w for w in model.trainable_weights if "lora" in w.path]
    assert lora
    # Eagerly: tracing the train step would cost more than the step.
    testing.compile_and_build(
        model,
        data=dataset,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=loss,
        run_eagerly=True,
    )
    before = [w.numpy() for w in lora]
    history = model.fit(dataset, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # LoRA's `B` starts at zero: training moved it.
    assert any(
        not np.array_equal(w.numpy(), b)
        for w, b in zip(lora, before, strict=True)
    )
    _assert_keras_round_trip(model, x, tmp_path)
    if (family, task) in EXPORTED:
        testing.assert_saved_model_round_trip(
            model, x, str(tmp_path / "saved_model")
        )


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_reads_its_sentence_vector_text_and_answer_span(
    family, rows
):
    backbone = _backbone(family)
    x = {name: rows[name] for name in encoders.input_names(backbone)}
    # Called eagerly: cheaper than tracing `predict` for one batch.
    features = keras.Model(
        backbone.input, encoders.outputs(backbone, backbone.input)
    )(x)
    own = backbone(x)
    if encoders.family_of(backbone).pooled_output:
        expected = own["pooled_output"]
        sequence = own["sequence_output"]
    else:
        # No pooler: the first token's state, as keras-hub's classifiers.
        expected = own[:, 0, :]
        sequence = own
    testing.assert_outputs_close(features["pooled_output"], expected)
    testing.assert_outputs_close(features["sequence_output"], sequence)

    # The family's classifier reads raw text with the family's tokenizer.
    classifier = kft.presets.text_classifier(
        2,
        backbone=backbone,
        tokenizer=testing.small_tokenizer(family),
        sequence_length=LENGTH,
    )
    assert classifier.preprocessor.sequence_length == LENGTH
    packed = classifier.preprocessor(["the movie", "a good film"])
    assert sorted(packed) == sorted(backbone.input)
    logits = keras.ops.convert_to_numpy(classifier(packed))
    assert logits.shape == (2, 2) and np.isfinite(logits).all()

    # The span head's context is segment 1, whatever the family.
    answerer = kft.qa.question_answerer(backbone, LENGTH)
    start = answerer(rows["features"].inputs())["start"]
    start = keras.ops.convert_to_numpy(start)
    allowed = (rows["segment_ids"] == 1) & (rows["padding_mask"] == 1)
    allowed[:, 0] = True
    assert (start[~allowed] == -1e9).all()
    assert (start[allowed] > -1e8).all()


@pytest.fixture(scope="module")
def gpt2():
    return testing.small_gpt2_causal_lm()


@pytest.mark.parametrize(
    "entry",
    [
        lambda b, m: kft.presets.text_classifier(2, backbone=b),
        lambda b, m: kft.presets.token_classifier(3, backbone=b, crf=True),
        lambda b, m: kft.qa.question_answerer(b),
        lambda b, m: multitask.build(b, {"sentiment": 2}),
        lambda b, m: encoders.outputs(b, b.input),
        lambda b, m: kft.active.query(
            m, {"token_ids": np.ones((3, 4), "int32")}, 1, strategy="kcenter"
        ),
    ],
    ids=["text", "tokens", "qa", "multitask", "outputs", "kcenter"],
)
def test_every_entry_point_refuses_other_families_naming_the_supported(
    entry, gpt2
):
    with pytest.raises(
        ValueError, match=r"BERT \(BertBackbone\).*Received: a GPT2Backbone"
    ):
        entry(gpt2.backbone, gpt2)


def test_text_classifier_refuses_arguments_it_cannot_use():
    backbone = _backbone("roberta")
    with pytest.raises(ValueError, match="sequence_length=16, tokenizer=None"):
        kft.presets.text_classifier(2, backbone=backbone, sequence_length=16)
    with pytest.raises(ValueError, match="backbone=None"):
        kft.presets.text_classifier(
            2, tokenizer=testing.small_tokenizer("roberta")
        )
    with pytest.raises(
        ValueError, match="`RobertaTokenizer`. Received: tokenizer=BertTok"
    ):
        kft.presets.text_classifier(
            2, backbone=backbone, tokenizer=testing.small_tokenizer("bert")
        )
    with pytest.raises(ValueError, match="Pass `preset` or `backbone`"):
        kft.presets.text_classifier(2, preset="x", backbone=backbone)
    with pytest.raises(ValueError, match="num_classes=1"):
        kft.presets.ElectraTextClassifier(_backbone("electra"), 1)
    with pytest.raises(ValueError, match="backbone=RobertaBackbone"):
        kft.presets.ElectraTextClassifier(backbone, 2)


def test_token_rows_give_a_model_exactly_its_inputs(rows):
    aligned = rows["aligned"]
    backbone = _backbone("roberta")
    softmax = kft.presets.token_classifier(NUM_TAGS, LENGTH, backbone=backbone)
    assert sorted(aligned.inputs_for(softmax)) == ["padding_mask", "token_ids"]
    with pytest.raises(ValueError, match="`word_mask=True` contradicts"):
        aligned.dataset(word_mask=True, model=softmax)
    inputs = {
        "token_ids": keras.Input((LENGTH,), dtype="int32", name="token_ids"),
        "features": keras.Input((LENGTH,), name="features"),
    }
    odd = keras.Model(inputs, keras.layers.Dense(2)(inputs["features"]))
    with pytest.raises(ValueError, match=r"do not hold: \['features'\]"):
        aligned.inputs_for(odd)


def test_electra_classifier_has_hugging_faces_head_and_loads_from_a_preset(
    rows, tmp_path
):
    backbone = _backbone("electra")
    backbone.save_to_preset(str(tmp_path / "electra"))
    testing.small_tokenizer("electra").save_to_preset(str(tmp_path / "electra"))
    model = kft.presets.text_classifier(
        3, preset=tmp_path / "electra", sequence_length=LENGTH
    )
    assert isinstance(model, kft.presets.ElectraTextClassifier)
    assert isinstance(
        model.preprocessor, kft.presets.ElectraTextClassifierPreprocessor
    )
    assert model.preprocessor.sequence_length == LENGTH
    # The first token, a GELU dense layer of the hidden size, the logits;
    # dropout only in training.
    x = {name: rows[name] for name in encoders.input_names(backbone)}
    first = model.backbone(x)["sequence_output"][:, 0].numpy()
    pooled = model.get_layer("pooled_dense")
    assert pooled.units == backbone.hidden_dim
    hidden = keras.activations.gelu(
        first @ pooled.kernel.numpy() + pooled.bias.numpy(), approximate=False
    )
    logits = model.get_layer("logits")
    expected = hidden @ logits.kernel.numpy() + logits.bias.numpy()
    actual = keras.Model(model.input, model.output)(x)
    testing.assert_outputs_close(actual, expected)
    # Its preprocessor packs ELECTRA's pieces and serializes.
    packed = model.preprocessor(["the movie", "a good film"])
    assert sorted(packed) == ["padding_mask", "segment_ids", "token_ids"]
    assert keras.ops.convert_to_numpy(model(packed)).shape == (2, 3)
    testing.assert_config_round_trip(model.preprocessor)
    # The other task builders read the same preset.
    loaded = kft.presets.backbone(tmp_path / "electra")
    assert type(loaded) is type(backbone)
    tagger = kft.presets.token_classifier(
        NUM_TAGS, LENGTH, preset=tmp_path / "electra"
    )
    assert sorted(tagger.input) == ["padding_mask", "segment_ids", "token_ids"]
    answerer = kft.presets.question_answerer(tmp_path / "electra", LENGTH)
    assert any(isinstance(layer, type(backbone)) for layer in answerer.layers)


def test_kcenter_embeds_with_the_first_token_of_a_pooler_less_family(rows):
    model = kft.presets.text_classifier(3, backbone=_backbone("roberta"))
    pool = {name: rows[name] for name in ("token_ids", "padding_mask")}
    picked = kft.active.query(model, pool, 2, strategy="kcenter")
    assert len(picked.indices) == 2
    vectors = kft.active.predictions.embeddings(
        model, kft.active.pool.as_items(pool), None, 4, 0
    )
    testing.assert_outputs_close(
        vectors, model.backbone.predict(pool, verbose=0)[:, 0], atol=1e-5
    )
