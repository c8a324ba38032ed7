"""The runner every benchmark shares: timing, tables, JSON results.

Shared machines are noisy, so benchmarks compare candidates side by side in
one process and report ratios, never absolute times from different runs:
two identical runs on one machine once gave LoRA ÷ full of 0.71 and 0.87.
"""

import datetime
import json
import os
import pathlib
import platform
import re
import time

import numpy as np

RESULTS_DIR = pathlib.Path(__file__).parent / "results"


def machine_info():
    """Describes the machine and the library versions a result came from."""
    # Imported here so that `benchmarks.report` runs without TensorFlow.
    import keras
    import keras_hub
    import tensorflow as tf

    if hasattr(os, "sched_getaffinity"):
        usable_cores = len(os.sched_getaffinity(0))
    else:
        usable_cores = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores,
        "ram_gib": _ram_gib(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_hub": keras_hub.__version__,
        "numpy": np.__version__,
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"
        ),
    }


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def balanced_orders(n):
    """Orders of `n` candidates in which each one follows each other equally.

    A Williams design: across the returned rounds every candidate runs at
    every position equally often and immediately after every other candidate
    equally often, so neither going first nor the cache state another
    candidate leaves behind favours anyone.

    Args:
        n: the number of candidates.

    Returns:
        A list of `n` (even `n`) or `2 * n` (odd `n`) permutations of
        `range(n)`.
    """
    first = [0]
    low, high = 1, n - 1
    while len(first) < n:
        if len(first) % 2:
            first.append(low)
            low += 1
        else:
            first.append(high)
            high -= 1
    orders = [[(i + shift) % n for i in first] for shift in range(n)]
    if n % 2 and n > 1:
        orders += [order[::-1] for order in orders]
    return orders


def compare(candidates, baseline, warmup=5, repeats=30, seed=0):
    """Times zero-argument callables side by side and returns ratios.

    Each round calls every candidate once, in an order that changes from
    round to round (`balanced_orders`; the timed rounds are balanced when
    `repeats` is a multiple of the number of orders, e.g. 2 for two
    candidates and 6 for three). The first `warmup` rounds are discarded.
    The ratio to the baseline is taken per round (candidate and baseline
    from the same round saw the same machine load) and summarised by its
    median, interquartile range and a bootstrap 95% interval of the median.

    Args:
        candidates: a dict of name to a zero-argument callable. Each call
            must block until its work is done (e.g. `train_on_batch`, which
            returns NumPy values).
        baseline: the name of the candidate the others are divided by.
        warmup: rounds run first and discarded (tracing, XLA compilation,
            allocator growth). Defaults to `5`.
        repeats: timed rounds. Defaults to `30`.
        seed: the seed of the bootstrap. Defaults to `0`.

    Returns:
        A dict of name to a dict with `median_s`, `ratio_median`,
        `ratio_q25`, `ratio_q75`, `ratio_ci95` (low, high) and `times_s`
        (every timed call, in round order).
    """
    if baseline not in candidates:
        raise ValueError(
            f"`baseline` must be one of {sorted(candidates)}. "
            f"Received: baseline={baseline!r}"
        )
    if warmup < 0 or repeats < 1:
        raise ValueError(
            "`warmup` must be >= 0 and `repeats` >= 1. "
            f"Received: warmup={warmup}, repeats={repeats}"
        )
    names = list(candidates)
    orders = balanced_orders(len(names))
    times = {name: [] for name in names}
    rounds = warmup + repeats
    start = time.perf_counter()
    for r in range(rounds):
        this_round = {}
        for i in orders[(r - warmup) % len(orders)]:
            name = names[i]
            t0 = time.perf_counter()
            candidates[name]()
            this_round[name] = time.perf_counter() - t0
        if r >= warmup:
            for name, seconds in this_round.items():
                times[name].append(seconds)
        if r == 0 or (r + 1) % 10 == 0 or r + 1 == rounds:
            stage = "warm-up" if r < warmup else "timed"
            steps = ", ".join(
                f"{name} {this_round[name] * 1e3:.0f} ms" for name in names
            )
            print(
                f"  round {r + 1}/{rounds} ({stage}, "
                f"{time.perf_counter() - start:.0f} s): {steps}",
                flush=True,
            )
    base = np.array(times[baseline])
    results = {}
    for name in names:
        own = np.array(times[name])
        ratios = own / base
        q25, median, q75 = np.percentile(ratios, [25, 50, 75])
        results[name] = {
            "median_s": float(np.median(own)),
            "ratio_median": float(median),
            "ratio_q25": float(q25),
            "ratio_q75": float(q75),
            "ratio_ci95": _bootstrap_median_ci(ratios, seed),
            "times_s": own.tolist(),
        }
    return results


