"""LoRA (with its variants), bottleneck adapters and IA3 on keras-hub
generators: every causal LM family kfinetune supports (GPT-2, Llama,
Gemma, Mistral, Qwen), BART and T5, through the whole cycle: apply, fit,
`.keras` round trip, greedy generation, and merged generation equal to
unmerged."""

import keras
import numpy as np
import pytest

from kfinetune import peft
from kfinetune import presets
from kfinetune import testing

SEQ2SEQ = ("bart", "t5")
FAMILIES = (*testing.CAUSAL_LM_FAMILIES, *SEQ2SEQ)
# LoRA, IA3 and a Houlsby adapter together in one model: LoRA on the query,
# attention output and first feed-forward layers, IA3 on the keys, values
# and the feed-forward activation, adapters after the attention and the
# feed-forward block (around LoRA's and IA3's wrappers).
LORA = peft.LoRAConfig(
    rank=4,
    alpha=8,
    targets=[
        r".*/(query|attention_output|feedforward_(intermediate|gate)_dense"
        r"|ffw_(gating|gating_2)|(query|input|gate)_projector)"
    ],
)
# LoRA's variants, one family each, through the same cycle (plain LoRA on
# Llama, which the export test below uses too): each trains, survives
# `.keras`, generates, and merges to the same logits and generations.
VARIANTS = {
    "llama": {},
    "gpt2": {"use_dora": True},
    "gemma": {"init": "pissa"},
    "mistral": {"use_rslora": True, "init": "olora"},
    "qwen": {"use_dora": True, "use_rslora": True},
    "bart": {"init": "pissa", "use_rslora": True},
    "t5": {"use_dora": True},
}
IA3 = peft.IA3Config()
ADAPTER = peft.AdapterConfig(size=4)
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build(family):
    if family in SEQ2SEQ:
        return testing.small_seq2seq_lm(
            family, num_layers=1
        ), testing.small_seq2seq_inputs()
    return testing.small_causal_lm(
        family, num_layers=1
    ), testing.small_gpt2_inputs()


def next_tokens(family, x):
    """Next-token labels and their weights (padding weighs nothing)."""
    prefix = "decoder_" if family in SEQ2SEQ else ""
    ids, mask = x[f"{prefix}token_ids"], x[f"{prefix}padding_mask"]
    labels = np.concatenate([ids[:, 1:], np.zeros_like(ids[:, :1])], axis=1)
    weights = np.concatenate([mask[:, 1:], np.zeros_like(mask[:, :1])], 1)
    return labels, weights.astype("float32")


def prompts(family, x):
    """Generation inputs: the first 3 tokens of each row as the prompt."""
    prefix = "decoder_" if family in SEQ2SEQ else ""
    x = dict(x)
    mask = np.zeros_like(x[f"{prefix}padding_mask"])
    mask[:, :3] = 1
    x[f"{prefix}padding_mask"] = mask
    return x


def generate(model, x):
    return model.generate(x, stop_token_ids=None)


@pytest.mark.parametrize("family", FAMILIES)
def test_methods_on_generator_whole_cycle(family, tmp_path):
    model, x = build(family)
    lora = peft.LoRAConfig.from_config(
        {**LORA.get_config(), **VARIANTS[family]}
    )
    for name, config in (("lora", lora), ("ia3", IA3), ("adapter", ADAPTER)):
        model = peft.apply(model, config, name=name)
    peft.set_active(model, ["lora", "ia3", "adapter"])
    trainable = {w.path for w in model.trainable_weights}
    # Each method reached the attention and the feed-forward block of every
    # transformer layer (a Houlsby adapter: after both).
    for method in ("lora", "ia3", "adapter"):
        places = {
            path.split(f"/{method}_")[0].split("/", 1)[1]
            for path in trainable
            if f"/{method}_" in path
        }
        assert any("attention" in place for place in places), places
        assert any(
            place.startswith(
                ("feedforward", "ffw", "output_", "input_", "gate_")
            )
            for place in places
        ), places
    assert all(
        any(f"/{m}_" in path for m in ("lora", "ia3", "adapter"))
        for path in trainable
    )

    # By position: T5's encoder and decoder hold relative attention biases
    # with the same path.
    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=LOSS,
        sampler="greedy",
        # Tracing is most of a tiny model's cost: one family runs the traced
        # train and generate functions that users run, the others eagerly.
        run_eagerly=family != "llama",
    )
    labels, weights = next_tokens(family, x)
    model.fit(x, labels, sample_weight=weights, epochs=2, verbose=0)
    changed = {
        w.path
        for w, old in zip(model.weights, before, strict=True)
        if not np.array_equal(old, keras.ops.convert_to_numpy(w))
    }
    assert changed == trainable

    testing.assert_keras_round_trip(model, x, str(tmp_path))
    query = prompts(family, x)
    generated = generate(model, query)
    key = "decoder_token_ids" if family in SEQ2SEQ else "token_ids"
    assert generated[key].shape == x[key].shape
    np.testing.assert_array_equal(generated[key][:, :3], x[key][:, :3])
    # Merged LoRA and IA3 give the same logits and greedy generations.
    logits = testing.predict(model, x)
    peft.merge(model)
    assert model.adapters["lora"].merged and model.adapters["ia3"].merged
    np.testing.assert_allclose(testing.predict(model, x), logits, atol=1e-4)
    np.testing.assert_array_equal(generate(model, query)[key], generated[key])


def test_adapted_llama_exports_as_saved_model_and_merged_hf_folder(tmp_path):
    base, x = build("llama")
    model = peft.apply(base, LORA)
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=LOSS,
        run_eagerly=True,
    )
    labels, weights = next_tokens("llama", x)
    model.fit(x, labels, sample_weight=weights, epochs=2, verbose=0)
    testing.assert_saved_model_round_trip(model, x, str(tmp_path / "saved"))
    # Merged into the base weights, the model is a plain keras-hub task that
    # keras-hub writes as a Hugging Face checkpoint, and kfinetune reads
    # back with the same logits.
    logits = testing.predict(model, x)
    plain = peft.merge_and_unload(model)
    assert type(plain) is type(base)
    plain.export_to_transformers(str(tmp_path / "hf"))
    reloaded = presets.causal_lm(tmp_path / "hf")
    np.testing.assert_allclose(testing.predict(reloaded, x), logits, atol=1e-4)


def test_compile_sets_the_sampler_and_compilation_of_generate():
    base, _ = build("gpt2")
    model = peft.apply(base, LORA)
    model.compile(optimizer="adam", sampler="greedy", jit_compile=True)
    assert type(base.sampler).__name__ == "GreedySampler"
    # `generate` runs on the base: without this a CPU-only machine left it
    # without XLA whatever `jit_compile=True` asked.
    assert base.jit_compile and not base.run_eagerly
    model.compile(optimizer="adam", run_eagerly=True)
    assert base.run_eagerly and type(base.sampler).__name__ == "GreedySampler"
    classifier = peft.apply(testing.small_bert_classifier(), LORA)
    with pytest.raises(ValueError, match="does not generate.*sampler='greedy'"):
        classifier.compile(optimizer="adam", sampler="greedy")
