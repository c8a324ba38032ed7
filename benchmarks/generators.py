"""Training step and greedy `generate()` time of PEFT methods on GPT-2.

Two side-by-side comparisons on GPT-2-base's architecture with random
weights (speed does not depend on the weights' values), each in this one
process with alternating rounds (`harness.compare`): a training step of
full fine-tuning, keras-hub's `enable_lora` and kfinetune LoRA
(`generators_step_time.json`), and greedy generation of 64 tokens by the
base model, merged LoRA and merged prefix tuning
(`generators_generate.json`). `--smoke` checks the script end to end on a
2-layer model.

    python -m benchmarks.generators [--parts training generation]
        [--repeats 30] [--warmup 5] [--smoke]
"""

import argparse
import functools

import keras
import keras_hub
import numpy as np

from benchmarks import harness
from benchmarks import report
from benchmarks import workloads
from kfinetune import peft

# keras-hub's GPT-2-base (`gpt2_base_en`) architecture, 124M weights.
GPT2_BASE = {
    "vocabulary_size": 50257,
    "num_layers": 12,
    "num_heads": 12,
    "hidden_dim": 768,
    "intermediate_dim": 3072,
    "max_sequence_length": 1024,
}
# A smoke run with it takes about a minute on two CPU cores.
SMOKE = {
    "vocabulary_size": 1000,
    "num_layers": 2,
    "num_heads": 2,
    "hidden_dim": 64,
    "intermediate_dim": 128,
    "max_sequence_length": 1024,
}
# Half the reference workload's 16 for a model 5.5× as large, to keep a
# run on a CPU short.
BATCH_SIZE = 8
SMOKE_BATCH_SIZE = 2
SEQUENCE_LENGTH = 128
NEW_TOKENS = 64

MODEL = """\
The model is keras-hub's `GPT2CausalLM` without a preprocessor, over a
`GPT2Backbone` with GPT-2-base's architecture (12 layers, hidden 768, 12
heads, FFN 3072, vocabulary 50,257, 1,024 positions) and random weights,
which do not change the speed; TensorFlow backend on CPU, every model
compiled with `jit_compile=True`. Batch 8 (half the reference workload's
16: GPT-2-base has 5.5× MiniLM-L6's weights), sequence length 128."""

TRAINING = """\
A step is one `model.train_on_batch(x, y, sample_weight)`: random token
ids padded like real text, the next token as the target and the loss
(`SparseCategoricalCrossentropy(from_logits=True)`) on real tokens only,
AdamW(2e-5). `full` trains every weight (the baseline); `keras_lora` is
keras-hub's `backbone.enable_lora(8)` on `query` and `value`; `lora` is
`kfinetune.peft.LoRAConfig(rank=8, alpha=16)` on the same layers (its
default targets). Targets: `lora` ÷ `full` ≤ 0.75, and `lora` ≤ 1.00 ×
`keras_lora`."""

GENERATION = """\
A call is one `model.generate(x, stop_token_ids=None)` after
`model.compile(sampler="greedy", jit_compile=True)`. Every row is a
64-token prompt whose `padding_mask` leaves the last 64 positions to
fill, so every call generates exactly 64 tokens through keras-hub's
cached decoding (its XLA-compiled `generate_step`, traced and compiled in
the first warm-up round). `base` is the model without adapters (the
baseline); `lora_merged` has LoRA (rank 8 on `query` and `value`) merged
into its kernels by `kfinetune.peft.merge` (target ≤ 1.02);
`prefix_merged` has `kfinetune.peft.PrefixConfig(length=16)` with its
reparameterisation MLP folded by `merge`: 16 more keys and values in
every layer's attention (target ≤ 1.15)."""


def causal_lm(architecture, seed=0):
    """A `GPT2CausalLM` with random weights and no preprocessor.

    Args:
        architecture: the `GPT2Backbone` arguments, e.g. `GPT2_BASE`.
        seed: seeds the weights (every model of a run starts the same).
            Defaults to `0`.
    """
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(**architecture)
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)


