"""Few-shot learning curves on the real tweets, over seeds.

`kfinetune.recipes.few_shot_curve` with the real MiniLM
(`kfinetune.presets.text_classifier`, sequence length 64) on the binary
tweet-sentiment data (`tweet_sentiment(classes=2, seed=0)`: one fixed
split, so every run is scored on the same 1,000 test tweets). For every
method, k (labelled tweets per class) and seed, a fresh model trains on
`kfinetune.data.few_shot(data, k, seed)` (nested: for one seed the k=8
sample is part of the k=16 one) for a fixed number of steps of batch
`min(16, 2k)`, AdamW with linear decay, without XLA (each run is a new
model, and compiling one costs more than it saves in 100 steps). The
learning rates are the quality benchmark's (chosen with 2,000 training
tweets), not tuned for few examples. Cells are test accuracy (and
macro-F1), mean ± sample std over seeds; the curve goes to
`docs/img/few_shot.png`.

    python -m benchmarks.few_shot [--methods full lora prompt linear_probe]
        [--ks 8 16 32 64] [--seeds 0 1 2] [--steps 100] [--limit STEPS]

`--limit N` is a smoke run: the first k and the first seed only, N steps,
a test split of 64 tweets, and the figure written to a temporary folder.
"""

import argparse
import logging
import pathlib
import tempfile
import time

from benchmarks import harness
from benchmarks import report
from kfinetune import data as data_lib
from kfinetune import presets
from kfinetune import recipes

SEQUENCE_LENGTH = 64
BATCH_SIZE = 16
FIGURE = pathlib.Path(__file__).parent.parent / "docs" / "img" / "few_shot.png"

METHODS = {
    "full": recipes.FewShotMethod.full,
    "lora": recipes.FewShotMethod.lora,
    "prompt": recipes.FewShotMethod.prompt,
    "linear_probe": recipes.FewShotMethod.linear_probe,
}


def build():
    """The real MiniLM classifier with its preprocessor, a new head."""
    return presets.text_classifier(
        num_classes=2, sequence_length=SEQUENCE_LENGTH
    )


def results_rows(curve):
    """One row per method: a mean ± std cell per k, and the raw runs."""
    rows = {}
    for name, method in curve.methods.items():
        runs = [run for run in curve.runs if run["method"] == name]
        row = {
            "learning_rate": method["learning_rate"],
            "trainable_params": runs[0]["trainable_params"],
        }
        for k in curve.ks:
            row[f"k={k}"] = harness.format_mean_std(curve.scores(name, k))
        for k in curve.ks:
            row[f"k={k} macro-F1"] = harness.format_mean_std(
                curve.scores(name, k, "macro_f1")
            )
        row["note"] = method["note"]
        row["runs"] = runs
        rows[name] = row
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.few_shot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS)
    )
    parser.add_argument("--ks", nargs="+", type=int, default=[8, 16, 32, 64])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument(
        "--limit",
        type=int,
        help="a smoke run: the first k and seed only, this many steps, 64 "
        "test tweets (the result is marked)",
    )
    args = parser.parse_args(argv)
    # Every run builds a new model and so new tf.functions, which
    # TensorFlow warns about as retracing.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    ks, seeds, steps, test_size = args.ks, args.seeds, args.steps, 1000
    figure = FIGURE
    if args.limit is not None:
        ks, seeds, steps, test_size = ks[:1], seeds[:1], args.limit, 64
        figure = pathlib.Path(tempfile.mkdtemp()) / "few_shot.png"
    data = data_lib.tweet_sentiment(
        classes=2, seed=0, validation_size=0, test_size=test_size
    )
    start = time.perf_counter()
    curve = recipes.few_shot_curve(
        build,
        data,
        ks=ks,
        seeds=seeds,
        methods={name: METHODS[name]() for name in args.methods},
        steps=steps,
        batch_size=BATCH_SIZE,
        jit_compile=False,
    )
    print(f"{len(curve.runs)} runs in {time.perf_counter() - start:.0f} s")
    payload = {
        "parameters": {
            "model": "all-MiniLM-L6-v2 (TextClassifier, 2 classes)",
            "data": "kfinetune.data.tweet_sentiment(classes=2, seed=0, "
            f"validation_size=0, test_size={test_size}); train sample "
            "kfinetune.data.few_shot(data, k, seed)",
            "methods": args.methods,
            "ks": ks,
            "seeds": seeds,
            "steps": steps,
            "batch_size": f"min({BATCH_SIZE}, 2k)",
            "sequence_length": SEQUENCE_LENGTH,
            "optimizer": "AdamW, the method's peak learning rate, linear "
            "decay to 0 over the steps",
            "jit_compile": False,
            "limit": args.limit,
            "figure": str(figure),
        },
        "results": results_rows(curve),
    }
    payload["description"] = harness.description(__doc__)
    if args.limit is None:
        payload["description"] += (
            "\n\nGuide: [Few-shot fine-tuning](few-shot.md).\n\n"
            "![Few-shot learning curves](img/few_shot.png)"
        )
    # The figure first: the full run's description shows it.
    print(f"wrote {curve.plot(figure, title='MiniLM, binary tweets')}")
    harness.write_json("few_shot", payload)
    print(report.render_results("few_shot", payload))


if __name__ == "__main__":
    main()
