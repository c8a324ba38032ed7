"""Tests for `kfinetune.encoders` and the small encoders of every family
in `kfinetune.testing`."""

import keras
import numpy as np
import pytest

from kfinetune import encoders
from kfinetune import testing

FAMILIES = sorted(testing.FAMILY_NAMES)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_is_recognised_and_runs_on_its_inputs(name):
    backbone = testing.small_backbone(name, num_layers=1)
    family = encoders.family_of(backbone)
    assert family is testing.FAMILY_NAMES[name]
    names = encoders.input_names(backbone)
    assert set(names) == set(backbone.input)
    assert ("segment_ids" in names) == family.segment_ids
    # Every task input, the backbone taking those it knows.
    inputs = {
        key: keras.Input((8,), dtype="int32", name=key)
        for key in ("token_ids", "segment_ids", "padding_mask", "word_mask")
    }
    hidden = encoders.sequence_output(backbone, inputs)
    model = keras.Model(inputs, hidden)
    batch = {key: np.ones((2, 8), "int32") for key in inputs}
    batch["segment_ids"][:] = 0
    assert model.predict(batch, verbose=0).shape == (2, 8, 32)


@pytest.mark.parametrize(
    ("name", "first_pieces"),
    [
        ("bert", ["the", "movie"]),
        ("albert", ["▁the", "▁movie"]),
        ("xlm_roberta", ["▁the", "▁movie"]),
        ("roberta", ["the", "Ġmovie"]),
    ],
)
def test_small_tokenizers_split_words_the_family_way(name, first_pieces):
    tokenizer = testing.small_tokenizer(name)
    ids = tokenizer("the movie")
    assert [tokenizer.id_to_token(int(i)) for i in ids] == first_pieces
    # The special tokens every task packs with.
    for token in ("start_token_id", "end_token_id", "pad_token_id"):
        assert isinstance(getattr(tokenizer, token), int)


def test_other_backbones_are_refused_naming_the_supported_families():
    backbone = testing.small_gpt2_causal_lm().backbone
    with pytest.raises(ValueError, match=r"RoBERTa \(RobertaBackbone\).*GPT2"):
        encoders.family_of(backbone)
    with pytest.raises(ValueError, match="family='gpt2'"):
        testing.small_backbone("gpt2")
