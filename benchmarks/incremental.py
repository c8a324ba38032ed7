"""Class-incremental fine-tuning on the real tweets: forgetting vs. learning.

Protocol (per seed): phase 1 fine-tunes the real MiniLM
(`kfinetune.presets.text_classifier`, sequence length 64) on the balanced
binary tweets (`tweet_sentiment(classes=2, seed=seed)`: 2,000 train, 1,000
test; negative, positive) for one epoch. Its head then grows to three
classes with `kfinetune.incremental.grow_head` (negative, positive, and the
new class neutral at index 2; the old logits are unchanged), and phase 2
fine-tunes a copy for one epoch per method on the *new data*: 1,000
neutral tweets and nothing else, the strict class-incremental setting
where the old classes' data is gone. The neutral tweets come from
`tweet_sentiment(classes=3, seed=seed)` (1,000 of its train split, 500 of
its test split); the binary data has no neutral tweet, so every split is
disjoint from every other.

Methods (phase 2, AdamW with linear decay from 5e-5, batch 32, XLA):

- `plain`: continued fine-tuning on the new data.
- `replay`: `kfinetune.data.replay(new, old, ratio=0.5)`: the new data plus
  as many phase-1 training tweets, drawn at random.
- `l2sp`: `kfinetune.incremental.anchor(model, strength)` toward the
  weights phase 1 ended with (the new head column toward its fresh
  initialisation).
- `ewc`: the same anchor weighted by the diagonal empirical Fisher of the
  old task (`kfinetune.incremental.fisher` on 200 phase-1 training tweets,
  one per batch); its strength is the L2-SP strength divided by the mean
  Fisher, so that both penalties pull equally hard on average and EWC
  only redistributes the pull toward the weights the old task needs.

Reported (mean ± std over seeds):

- `old before`: binary test accuracy after phase 1.
- `old after`: binary test accuracy after phase 2, choosing between the
  old classes' logits only (is the old task still solved?).
- `old in 3-way`: the share of binary test tweets classified correctly
  among all three classes (are old tweets now called neutral?).
- `3-way accuracy` / `3-way macro-F1`: on the binary test tweets plus 500
  neutral test tweets.

    python -m benchmarks.incremental [--seeds 0 1 2] [--methods ...]
        [--l2sp-strength 1.0] [--limit BATCHES]
"""

import argparse
import logging
import time

import keras
import numpy as np
import tensorflow as tf

import kfinetune
from benchmarks import harness
from benchmarks import report
from kfinetune import evaluation
from kfinetune import incremental
from kfinetune import presets

BATCH_SIZE = 32
SEQUENCE_LENGTH = 64
LEARNING_RATE = 5e-5
NEW_TRAIN = 1000
NEW_TEST = 500
REPLAY_RATIO = 0.5
FISHER_EXAMPLES = 200
EVAL_BATCH = 64
# Class indices after growing: the old classes keep theirs.
CLASS_NAMES = ("negative", "positive", "neutral")
METHODS = ("plain", "replay", "l2sp", "ewc")


def _fit(model, dataset):
    steps = int(dataset.cardinality())
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.PolynomialDecay(
                LEARNING_RATE, decay_steps=steps, end_learning_rate=0.0
            )
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    model.fit(dataset, epochs=1, shuffle=False, verbose=0)


def _neutral(split, size):
    """The first `size` neutral tweets of a 3-way split, labelled 2."""
    neutral = split.class_names.index("neutral")
    texts = split.texts[split.labels == neutral][:size]
    return kfinetune.data.LabelledTexts(
        texts, np.full(len(texts), 2), CLASS_NAMES
    )


def _relabelled(split):
    """A binary split under the three class names (labels unchanged)."""
    return kfinetune.data.LabelledTexts(split.texts, split.labels, CLASS_NAMES)


def _limited(dataset, limit):
    return dataset if limit is None else dataset.take(limit)


