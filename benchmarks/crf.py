"""Training step time of a CRF token-classification head against softmax.

On the reference workload (`benchmarks.workloads`: MiniLM-L6, batch 16,
sequence length 128, AdamW, `jit_compile=True`), one process, alternating
rounds, full fine-tuning of both:

- `softmax`: backbone → `Dense(num_labels)`, a per-token softmax with
  `SparseCategoricalCrossentropy(from_logits=True)`, padding masked out by
  sample weights (the baseline);
- `crf`: backbone → `Dense(num_labels, name="emissions")` →
  `kfinetune.layers.CRF(num_labels)` with `kfinetune.layers.CRFLoss`
  (forward algorithm over the 128 tokens; no Viterbi in training);
- `word_crf`: `kfinetune.presets.token_classifier(crf=True)` on the same
  backbone (no dropout, as the others): the CRF's chain over each word's
  first piece, gathered with a word mask (here three pieces in four
  start a word), in a `CRFTagger`.

Targets: `crf` ÷ `softmax` ≤ 1.10 per step, and ≤ 2 for the first step,
which traces the train function and compiles it with XLA (timed once per
head, before the timed rounds). `num_labels` is 9, the CoNLL-2003 BIO
tag count.

    python -m benchmarks.crf [--repeats 30] [--warmup 5]
"""

import argparse
import functools
import time

import keras
import numpy as np

from benchmarks import harness
from benchmarks import report
from benchmarks import workloads
from kfinetune import layers
from kfinetune import presets

NUM_LABELS = 9


def _backbone_outputs():
    backbone = workloads.load_classifier().backbone
    inputs = backbone.input
    return inputs, backbone(inputs)["sequence_output"]


def _compile(model, loss):
    model.compile(
        optimizer=keras.optimizers.AdamW(workloads.LEARNING_RATE),
        loss=loss,
        metrics=None,
        jit_compile=True,
    )
    return model


def softmax():
    inputs, hidden = _backbone_outputs()
    logits = keras.layers.Dense(NUM_LABELS, name="logits")(hidden)
    return _compile(
        keras.Model(inputs, logits),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def crf():
    inputs, hidden = _backbone_outputs()
    emissions = keras.layers.Dense(NUM_LABELS, name="emissions")(hidden)
    tags = layers.CRF(NUM_LABELS, name="crf")(
        emissions, mask=inputs["padding_mask"]
    )
    return _compile(keras.Model(inputs, tags), layers.CRFLoss())


def word_crf():
    backbone = workloads.load_classifier().backbone
    model = presets.token_classifier(
        NUM_LABELS,
        sequence_length=workloads.SEQUENCE_LENGTH,
        crf=True,
        backbone=backbone,
        dropout=0.0,
    )
    return _compile(model, layers.CRFLoss())


BUILDERS = {"softmax": softmax, "crf": crf, "word_crf": word_crf}


def synthetic_tags(x, seed=0):
    """Random tags for the reference batch's tokens, 0 at padding."""
    mask = keras.ops.convert_to_numpy(x["padding_mask"])
    rng = np.random.default_rng(seed)
    tags = rng.integers(0, NUM_LABELS, size=mask.shape).astype("int32")
    return keras.ops.convert_to_tensor(
        tags * mask
    ), keras.ops.convert_to_tensor(mask.astype("float32"))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.crf",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)

    x, _ = workloads.synthetic_batch()
    tags, mask = synthetic_tags(x)
    models, candidates = {}, {}
    for name, build in BUILDERS.items():
        keras.utils.set_random_seed(0)
        models[name] = build()
        print(f"built {name}", flush=True)
    # The softmax loss averages over real tokens only, as a tagger's would;
    # the CRF reads the padding mask itself.
    candidates["softmax"] = functools.partial(
        models["softmax"].train_on_batch, x, tags, sample_weight=mask
    )
    candidates["crf"] = functools.partial(models["crf"].train_on_batch, x, tags)
    # Three pieces in four start a word: the first of every four does not.
    positions = np.arange(workloads.SEQUENCE_LENGTH)[None]
    word_mask = (positions % 4 != 1) * keras.ops.convert_to_numpy(
        x["padding_mask"]
    )
    word_x = {**x, "word_mask": word_mask.astype("int32")}
    candidates["word_crf"] = functools.partial(
        models["word_crf"].train_on_batch, word_x, tags
    )
    first_step = {}
    for name, call in candidates.items():
        start = time.perf_counter()
        call()
        first_step[name] = time.perf_counter() - start
        print(
            f"{name}: first step (trace + XLA compile) "
            f"{first_step[name]:.1f} s",
            flush=True,
        )
    print(
        f"timing {len(candidates)} heads, {args.warmup} warm-up + "
        f"{args.repeats} timed rounds (the first compiles with XLA)",
        flush=True,
    )
    timings = harness.compare(
        candidates, "softmax", warmup=args.warmup, repeats=args.repeats
    )
    parameters = workloads.describe()
    for key in ("lora_rank", "lora_targets", "adapter_size", "loss"):
        parameters.pop(key)
    payload = {
        "parameters": {
            **parameters,
            "model": "all-MiniLM-L6-v2 backbone + per-token head",
            "num_labels": NUM_LABELS,
            "warmup": args.warmup,
            "repeats": args.repeats,
        },
        "baseline": "softmax",
        "results": workloads.timed_results(models, timings),
    }
    for name, seconds in first_step.items():
        payload["results"][name]["first_step_s"] = seconds
        payload["results"][name]["first_step_ratio"] = (
            seconds / first_step["softmax"]
        )
    harness.write_json("crf", payload)
    print(report.render_results("crf", payload))


if __name__ == "__main__":
    main()
