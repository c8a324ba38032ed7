"""Training step time of the variants on the reference workload.

Every variant is built in this one process and their steps alternate
(`harness.compare`); the result is each variant's per-round time divided by
the baseline's. A step is one `model.train_on_batch(x, y)`: on the
TensorFlow backend it runs the `jit_compile=True` train function and
returns the loss as NumPy, so each call blocks until the step is done.

    python -m benchmarks.step_time [--variants full keras_lora frozen]
        [--repeats 30] [--warmup 5]

LoRA's variants against LoRA, in a results file of their own:

    python -m benchmarks.step_time --variants lora dora rslora pissa \
        --baseline lora --output lora_variants_step_time
"""

import argparse
import functools

from benchmarks import harness
from benchmarks import report
from benchmarks import workloads


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.step_time",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=sorted(workloads.VARIANTS),
        default=list(workloads.VARIANTS),
    )
    parser.add_argument("--baseline", default="full")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--output",
        choices=("step_time", "lora_variants_step_time"),
        default="step_time",
        help="the results file (benchmarks/results/OUTPUT.json)",
    )
    args = parser.parse_args(argv)
    if args.baseline not in args.variants:
        parser.error(
            f"--baseline {args.baseline} must be one of --variants "
            f"{args.variants}"
        )

    x, y = workloads.synthetic_batch()
    candidates = {}
    counts = {}
    for name in args.variants:
        model = workloads.build(name)
        counts[name] = workloads.parameter_counts(model)
        candidates[name] = functools.partial(model.train_on_batch, x, y)
        print(f"built {name}: {counts[name][0]:,} trainable", flush=True)
    print(
        f"timing {len(candidates)} variants, {args.warmup} warm-up + "
        f"{args.repeats} timed rounds (the first compiles with XLA)",
        flush=True,
    )
    timings = harness.compare(
        candidates, args.baseline, warmup=args.warmup, repeats=args.repeats
    )
    payload = {
        "parameters": {
            **workloads.describe(),
            "warmup": args.warmup,
            "repeats": args.repeats,
        },
        "baseline": args.baseline,
        "results": {
            name: {
                "trainable_params": counts[name][0],
                "total_params": counts[name][1],
                **timings[name],
            }
            for name in args.variants
        },
    }
    harness.write_json(args.output, payload)
    print(report.render_results(args.output, payload))


if __name__ == "__main__":
    main()