def _bootstrap_median_ci(values, seed, resamples=10_000):
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    low, high = np.percentile(np.median(values[picks], axis=1), [2.5, 97.5])
    return [float(low), float(high)]


_NUMBER = r"[+-]?[\d.,]+(?:e[+-]?\d+)?"
_NUMERIC = re.compile(rf"{_NUMBER}(?:\s*[±–]\s*{_NUMBER})?|n/a|")


def format_table(rows, columns):
    """Formats rows as a Markdown table that also reads well in a terminal.

    Args:
        rows: a list of rows, each a list of cells (converted with `str`).
        columns: the column headers. Columns of numbers (and ranges such
            as `0.77–0.79` or `0.91 ± 0.01`) are right-aligned, the first
            column and columns of text left-aligned.

    Returns:
        The table as a string, without a trailing newline.
    """
    cells = [[str(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(columns):
            raise ValueError(
                f"Every row needs {len(columns)} cells ({columns}). "
                f"Received: row={row}"
            )
    widths = [
        max(3, len(str(header)), *(len(row[i]) for row in cells))
        for i, header in enumerate(columns)
    ]
    right = [
        i > 0 and all(_NUMERIC.fullmatch(row[i]) for row in cells)
        for i in range(len(columns))
    ]

    def line(values):
        padded = [
            value.rjust(width) if r else value.ljust(width)
            for value, width, r in zip(values, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        "-" * (w - 1) + ":" if r else "-" * w
        for w, r in zip(widths, right, strict=True)
    ]
    return "\n".join(
        [line([str(c) for c in columns]), line(rule)] + [line(r) for r in cells]
    )


def write_json(name, payload):
    """Writes `benchmarks/results/<name>.json` with the machine description.

    Args:
        name: the benchmark's name, e.g. `"step_time"`.
        payload: a JSON-ready dict that holds at least `"parameters"` (what
            was run, so the result can be reproduced) and `"results"`; an
            optional `"description"` (Markdown: what is measured and how)
            heads the benchmark's section of the report, and an optional
            `"command"` replaces `python -m benchmarks.<name>` there (for
            a benchmark that writes several results).

    Returns:
        The path written.
    """
    missing = {"parameters", "results"} - set(payload)
    if missing:
        raise ValueError(
            f"`payload` needs the keys {sorted(missing)}. "
            f"Received: payload keys {sorted(payload)}"
        )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {"benchmark": name, "machine": machine_info(), **payload}
    # Written aside and renamed, so an interrupted run never leaves a
    # truncated result for the report to read.
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(partial, path)
    print(f"wrote {path.relative_to(RESULTS_DIR.parent.parent)}", flush=True)
    return path


def mean_std(values):
    """The mean and sample standard deviation (0 for one value).

    Args:
        values: one number per seed.

    Returns:
        `(mean, std)` as Python floats.
    """
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return float(values.mean()), float(std)


def format_mean_std(values, digits=3):
    """`"0.857 ± 0.012"`: a table cell for one number per seed."""
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def description(docstring):
    """A benchmark module's docstring without its usage line, as Markdown.

    The docstring's paragraphs up to the indented command line
    (`    python -m benchmarks...`), for a payload's `"description"`.
    """
    kept = []
    for paragraph in docstring.strip().split("\n\n"):
        if paragraph.startswith("    python -m"):
            break
        kept.append(paragraph)
    return "\n\n".join(kept)
