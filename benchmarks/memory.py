"""Peak memory of training each variant, each in its own process.

Every variant runs in a fresh subprocess (`--child VARIANT`): a process's
peak only grows. The child builds the reference model, records what it
holds (the baseline: the built model), runs warm-up steps (XLA
compilation, optimizer state) and timed steps, and reports two views of
the memory training adds:

- `tensor_increase_mib`, the headline: the peak of the bytes TensorFlow's
  own allocator holds in tensors during training
  (`tf.config.experimental.get_memory_info`, the counter TensorFlow keeps
  for every device), minus what it held for the built model. That is what
  activations, gradients, XLA's buffers and optimizer state add, and what
  a GPU's or TPU's memory would have to hold; the host's compiler memory
  is not in it.
- `peak_increase_mib`: the process's peak resident set size (RSS,
  `ru_maxrss`) minus the RSS of the built model. It adds what the host
  process pays beside the tensors: XLA compiling the step, the compiled
  code, and memory the C allocator keeps after it was freed (trimming
  does not give most of it back), so its ratios sit closer to 1.
  `peak_rss_mib`, the whole process's peak, is what the earlier figures
  in the report's targets divide.

Also `variable_mib`: the bytes held by the model's variables (dtype size ×
elements; an int8-quantized backbone counts one byte per kernel weight),
and `step_seconds`: the mean time of the timed steps in that process.
Pair a variant with its own control for the remat and int8 ratios:
`lora_remat` and `full_remat` against `lora` and `full`, `lora_int8`
against `lora`.

Linux only (it reads `/proc/self/status`).

    python -m benchmarks.memory [--variants full keras_lora frozen]
        [--warmup 2] [--steps 10] [--output PATH]

`--output` writes the JSON there instead of
`benchmarks/results/memory.json` (for trial runs).
"""

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time

import tensorflow as tf

from benchmarks import harness
from benchmarks import report
from benchmarks import workloads

ROOT = pathlib.Path(__file__).parent.parent


def _status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} is missing from /proc/self/status.")


def _maxrss_mib():
    # Kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tensor_mib(key):
    # TensorFlow's allocator statistics for the host device: "current" and
    # "peak" bytes held in tensors (variables and XLA's buffers included).
    return tf.config.experimental.get_memory_info("CPU:0")[key] / 2**20


def child(variant, warmup, steps):
    """Measures one variant in this process; returns a JSON-ready dict."""
    x, y = workloads.synthetic_batch()
    model = workloads.build(variant)
    trainable, total = workloads.parameter_counts(model)
    baseline = _status_mib("VmRSS")
    tensor_baseline = _tensor_mib("current")
    tf.config.experimental.reset_memory_stats("CPU:0")
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    step_seconds = (time.perf_counter() - start) / steps
    peak = _maxrss_mib()
    return {
        "trainable_params": trainable,
        "total_params": total,
        "variable_mib": workloads.variable_bytes(model) / 2**20,
        "step_seconds": step_seconds,
        "tensor_baseline_mib": tensor_baseline,
        "tensor_increase_mib": _tensor_mib("peak") - tensor_baseline,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak,
        "peak_increase_mib": peak - baseline,
    }


def _run_child(variant, warmup, steps):
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--child",
        variant,
        "--warmup",
        str(warmup),
        "--steps",
        str(steps),
    ]
    # The child's stderr passes through; its stdout is the result.
    done = subprocess.run(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
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
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--output",
        type=pathlib.Path,
        help="write the JSON to this file instead of "
        "benchmarks/results/memory.json",
    )
    parser.add_argument(
        "--child",
        choices=sorted(workloads.VARIANTS),
        help="measure one variant in this process and print JSON (used by "
        "the parent run)",
    )
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if args.child:
        print(json.dumps(child(args.child, args.warmup, args.steps)))
        return
    if args.baseline not in args.variants:
        parser.error(
            f"--baseline {args.baseline} must be one of --variants "
            f"{args.variants}"
        )

    results = {}
    for name in args.variants:
        print(f"measuring {name} in a subprocess", flush=True)
        results[name] = _run_child(name, args.warmup, args.steps)
        print(
            f"  {name}: tensors +{results[name]['tensor_increase_mib']:.0f} "
            f"MiB, process peak {results[name]['peak_rss_mib']:.0f} MiB "
            f"(+{results[name]['peak_increase_mib']:.0f} MiB) over the "
            "built model",
            flush=True,
        )
    base = results[args.baseline]
    for result in results.values():
        result["peak_ratio"] = result["peak_rss_mib"] / base["peak_rss_mib"]
        result["tensor_increase_ratio"] = (
            result["tensor_increase_mib"] / base["tensor_increase_mib"]
        )
        result["peak_increase_ratio"] = (
            result["peak_increase_mib"] / base["peak_increase_mib"]
        )
        result["variable_ratio"] = result["variable_mib"] / base["variable_mib"]
    payload = {
        "parameters": {
            **workloads.describe(),
            "warmup": args.warmup,
            "steps": args.steps,
        },
        "baseline": args.baseline,
        "results": results,
    }
    if args.output is not None:
        document = {"benchmark": "memory", "machine": harness.machine_info()}
        args.output.write_text(
            json.dumps({**document, **payload}, indent=2) + "\n"
        )
    else:
        harness.write_json("memory", payload)
    print(report.render_results("memory", payload))


if __name__ == "__main__":
    main()
