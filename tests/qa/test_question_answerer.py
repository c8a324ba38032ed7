import re

import keras
import keras_hub
import numpy as np
import pytest

from kfinetune import data
from kfinetune import layers
from kfinetune import peft
from kfinetune import presets
from kfinetune import qa
from kfinetune import testing

CONTEXT = "the movie was good and the night was fun but the day was boring"


def example(id, question, answer):
    if answer is None:
        return data.QAExample(id, question, CONTEXT, (), (), True)
    start = CONTEXT.index(answer)
    return data.QAExample(id, question, CONTEXT, (answer,), (start,))


def features():
    examples = [
        example("a", "was it good", "the movie"),
        example("b", "was it fun", "night"),
        example("c", "was it bad", None),
        example("d", "it was boring", "the day"),
    ]
    tokenizer = testing.small_bert_preprocessor().tokenizer
    return qa.prepare_features(
        examples, tokenizer, sequence_length=16, document_stride=4
    )


def build():
    return qa.question_answerer(
        testing.small_bert_backbone(), sequence_length=16, dropout=0.0
    )


def compile_and_fit(model, f, jit_compile=False, steps=3):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss={"start": loss, "end": loss},
        jit_compile=jit_compile,
    )
    dataset = f.dataset().batch(8, drop_remainder=True).repeat()
    return model.fit(dataset, steps_per_epoch=1, epochs=steps, verbose=0)


def test_logits_are_masked_outside_context_and_cls():
    f = features()
    out = testing.predict(build(), f.inputs())
    allowed = (f.segment_ids == 1) & (f.padding_mask == 1)
    allowed[:, 0] = True
    for name in ("start", "end"):
        assert out[name].shape == f.token_ids.shape
        assert (out[name][~allowed] == -1e9).all()
        assert (out[name][allowed] > -1e8).all()


def test_fit_learns_and_postprocess_reads_answers():
    keras.utils.set_random_seed(0)
    f = features()
    model = build()
    history = compile_and_fit(model, f, steps=40)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    out = model.predict(f.inputs(), verbose=0)
    answers = qa.postprocess(f, out["start"], out["end"], allow_no_answer=True)
    scores = qa.squad_scores(answers, f.examples)
    assert set(answers) == {"a", "b", "c", "d"}
    assert scores["exact_match"] == 100.0, answers


def test_keras_and_saved_model_round_trips(tmp_path):
    f = features()
    model = build()
    compile_and_fit(model, f)
    reloaded = testing.assert_keras_round_trip(model, f.inputs(), tmp_path)
    assert isinstance(reloaded.get_layer("logits"), layers.SpanHead)
    testing.assert_saved_model_round_trip(model, f.inputs(), tmp_path / "saved")


def test_jit_compile_fit_matches_eager():
    f = features()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    testing.assert_jit_compile_consistent(
        build,
        f.inputs(),
        f.targets(),
        loss={"start": loss, "end": loss},
    )


def test_lora_default_targets_and_fit(tmp_path):
    f = features()
    model = peft.apply(build(), peft.LoRAConfig(rank=2))
    lora = [w.path for w in model.trainable_weights if "lora" in w.path]
    wrapped = {
        re.search(r"transformer_layer_\d/.*/(query|value)/", p)[0] for p in lora
    }
    assert wrapped == {
        f"transformer_layer_{i}/self_attention_layer/{name}/"
        for i in range(2)
        for name in ("query", "value")
    }
    head = [w.path for w in model.trainable_weights if "lora" not in w.path]
    assert head and all("logits" in p for p in head)
    before = testing.predict(model, f.inputs())
    compile_and_fit(model, f, jit_compile=True)
    after = testing.predict(model, f.inputs())
    assert not np.allclose(after["start"], before["start"])
    testing.assert_keras_round_trip(model, f.inputs(), tmp_path)


def test_question_answerer_errors():
    with pytest.raises(ValueError, match="Received: dropout=1.5"):
        qa.question_answerer(testing.small_bert_backbone(), dropout=1.5)
    with pytest.raises(ValueError, match="Received: sequence_length=0"):
        qa.question_answerer(testing.small_bert_backbone(), sequence_length=0)


def test_preset_question_answerer_is_pretrained_minilm():
    model = presets.question_answerer(sequence_length=32)
    pretrained = keras_hub.models.Backbone.from_preset(
        str(presets.minilm_path())
    )
    [backbone] = [
        layer
        for layer in model.layers
        if isinstance(layer, keras_hub.models.Backbone)
    ]
    np.testing.assert_array_equal(
        backbone.get_layer("token_embedding").embeddings.numpy(),
        pretrained.get_layer("token_embedding").embeddings.numpy(),
    )
    tokenizer = keras_hub.models.BertTokenizer.from_preset(
        str(presets.minilm_path())
    )
    f = qa.prepare_features(
        [example("a", "what was good?", "the movie")],
        tokenizer,
        sequence_length=32,
    )
    out = testing.predict(model, f.inputs())
    assert out["start"].shape == out["end"].shape == (1, 32)
    with pytest.raises(ValueError, match="Received: sequence_length=0"):
        presets.question_answerer(sequence_length=0)
