"""Inference time of a distilled 3-layer MiniLM student against its
6-layer teacher.

The student is `kfinetune.presets.shrink(teacher, [0, 2, 4])`: the same
embeddings, hidden size and head, half the transformer layers. Its speed
does not depend on its weights, so no training is needed. One process,
alternating rounds of `model.predict_on_batch(x)` on the reference
workload (batch 16, sequence length 128, `jit_compile=True`), as
`benchmarks.inference`; the ratio is the student's time ÷ the teacher's.

    python -m benchmarks.distillation_speed [--repeats 30] [--warmup 5]
        [--limit ROUNDS]
"""

import argparse
import functools

from benchmarks import harness
from benchmarks import report
from benchmarks import workloads
from kfinetune import presets

STUDENT_LAYERS = [0, 2, 4]


def _compiled(model):
    model.compile(jit_compile=True, metrics=None)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.distillation_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--limit",
        type=int,
        help="a smoke run: one warm-up round and this many timed rounds "
        "(the result is marked)",
    )
    args = parser.parse_args(argv)
    if args.limit is not None:
        args.warmup, args.repeats = 1, args.limit

    x, _ = workloads.synthetic_batch()
    teacher = workloads.load_classifier()
    models = {
        "teacher": _compiled(teacher),
        "student": _compiled(presets.shrink(teacher, STUDENT_LAYERS)),
    }
    candidates = {
        name: functools.partial(model.predict_on_batch, x)
        for name, model in models.items()
    }
    timings = harness.compare(
        candidates, "teacher", warmup=args.warmup, repeats=args.repeats
    )
    payload = {
        "description": harness.description(__doc__),
        "parameters": {
            **workloads.describe(),
            "student_layers": STUDENT_LAYERS,
            "step": "predict_on_batch",
            "warmup": args.warmup,
            "repeats": args.repeats,
            "limit": args.limit,
        },
        "baseline": "teacher",
        "results": workloads.timed_results(models, timings),
    }
    harness.write_json("distillation_speed", payload)
    print(report.render_results("distillation_speed", payload))


if __name__ == "__main__":
    main()
