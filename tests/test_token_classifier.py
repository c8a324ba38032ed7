"""The whole cycle of `kfinetune.presets.token_classifier` on CoNLL data."""

import re

import keras
import keras_hub
import numpy as np
import pytest
from safetensors import safe_open

import kfinetune as kft
from kfinetune import peft
from kfinetune import testing

SEQUENCE_LENGTH = 10
# Words of the small random BERT's vocabulary; "good-day" and "fun!" split
# into several pieces.
CONLL = """\
-DOCSTART- O

i B-PER
love O
the O
good-day B-LOC

we B-PER
hate O
a O
night B-LOC
movie I-LOC

they B-PER
loved O
fun! B-LOC

you B-PER
really O
hate O
the O
film B-LOC
today I-LOC
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("conll") / "train.txt"
    path.write_text(CONLL, encoding="utf-8")
    return kft.data.from_conll(path)


@pytest.fixture(scope="module")
def aligned(data):
    return data.align(testing.small_bert_preprocessor(), SEQUENCE_LENGTH)


def build(crf, num_labels=4):
    return kft.presets.token_classifier(
        num_labels,
        sequence_length=SEQUENCE_LENGTH,
        crf=crf,
        backbone=testing.small_bert_backbone(),
        dropout=0.0,
    )


def loss_for(crf):
    if crf:
        return kft.layers.CRFLoss()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def fit(model, aligned, crf, epochs=3, jit_compile=False):
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=loss_for(crf),
        jit_compile=jit_compile,
    )
    rows = aligned.dataset(sample_weights=not crf, word_mask=crf).batch(4)
    return model.fit(rows, epochs=epochs, verbose=0).history["loss"]


@pytest.mark.parametrize("crf", [False, True], ids=["softmax", "crf"])
def test_whole_cycle(crf, data, aligned, tmp_path):
    model = build(crf)
    losses = fit(model, aligned, crf, epochs=25)
    assert losses[-1] < losses[0]

    inputs = aligned.inputs_for(model)
    assert ("word_mask" in inputs) == crf
    predictions = testing.predict(model, inputs)
    expected_shape = (4, SEQUENCE_LENGTH) + (() if crf else (4,))
    assert predictions.shape == expected_shape
    words = aligned.to_words(predictions)
    assert [len(w) for w in words] == [len(s) for s in data.sentences]
    report = kft.evaluation.sequence_labelling_report(data.tags, words)
    # The training set is tiny and was fitted for 25 steps.
    assert report.token_accuracy > 0.9

    reloaded = testing.assert_keras_round_trip(model, inputs, tmp_path)
    assert isinstance(reloaded.get_layer("emissions"), keras.layers.Dense)
    assert type(reloaded) is type(model)
    testing.assert_saved_model_round_trip(
        model, inputs, str(tmp_path / "saved_model")
    )


@pytest.mark.parametrize("crf", [False, True], ids=["softmax", "crf"])
def test_jit_compile_matches_eager(crf, aligned):
    testing.assert_jit_compile_consistent(
        lambda: build(crf),
        aligned.word_inputs if crf else aligned.inputs,
        np.maximum(aligned.labels, 0),
        steps=2,
        loss=loss_for(crf),
    )


@pytest.mark.parametrize("crf", [False, True], ids=["softmax", "crf"])
def test_lora_keeps_the_head_trainable_and_fits(crf, aligned):
    head = ["emissions", "crf"] if crf else ["emissions"]
    model = peft.apply(
        build(crf),
        peft.LoRAConfig(rank=2, targets=r".*(query|value)", trainable=head),
    )
    others = [w.path for w in model.trainable_weights if "lora" not in w.path]
    assert others and all(re.match(r"(emissions|crf)/", p) for p in others)
    assert any("lora" in w.path for w in model.trainable_weights)
    before = [w.numpy() for w in model.trainable_weights]
    losses = fit(model, aligned, crf, epochs=2)
    assert np.isfinite(losses).all()
    after = [w.numpy() for w in model.trainable_weights]
    assert all(
        not np.array_equal(a, b) for a, b in zip(after, before, strict=True)
    )


@pytest.mark.parametrize("crf", [False, True], ids=["softmax", "crf"])
def test_peft_defaults_keep_the_new_head_trainable(crf, aligned):
    # No `trainable=`: `emissions` (and `crf`) are outside the keras-hub
    # backbone, so `peft.apply` keeps them training by default.
    head = ["emissions", "crf"] if crf else ["emissions"]
    model = peft.apply(build(crf), peft.LoRAConfig(rank=2))
    assert model.adapters["default"].trainable == head
    others = {
        w.path.split("/")[0]
        for w in model.trainable_weights
        if "lora" not in w.path
    }
    assert others == set(head)
    before = {name: model.base.get_layer(name).get_weights() for name in head}
    fit(model, aligned, crf, epochs=2)
    for name in head:
        after = model.base.get_layer(name).get_weights()
        assert not np.allclose(after[0], before[name][0]), name


def test_builds_on_the_preset_by_default_arguments_checked():
    model = kft.presets.token_classifier(3, sequence_length=SEQUENCE_LENGTH)
    backbone = next(
        layer
        for layer in model.layers
        if isinstance(layer, keras_hub.models.Backbone)
    )
    # The bundled all-MiniLM-L6-v2, with its own weights and exact GELU.
    assert isinstance(backbone, kft.presets.HFBertBackbone)
    assert (backbone.num_layers, backbone.hidden_dim) == (6, 384)
    assert backbone.activation == "gelu"
    with safe_open(
        str(kft.presets.minilm_path() / "model.safetensors"), "np"
    ) as weights:
        expected = weights.get_tensor("embeddings.word_embeddings.weight")
    np.testing.assert_array_equal(backbone.token_embedding.embeddings, expected)
    assert model.output.shape == (None, SEQUENCE_LENGTH, 3)

    with pytest.raises(ValueError, match="Received: num_labels=1"):
        kft.presets.token_classifier(1)
    with pytest.raises(ValueError, match="Received: crf='yes'"):
        kft.presets.token_classifier(3, crf="yes")
    with pytest.raises(ValueError, match="not both"):
        kft.presets.token_classifier(
            3, preset="x", backbone=testing.small_bert_backbone()
        )


def emissions_of(model, inputs):
    emissions = keras.Model(model.input, model.get_layer("emissions").output)
    return keras.ops.convert_to_numpy(emissions(inputs, training=False))


def test_word_level_crf_chains_first_pieces_only(aligned):
    keras.utils.set_random_seed(1)
    model = build(crf=True)
    crf = model.get_layer("crf")
    for weight in crf.weights:
        weight.assign(np.random.default_rng(2).normal(size=weight.shape))
    x = aligned.word_inputs
    loss = keras.ops.convert_to_numpy(
        kft.layers.CRFLoss(reduction=None)(aligned.labels, model.potentials(x))
    )
    # By hand: each sentence's chain is its words' first pieces.
    emissions = emissions_of(model, x)
    for row, starts in enumerate(aligned.word_starts):
        starts = list(starts)
        expected = -crf.log_likelihood(
            emissions[row, starts][None], aligned.labels[row, starts][None]
        )
        np.testing.assert_allclose(loss[row], expected[0], atol=1e-4)
    # Labels of [CLS], [SEP] and continuation pieces are never read.
    off_chain = (aligned.word_mask == 0) & (aligned.labels >= 0)
    # Besides each [SEP], continuation pieces.
    assert off_chain[:, 1:].sum() > len(aligned.labels)
    changed = np.where(off_chain, (aligned.labels + 1) % 4, aligned.labels)
    np.testing.assert_allclose(
        kft.layers.CRFLoss(reduction=None)(changed, model.potentials(x)),
        loss,
        atol=1e-5,
    )
    # Every piece of a word carries the word's tag; [CLS] and padding 0.
    tags = testing.predict(model, x)
    for row, starts in enumerate(aligned.word_starts):
        ends = [*starts[1:], int(aligned.inputs["padding_mask"][row].sum())]
        for start, end in zip(starts, ends, strict=True):
            assert set(tags[row, start:end]) == {tags[row, start]}
        assert tags[row, 0] == 0
        assert not tags[row, ends[-1] :].any()


def test_evaluate_and_val_loss_report_the_negative_log_likelihood(aligned):
    keras.utils.set_random_seed(3)
    model = build(crf=True)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=kft.layers.CRFLoss(),
        # Tags against tags, element-wise (the string "accuracy" would
        # pick categorical accuracy for two tensors of one shape).
        metrics=[keras.metrics.Accuracy()],
    )
    rows = aligned.dataset(sample_weights=False, word_mask=True).batch(4)
    history = model.fit(rows, validation_data=rows, epochs=3, verbose=0)
    expected = float(
        np.mean(
            kft.layers.CRFLoss(reduction=None)(
                aligned.labels, model.potentials(aligned.word_inputs)
            )
        )
    )
    result = model.evaluate(rows, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(
        history.history["val_loss"][-1], expected, rtol=1e-5
    )
    # An NLL summed over words, not an error rate in [0, 1].
    assert history.history["val_loss"][0] > 1.0
    # The metric sees the decoded tags, in fit as in evaluate.
    tags = testing.predict(model, aligned.word_inputs)
    valid = aligned.labels >= 0
    accuracy = np.sum((tags == aligned.labels) & valid) / aligned.labels.size
    np.testing.assert_allclose(result["accuracy"], accuracy, rtol=1e-5)
    assert 0.0 < history.history["accuracy"][-1] <= 1.0


def test_constraints_need_the_crf_and_are_obeyed(data, aligned):
    constraints = kft.data.tag_constraints(data.tag_names, "IOB2")
    with pytest.raises(ValueError, match="pass `crf=True`"):
        kft.presets.token_classifier(4, constraints=constraints)
    with pytest.raises(ValueError, match="Received: constraints="):
        kft.presets.token_classifier(4, crf=True, constraints={"start": []})
    keras.utils.set_random_seed(4)
    model = kft.presets.token_classifier(
        4,
        sequence_length=SEQUENCE_LENGTH,
        crf=True,
        backbone=testing.small_bert_backbone(),
        constraints=constraints,
    )
    # Emissions biased towards I- tags: unconstrained, they would be decoded.
    dense = model.get_layer("emissions")
    inside = [i for i, tag in enumerate(data.tag_names) if tag[0] == "I"]
    bias = np.zeros(4, "float32")
    bias[inside] = 5.0
    dense.bias.assign(bias)
    words = aligned.to_words(testing.predict(model, aligned.word_inputs))
    for sentence in words:
        kft.data.check_tags(sentence, "IOB2")
