"""Inference step time of a merged LoRA model against the base model.

`kfinetune.peft.merge` folds the LoRA updates into the base kernels, so a
merged model should cost what the base model costs (target: ≤ 1.02).
The unmerged (factored) LoRA model is timed beside them. One process,
alternating rounds of `model.predict_on_batch(x)` with `jit_compile=True`,
as `benchmarks.step_time`.

    python -m benchmarks.inference [--repeats 30] [--warmup 5]
"""

import argparse
import functools

import keras

from benchmarks import harness
from benchmarks import report
from benchmarks import workloads
from kfinetune import peft


def _compiled(model):
    model.compile(jit_compile=True, metrics=None)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)

    x, _ = workloads.synthetic_batch()
    keras.utils.set_random_seed(0)
    models = {
        "base": _compiled(workloads.load_classifier()),
        "lora_merged": workloads.lora(workloads.load_classifier()),
        "lora_unmerged": workloads.lora(workloads.load_classifier()),
    }
    peft.merge(models["lora_merged"])
    for name in ("lora_merged", "lora_unmerged"):
        _compiled(models[name])
    candidates = {
        name: functools.partial(model.predict_on_batch, x)
        for name, model in models.items()
    }
    timings = harness.compare(
        candidates, "base", warmup=args.warmup, repeats=args.repeats
    )
    payload = {
        "parameters": {
            **workloads.describe(),
            "step": "predict_on_batch",
            "warmup": args.warmup,
            "repeats": args.repeats,
        },
        "baseline": "base",
        "results": workloads.timed_results(models, timings),
    }
    harness.write_json("inference", payload)
    print(report.render_results("inference", payload))


if __name__ == "__main__":
    main()
