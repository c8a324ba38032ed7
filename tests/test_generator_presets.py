"""`kfinetune.presets.causal_lm` and `seq2seq_lm`: keras-hub generators from
Hugging Face folders (the tiny PyTorch checkpoints of
`tests/fixtures/hf_peft_decoders/`) and from keras-hub preset folders."""

import json
import pathlib
import shutil

import keras
import keras_hub
import numpy as np
import pytest

from kfinetune import presets
from kfinetune import testing

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "hf_peft_decoders"


def token_ids(vocabulary_size):
    ids = np.random.default_rng(0).integers(1, vocabulary_size, (2, 12))
    return {
        "token_ids": ids.astype("int32"),
        "padding_mask": np.ones_like(ids, "int32"),
    }


@pytest.mark.parametrize(
    "folder, task_class",
    [
        ("llama", keras_hub.models.Llama3CausalLM),
        ("gpt2", keras_hub.models.GPT2CausalLM),
    ],
)
def test_causal_lm_from_a_hugging_face_folder(folder, task_class):
    lm = presets.causal_lm(FIXTURES / folder)
    assert type(lm) is task_class
    # The folder has no tokenizer: the task takes token ids.
    assert lm.preprocessor is None
    config = json.loads((FIXTURES / folder / "config.json").read_text())
    x = token_ids(config["vocab_size"])
    assert lm.predict(x, verbose=0).shape == (2, 12, config["vocab_size"])


@pytest.mark.parametrize("family", ["gemma", "qwen", "mistral"])
def test_causal_lm_from_a_keras_hub_preset_folder(family, tmp_path):
    model = testing.small_causal_lm(family, num_layers=1)
    model.save_to_preset(str(tmp_path))
    lm = presets.causal_lm(tmp_path)
    assert type(lm) is type(model)
    x = testing.small_gpt2_inputs()
    np.testing.assert_array_equal(
        lm.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def byte_tokenizer():
    """A GPT-2 tokenizer over single bytes (no merges but one)."""
    symbols = [chr(c) for c in range(33, 127)] + ["Ġ", "Ġt"]
    # keras-hub's GPT2Tokenizer pads with id 0: the end token must not be
    # id 0, or `generate` reads the padding as ends.
    vocabulary = {symbol: i for i, symbol in enumerate(symbols)}
    vocabulary["<|endoftext|>"] = len(vocabulary)
    return keras_hub.models.GPT2Tokenizer(vocabulary, ["Ġ t"])


def test_causal_lm_with_a_tokenizer_reads_and_writes_text(tmp_path):
    tokenizer = byte_tokenizer()
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=32,
    )
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer)
    keras_hub.models.GPT2CausalLM(backbone, preprocessor).save_to_preset(
        str(tmp_path)
    )
    lm = presets.causal_lm(tmp_path, sequence_length=24)
    assert lm.preprocessor.sequence_length == 24
    lm.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        sampler="greedy",
    )
    lm.fit(["the cat sat", "the dog ran"], batch_size=2, epochs=1, verbose=0)
    generated = lm.generate(["the"], max_length=12, stop_token_ids=None)
    assert generated[0].startswith("the") and len(generated[0]) > 3

    with pytest.raises(ValueError, match="at most 32.*sequence_length=33"):
        presets.causal_lm(tmp_path, sequence_length=33)


def test_seq2seq_lm_from_a_keras_hub_preset_folder(tmp_path):
    model = testing.small_seq2seq_lm(num_layers=1)
    model.save_to_preset(str(tmp_path))
    lm = presets.seq2seq_lm(tmp_path)
    assert type(lm) is keras_hub.models.BartSeq2SeqLM
    x = testing.small_seq2seq_inputs()
    np.testing.assert_array_equal(
        lm.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    with pytest.raises(ValueError, match="no CausalLM for BartBackbone"):
        presets.causal_lm(tmp_path)


def test_a_checkpoint_with_another_activation_is_refused(tmp_path):
    folder = tmp_path / "llama"
    shutil.copytree(FIXTURES / "llama", folder)
    config = json.loads((folder / "config.json").read_text())
    config["hidden_act"] = "gelu"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="hidden_act='gelu'.*'silu'"):
        presets.causal_lm(folder)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"preset": 3}, "preset=3"),
        (
            {"preset": FIXTURES / "llama", "sequence_length": 0},
            "sequence_length=0",
        ),
        (
            {"preset": FIXTURES / "llama", "sequence_length": 16},
            "has no tokenizer.*sequence_length=16",
        ),
    ],
)
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        presets.causal_lm(**arguments)
    with pytest.raises(ValueError, match=message):
        presets.seq2seq_lm(**arguments)
