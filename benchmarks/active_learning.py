"""Active learning on the real tweets: test accuracy per number of labels.

For each strategy and seed, `kfinetune.active.simulate` hides the labels of
the 2,000-tweet binary train split (the pool), labels a random seed set of
the first budget, then queries up to each next budget with the strategy;
after every round the real MiniLM is fine-tuned again from its pretrained
weights on all labels so far and evaluated on the 1,000-tweet test split.
Every strategy starts from the same random seed set for a seed, so the
random strategy is the baseline on the same splits; `vs random` is the
mean ± std over seeds of the per-seed difference at the largest budget.

`least_confidence` and `margin` are left out by default: with two classes
they rank the pool exactly as `entropy` does (all three are decreasing
functions of the top probability), so their curves would repeat its own.

    python -m benchmarks.active_learning [--strategies random entropy bald
        kcenter] [--seeds 0 1 2] [--budgets 50 100 200 400] [--limit N]
"""

import argparse
import logging
import math
import time

import keras
import numpy as np

import kfinetune
from benchmarks import harness
from benchmarks import report
from kfinetune import active
from kfinetune import presets

SEQUENCE_LENGTH = 64
BATCH_SIZE = 16
EPOCHS = 10
LEARNING_RATE = 5e-5
PASSES = 5
QUERY_BATCH_SIZE = 64


def _build():
    # keras-hub's BERT presets keep dropout 0.1, which BALD's passes use.
    return presets.text_classifier(
        num_classes=2, sequence_length=SEQUENCE_LENGTH
    )


def _trainer(epochs, limit):
    def train(model, labelled, seed):
        dataset = labelled.as_dataset(shuffle=True, seed=seed).batch(BATCH_SIZE)
        if limit is not None:
            dataset = dataset.take(limit)
        steps = epochs * math.ceil(len(labelled) / BATCH_SIZE)
        if limit is not None:
            steps = epochs * min(limit, math.ceil(len(labelled) / BATCH_SIZE))
        model.compile(
            optimizer=keras.optimizers.AdamW(
                keras.optimizers.schedules.PolynomialDecay(
                    LEARNING_RATE, decay_steps=steps, end_learning_rate=0.0
                )
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            # A new model every round: XLA would compile each one again,
            # which costs more than it saves on a few hundred steps.
            jit_compile=False,
        )
        model.fit(dataset, epochs=epochs, shuffle=False, verbose=0)

    return train


def run(strategy, seed, budgets, epochs, limit):
    """One simulated active-learning run; returns a JSON-ready dict."""
    data = kfinetune.data.tweet_sentiment(classes=2, seed=seed)
    pool, test = data.splits["train"], data.splits["test"]
    if limit is not None:
        pool = pool.subset(range(min(len(pool), 64 * limit)))
        test = test.subset(range(min(len(test), 32 * limit)))
    curve = active.simulate(
        _build,
        pool,
        test,
        budgets=budgets,
        strategy=strategy,
        train=_trainer(epochs, limit),
        passes=PASSES if strategy == "bald" else None,
        query_batch_size=QUERY_BATCH_SIZE,
        seed=seed,
    )
    return curve, {
        "seed": seed,
        "budgets": list(curve.budgets),
        "test_accuracy": list(curve.accuracy),
        "test_macro_f1": list(curve.macro_f1),
        "round_seconds": list(curve.seconds),
        "labelled": curve.labelled.tolist(),
    }


def summarise(strategy, runs, random_runs):
    """A results row: accuracy mean ± std per budget, and the gain."""
    row = {}
    budgets = runs[0]["budgets"]
    for position, budget in enumerate(budgets):
        row[f"{budget} labels"] = harness.format_mean_std(
            [r["test_accuracy"][position] for r in runs]
        )
    if random_runs is not None:
        by_seed = {r["seed"]: r for r in random_runs}
        gains = [
            r["test_accuracy"][-1] - by_seed[r["seed"]]["test_accuracy"][-1]
            for r in runs
            if r["seed"] in by_seed
        ]
        column = f"vs random at {budgets[-1]}"
        if strategy == "random":
            # An empty cell keeps the column next to the accuracies.
            row[column] = ""
        elif gains:
            mean, std = harness.mean_std(gains)
            row[column] = f"{mean:+.3f} ± {std:.3f}"
    row["minutes per run"] = round(
        float(np.mean([sum(r["round_seconds"]) for r in runs])) / 60, 1
    )
    row["runs"] = runs
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.active_learning",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=active.STRATEGIES,
        default=["random", "entropy", "bald", "kcenter"],
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        help="defaults to 0 1 2, or to 0 alone with --limit",
    )
    parser.add_argument(
        "--budgets", nargs="+", type=int, default=[50, 100, 200, 400]
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument(
        "--limit",
        type=int,
        help="smoke run: a pool of 64 x N tweets, a test split of 32 x N, "
        "at most N batches per epoch, one epoch, budgets within the pool, "
        "seed 0 unless --seeds (the result is marked)",
    )
    args = parser.parse_args(argv)
    # Every round builds a new model and so new tf.functions, which
    # TensorFlow warns about as retracing.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    budgets = args.budgets
    epochs = args.epochs
    if args.seeds is None:
        args.seeds = [0] if args.limit is not None else [0, 1, 2]
    if args.limit is not None:
        budgets = [b for b in budgets if b <= 64 * args.limit] or [
            16 * args.limit
        ]
        epochs = 1

    start = time.perf_counter()
    curves, all_runs = [], {}
    for strategy in args.strategies:
        all_runs[strategy] = []
        for seed in args.seeds:
            curve, result = run(strategy, seed, budgets, epochs, args.limit)
            curves.append(curve)
            all_runs[strategy].append(result)
    results = {
        strategy: summarise(strategy, runs, all_runs.get("random"))
        for strategy, runs in all_runs.items()
    }
    active.save_learning_curves(
        harness.RESULTS_DIR / "active_learning.png",
        curves,
        title="Active learning, binary tweets, all-MiniLM-L6-v2",
    )
    payload = {
        "parameters": {
            "model": "all-MiniLM-L6-v2 (TextClassifier, 2 classes, dropout "
            "0.1), rebuilt from the pretrained weights every round",
            "data": "kfinetune.data.tweet_sentiment(classes=2, seed=seed): "
            "pool = train split (2,000), test = test split (1,000)",
            "strategies": args.strategies,
            "budgets": budgets,
            "seed_set": "the first budget, drawn uniformly at random with "
            "the seed (the same for every strategy)",
            "training": f"AdamW {LEARNING_RATE}, linear decay to 0, "
            f"{epochs} epochs, batch {BATCH_SIZE}, jit_compile=False "
            "(not tuned)",
            "bald_passes": PASSES,
            "kcenter_embedding": "the backbone's pooled output",
            "sequence_length": SEQUENCE_LENGTH,
            "query_batch_size": QUERY_BATCH_SIZE,
            "seeds": args.seeds,
            "limit": args.limit,
            "total_minutes": round((time.perf_counter() - start) / 60, 1),
        },
        "results": results,
    }
    harness.write_json("active_learning", payload)
    print(report.render_results("active_learning", payload))


if __name__ == "__main__":
    main()
