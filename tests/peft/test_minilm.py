"""The engine on the real pretrained MiniLM and the real tweets."""

import keras
import numpy as np
import pytest

from kfinetune import data
from kfinetune import peft
from kfinetune import presets
from kfinetune import testing

TEXTS = np.array(["what a lovely day", "worst flight ever", "ok I guess"])


@pytest.fixture(scope="module")
def tweets():
    return data.tweet_sentiment(classes=2, seed=0)


def minilm():
    return presets.text_classifier(num_classes=2, sequence_length=32)


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_lora_parameter_count_matches_the_formula_and_peft():
    model = peft.apply(minilm(), peft.LoRAConfig(rank=8, alpha=16))
    # 6 blocks × (query + value) × (384·8 + 8·384), plus logits 384·2 + 2.
    assert trainable_count(model) == 6 * 2 * (384 * 8 + 8 * 384) + 770
    assert trainable_count(model) == 74_498


def test_houlsby_parameter_count_matches_the_formula():
    model = peft.apply(minilm(), peft.AdapterConfig(size=48))
    adapters = 6 * 2 * (384 * 48 + 48 + 48 * 384 + 384)
    assert adapters == 447_552
    assert trainable_count(model) == adapters + 770


@pytest.mark.parametrize(
    "config", [peft.LoRAConfig(rank=8, alpha=16), peft.AdapterConfig(size=48)]
)
def test_fit_on_tweets_moves_only_adapters_and_head(config, tweets):
    keras.utils.set_random_seed(0)
    base = minilm()
    expected = testing.predict(base, TEXTS)
    model = peft.apply(base, config)
    # The model still reads raw text: the preprocessor is forwarded.
    testing.assert_outputs_close(testing.predict(model, TEXTS), expected)
    frozen = {
        v.path: v.numpy().copy()
        for v in base.backbone.weights
        if "lora_" not in v.path and "adapter_" not in v.path
    }
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.AdamW(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(tweets.train.take(64).batch(16), epochs=1, verbose=0)
    for v in base.backbone.weights:
        if v.path in frozen:
            np.testing.assert_array_equal(v.numpy(), frozen[v.path])
    assert not np.allclose(testing.predict(model, TEXTS), expected)


def test_ia3_parameter_count():
    model = peft.apply(minilm(), peft.IA3Config())
    assert trainable_count(model) == 6 * (384 + 384 + 1536) + 770


def test_prefix_and_prompt_on_minilm_and_tweets(tweets):
    keras.utils.set_random_seed(0)
    prefix = peft.apply(minilm(), peft.PrefixConfig(length=16))
    # Per block: embedding 16·384, MLP 384·512 + 512 + 512·768 + 768.
    mlp = 16 * 384 + 384 * 512 + 512 + 512 * 768 + 768
    assert trainable_count(prefix) == 6 * mlp + 770
    prompt = peft.apply(
        minilm(),
        peft.PromptConfig(length=20, init="text", text="sentiment of a tweet"),
    )
    assert trainable_count(prompt) == 20 * 384 + 770
    for model in (prefix, prompt):
        frozen = {
            v.path: v.numpy().copy()
            for v in model.backbone.weights
            if "prefix_" not in v.path and "prompt_" not in v.path
        }
        testing.compile_and_build(
            model,
            optimizer=keras.optimizers.AdamW(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(tweets.train.take(64).batch(16), epochs=1, verbose=0)
        for v in model.backbone.weights:
            if v.path in frozen:
                np.testing.assert_array_equal(v.numpy(), frozen[v.path])
    trained = testing.predict(prefix, TEXTS)
    peft.merge(prefix)
    testing.assert_outputs_close(testing.predict(prefix, TEXTS), trained)
    assert trainable_count(prefix) == 770