def training_batch(batch_size, sequence_length, vocabulary_size, seed=0):
    """Random next-token training data, laid out as keras-hub's
    `CausalLMPreprocessor` lays out text.

    Each row holds real tokens for a length drawn between a quarter of the
    window and all of it, then padding; the targets are the inputs shifted
    by one and weighted only where the target is a real token.

    Returns:
        A tuple `(x, y, sample_weight)` of tensors: `x` a dict of int32
        `token_ids` and `padding_mask` of shape
        `(batch_size, sequence_length)`, `y` int32 and `sample_weight`
        float32 of the same shape.
    """
    rng = np.random.default_rng(seed)
    # One more position than the window: the last one is only a target.
    window = sequence_length + 1
    lengths = rng.integers(window // 4, window + 1, size=batch_size)
    mask = np.arange(window) < lengths[:, None]
    token_ids = rng.integers(0, vocabulary_size, size=(batch_size, window))
    # GPT-2 pads with its end token, the last id.
    token_ids = np.where(mask, token_ids, vocabulary_size - 1).astype("int32")
    x = {
        "token_ids": token_ids[:, :-1],
        "padding_mask": mask[:, :-1].astype("int32"),
    }
    # Converted once so that the timed steps do not convert NumPy inputs.
    return (
        {name: keras.ops.convert_to_tensor(v) for name, v in x.items()},
        keras.ops.convert_to_tensor(token_ids[:, 1:]),
        keras.ops.convert_to_tensor(mask[:, 1:].astype("float32")),
    )


def prompts(batch_size, sequence_length, new_tokens, vocabulary_size, seed=0):
    """Random prompts followed by `new_tokens` positions to generate.

    Every row has the same prompt length: keras-hub decodes from the
    shortest prompt to the end of the window, so every call generates
    exactly `new_tokens` tokens.

    Returns:
        A dict of int32 `token_ids` and boolean `padding_mask` tensors of
        shape `(batch_size, sequence_length)`, the mask true on the prompt.
    """
    rng = np.random.default_rng(seed)
    prompt_length = sequence_length - new_tokens
    token_ids = np.zeros((batch_size, sequence_length), "int32")
    token_ids[:, :prompt_length] = rng.integers(
        0, vocabulary_size, size=(batch_size, prompt_length)
    )
    padding_mask = np.arange(sequence_length) < prompt_length
    padding_mask = np.broadcast_to(padding_mask, token_ids.shape)
    return {
        "token_ids": keras.ops.convert_to_tensor(token_ids),
        "padding_mask": keras.ops.convert_to_tensor(padding_mask),
    }


TRAINING_VARIANTS = {
    "full": workloads.full,
    "keras_lora": workloads.keras_lora,
    "lora": workloads.lora,
}


def lora_merged(model):
    """kfinetune LoRA as in training, merged into the base kernels."""
    model = workloads.lora(model)
    peft.merge(model)
    return model


def prefix_merged(model):
    """kfinetune prefix tuning with its MLP folded into plain prefixes."""
    model = workloads.prefix(model)
    peft.merge(model)
    return model


def base(model):
    """The model without adapters."""
    return model


GENERATION_VARIANTS = {
    "base": base,
    "lora_merged": lora_merged,
    "prefix_merged": prefix_merged,
}


def _compile_for_training(model):
    model.compile(
        optimizer=keras.optimizers.AdamW(workloads.LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        # keras-hub's CausalLM adds an accuracy metric unless told
        # otherwise; the benchmark times the training step alone.
        weighted_metrics=None,
        jit_compile=True,
    )
    return model


def _compile_for_generation(model):
    model.compile(sampler="greedy", jit_compile=True)
    # `PEFTModel.generate` is its base task's, whose generate function
    # reads the task's own `jit_compile`: left unset it resolves to False
    # on a CPU-only machine, and the adapted models would decode without
    # XLA against an XLA-compiled base.
    if isinstance(model, peft.PEFTModel):
        model.base.jit_compile = True
    return model


def _time(variants, compile_model, make_call, architecture, args):
    models = {}
    for name, variant in variants.items():
        models[name] = compile_model(variant(causal_lm(architecture)))
        trainable, total = workloads.parameter_counts(models[name])
        print(f"built {name}: {trainable:,} of {total:,} trainable", flush=True)
    candidates = {name: make_call(model) for name, model in models.items()}
    print(
        f"timing {len(candidates)} variants, {args.warmup} warm-up + "
        f"{args.repeats} timed rounds (the first traces and compiles with "
        "XLA)",
        flush=True,
    )
    baseline = next(iter(variants))
    timings = harness.compare(
        candidates, baseline, warmup=args.warmup, repeats=args.repeats
    )
    return models, timings


def _payload(description, parameters, baseline, models, timings):
    return {
        "command": "python -m benchmarks.generators",
        "description": f"{MODEL}\n\n{description}",
        "parameters": parameters,
        "baseline": baseline,
        "results": workloads.timed_results(models, timings),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.generators",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("training", "generation"),
        default=["training", "generation"],
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"a smoke run: a {SMOKE['num_layers']}-layer GPT-2 (hidden "
        f"{SMOKE['hidden_dim']}, vocabulary {SMOKE['vocabulary_size']:,}), "
        f"batch {SMOKE_BATCH_SIZE}, one warm-up and two timed rounds (the "
        "result is marked)",
    )
    args = parser.parse_args(argv)
    architecture, batch_size = GPT2_BASE, BATCH_SIZE
    if args.smoke:
        architecture, batch_size = SMOKE, SMOKE_BATCH_SIZE
        args.warmup, args.repeats = 1, 2
    vocabulary_size = architecture["vocabulary_size"]
    parameters = {
        "model": "GPT2CausalLM, random weights",
        "architecture": architecture,
        "batch_size": batch_size,
        "sequence_length": SEQUENCE_LENGTH,
        "jit_compile": True,
        "lora_rank": workloads.LORA_RANK,
        "lora_targets": list(workloads.LORA_TARGETS),
        "warmup": args.warmup,
        "repeats": args.repeats,
        "smoke": args.smoke,
    }

    if "training" in args.parts:
        x, y, sample_weight = training_batch(
            batch_size, SEQUENCE_LENGTH, vocabulary_size
        )

        def train_step(model):
            return functools.partial(
                model.train_on_batch, x, y, sample_weight=sample_weight
            )

        models, timings = _time(
            TRAINING_VARIANTS,
            _compile_for_training,
            train_step,
            architecture,
            args,
        )
        payload = _payload(
            TRAINING,
            {
                **parameters,
                "optimizer": f"AdamW({workloads.LEARNING_RATE})",
                "loss": "SparseCategoricalCrossentropy(from_logits=True)",
                "step": "train_on_batch",
            },
            "full",
            models,
            timings,
        )
        harness.write_json("generators_step_time", payload)
        print(report.render_results("generators_step_time", payload))
        # Frees the training models and their optimizer state before the
        # generation models are built.
        del models

    if "generation" in args.parts:
        x = prompts(batch_size, SEQUENCE_LENGTH, NEW_TOKENS, vocabulary_size)

        def generate(model):
            return functools.partial(model.generate, x, stop_token_ids=None)

        models, timings = _time(
            GENERATION_VARIANTS,
            _compile_for_generation,
            generate,
            architecture,
            args,
        )
        payload = _payload(
            GENERATION,
            {
                **parameters,
                "prompt_length": SEQUENCE_LENGTH - NEW_TOKENS,
                "new_tokens": NEW_TOKENS,
                "sampler": "greedy",
                "prefix_length": workloads.PREFIX_LENGTH,
                "step": "generate",
            },
            "base",
            models,
            timings,
        )
        harness.write_json("generators_generate", payload)
        print(report.render_results("generators_generate", payload))


if __name__ == "__main__":
    main()