def _inputs(x, y):
    # Named, not a lambda: AutoGraph cannot read a lambda's source and warns.
    return x


def _scores(model, three_way_test, is_old, limit):
    """Old-task and 3-way scores from one prediction over the 3-way test
    split (`is_old` marks its tweets of the binary test split)."""
    batches = _limited(
        three_way_test.as_dataset(shuffle=False).batch(EVAL_BATCH), limit
    )
    labels = np.concatenate([y for _, y in batches.as_numpy_iterator()])
    logits = model.predict(batches.map(_inputs), verbose=0)
    old = is_old[: len(labels)]
    three_way = evaluation.classification_report(
        labels, np.argmax(logits, -1), CLASS_NAMES
    )
    return {
        # Between the old classes only: is the old task still solved?
        "old_after": float(
            np.mean(np.argmax(logits[old, :2], -1) == labels[old])
        ),
        # Among all three: are old tweets now called neutral?
        "old_in_3way": float(
            np.mean(np.argmax(logits[old], -1) == labels[old])
        ),
        "three_way_accuracy": three_way.accuracy,
        "three_way_macro_f1": three_way.macro_f1,
    }


def _data(seed):
    binary = kfinetune.data.tweet_sentiment(classes=2, seed=seed)
    # Proportional 3-way draws: about 31 % of each split is neutral.
    three = kfinetune.data.tweet_sentiment(
        classes=3,
        seed=seed,
        train_size=3400,
        validation_size=0,
        test_size=1700,
    )
    old_train = _relabelled(binary.splits["train"])
    old_test = _relabelled(binary.splits["test"])
    new_train = _neutral(three.splits["train"], NEW_TRAIN)
    new_test = _neutral(three.splits["test"], NEW_TEST)
    # Mixed, so that a smoke run's few batches hold both kinds.
    order = np.random.default_rng(seed).permutation(
        len(old_test) + len(new_test)
    )
    three_way_test = kfinetune.data.LabelledTexts(
        np.concatenate([old_test.texts, new_test.texts])[order],
        np.concatenate([old_test.labels, new_test.labels])[order],
        CLASS_NAMES,
    )
    is_old = order < len(old_test)
    return binary, old_train, new_train, three_way_test, is_old


def run_seed(seed, methods, l2sp_strength, limit):
    """Phase 1 once, then phase 2 with every method, for one seed."""
    keras.utils.set_random_seed(seed)
    binary, old_train, new_train, three_way_test, is_old = _data(seed)
    model = presets.text_classifier(
        num_classes=2, sequence_length=SEQUENCE_LENGTH
    )
    start = time.perf_counter()
    _fit(model, _limited(binary.train.batch(BATCH_SIZE), limit))
    phase1_seconds = time.perf_counter() - start
    old_before = evaluation.evaluate_classifier(
        model,
        _limited(binary.test.batch(EVAL_BATCH), limit),
        binary.class_names,
    ).accuracy
    print(f"seed {seed}: phase 1 binary accuracy {old_before:.3f}", flush=True)
    new = new_train.as_dataset(seed=seed)
    old = old_train.as_dataset(seed=seed)
    results = {}
    for method in methods:
        keras.utils.set_random_seed(seed)
        grown = incremental.grow_head(model, len(CLASS_NAMES))
        train = new
        strength = None
        if method == "replay":
            train = kfinetune.data.replay(new, old, REPLAY_RATIO, seed=seed)
        elif method == "l2sp":
            strength = l2sp_strength
            incremental.anchor(grown, strength)
        elif method == "ewc":
            examples = FISHER_EXAMPLES if limit is None else limit
            fisher = incremental.fisher(grown, old.take(examples).batch(1))
            mean = np.mean(np.concatenate([f.ravel() for f in fisher.values()]))
            strength = float(l2sp_strength / mean)
            incremental.anchor(grown, strength, "ewc", fisher=fisher)
        start = time.perf_counter()
        _fit(grown, _limited(train.batch(BATCH_SIZE), limit))
        fit_seconds = time.perf_counter() - start
        results[method] = {
            "seed": seed,
            "strength": strength,
            "old_before": old_before,
            **_scores(grown, three_way_test, is_old, limit),
            "phase1_seconds": phase1_seconds,
            "phase2_seconds": fit_seconds,
        }
        print(
            f"seed {seed} {method}: old {old_before:.3f} -> "
            f"{results[method]['old_after']:.3f}, old in 3-way "
            f"{results[method]['old_in_3way']:.3f}, 3-way "
            f"{results[method]['three_way_accuracy']:.3f}",
            flush=True,
        )
    return results


NOTES = {
    "plain": "phase 2 on the 1,000 neutral tweets only",
    "replay": f"neutral tweets + replay ratio {REPLAY_RATIO} of phase-1 "
    "training tweets",
    "l2sp": "anchor(strength) toward the phase-1 weights",
    "ewc": f"anchor('ewc'), Fisher of {FISHER_EXAMPLES} old tweets, strength "
    "= L2-SP strength / mean Fisher",
}


def summarise(method, runs):
    """One results row: formatted means ± stds, and the raw runs."""

    def cell(key):
        return harness.format_mean_std([r[key] for r in runs])

    return {
        "note": NOTES[method],
        "old before": cell("old_before"),
        "old after": cell("old_after"),
        "old in 3-way": cell("old_in_3way"),
        "3-way accuracy": cell("three_way_accuracy"),
        "3-way macro-F1": cell("three_way_macro_f1"),
        "phase 2 s": round(float(np.mean([r["phase2_seconds"] for r in runs]))),
        "runs": runs,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.incremental",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS)
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--l2sp-strength",
        type=float,
        default=1.0,
        help="the L2-SP strength; EWC's is this over the mean Fisher",
    )
    parser.add_argument(
        "--limit",
        type=int,
        help="train on at most this many batches per phase, evaluate on at "
        "most this many batches, estimate the Fisher on this many tweets "
        "(smoke runs; the result is marked)",
    )
    args = parser.parse_args(argv)
    # Every run builds new models and so new tf.functions, which TensorFlow
    # warns about as retracing.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)

    all_runs = {method: [] for method in args.methods}
    for seed in args.seeds:
        for method, result in run_seed(
            seed, args.methods, args.l2sp_strength, args.limit
        ).items():
            all_runs[method].append(result)
    payload = {
        "description": harness.description(__doc__),
        "parameters": {
            "model": "all-MiniLM-L6-v2 (TextClassifier, 2 classes, grown "
            "to 3 with kfinetune.incremental.grow_head)",
            "phase_1": "tweet_sentiment(classes=2, seed=seed): 2,000 train "
            "tweets, 1 epoch",
            "phase_2": f"{NEW_TRAIN} neutral tweets of tweet_sentiment("
            "classes=3, seed=seed, train_size=3400, validation_size=0, "
            "test_size=1700), 1 epoch",
            "old_test": "the 1,000 binary test tweets",
            "three_way_test": f"the binary test tweets + {NEW_TEST} neutral "
            "test tweets of the 3-way draw",
            "class_order": list(CLASS_NAMES),
            "batch_size": BATCH_SIZE,
            "sequence_length": SEQUENCE_LENGTH,
            "optimizer": f"AdamW, linear decay from {LEARNING_RATE} to 0 "
            "over each phase",
            "jit_compile": True,
            "replay_ratio": REPLAY_RATIO,
            "fisher_examples": FISHER_EXAMPLES,
            "l2sp_strength": args.l2sp_strength,
            "seeds": args.seeds,
            "limit": args.limit,
        },
        "results": {
            method: summarise(method, runs) for method, runs in all_runs.items()
        },
    }
    harness.write_json("incremental", payload)
    print(report.render_results("incremental", payload))


if __name__ == "__main__":
    main()
