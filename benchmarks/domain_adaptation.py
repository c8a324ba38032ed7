"""Domain adaptation on real tweets: does continued masked-LM pretraining
on unlabelled tweets help fine-tuning with few labels?

For each seed, the real MiniLM classifier is adapted once with
`kfinetune.recipes.domain_adapt` on unlabelled tweets (the three
sentiments of the bundled corpus, labels dropped, every tweet of the
seed's labelled test split removed), then fine-tuned on 100 and on 400
labelled binary tweets; the same fine-tuning without adaptation, from the
same head initialisation, is the baseline. Test accuracy on the seed's
1,000 test tweets.

The MLM head starts untrained: keras-hub's `BertMaskedLM` head (a dense
layer with truncated-normal initialisation, standard deviation 0.02, a
layer normalisation, and the token embedding transposed as the output
projection) because the bundled MiniLM, a sentence-transformers
checkpoint, ships no MLM head.

    python -m benchmarks.domain_adaptation [--labels 100 400]
        [--unlabelled 4000] [--seeds 0 1 2] [--limit BATCHES]
"""

import argparse
import logging
import pathlib
import tempfile
import time

import keras
import numpy as np

import kfinetune
from benchmarks import harness
from benchmarks import report
from kfinetune import evaluation
from kfinetune import presets
from kfinetune import recipes

SEQUENCE_LENGTH = 64
BATCH_SIZE = 16
LEARNING_RATE = 5e-5
MLM_LEARNING_RATE = 2e-5
MLM_BATCH_SIZE = 32
TEST_SIZE = 1000
# Fewer labels, more passes: about 60 to 125 steps either way.
EPOCHS = {100: 10, 400: 5}


def _epochs(labels):
    return EPOCHS.get(labels, max(1, 1000 // labels))


def _classifier(seed):
    # The same seed gives the same head initialisation to both arms.
    keras.utils.set_random_seed(seed)
    return presets.text_classifier(
        num_classes=2, sequence_length=SEQUENCE_LENGTH
    )


def _fine_tune_and_test(model, data, seed, epochs, limit):
    keras.utils.set_random_seed(seed)
    steps = epochs * -(-len(data.splits["train"]) // BATCH_SIZE)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.PolynomialDecay(
                LEARNING_RATE, decay_steps=steps, end_learning_rate=0.0
            )
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    train = data.train.batch(BATCH_SIZE)
    test = data.test.batch(32)
    if limit is not None:
        train, test = train.take(limit), test.take(limit)
    model.fit(train, epochs=epochs, shuffle=False, verbose=0)
    return evaluation.evaluate_classifier(model, test, data.class_names)


def unlabelled_tweets(seed, size, exclude):
    """`size` tweets of all sentiments, labels dropped, `exclude` removed."""
    pool = kfinetune.data.tweet_sentiment(
        classes=3,
        seed=seed + 1000,
        train_size=size,
        validation_size=0,
        test_size=0,
    ).splits["train"]
    return [text for text in pool.texts if text not in exclude]


def run(seed, label_counts, unlabelled_size, limit=None):
    """One seed: the adapted backbone once, then each label count."""
    splits = {
        labels: kfinetune.data.tweet_sentiment(
            classes=2,
            seed=seed,
            train_size=labels,
            validation_size=0,
            test_size=TEST_SIZE,
        )
        for labels in label_counts
    }
    test_texts = set(next(iter(splits.values())).splits["test"].texts)
    unlabelled = unlabelled_tweets(seed, unlabelled_size, test_texts)
    if limit is not None:
        unlabelled = unlabelled[: limit * MLM_BATCH_SIZE]
    adapted = _classifier(seed)
    start = time.perf_counter()
    recipes.domain_adapt(
        adapted,
        unlabelled,
        epochs=1,
        batch_size=MLM_BATCH_SIZE,
        learning_rate=MLM_LEARNING_RATE,
        seed=seed,
        jit_compile=True,
        verbose=0,
    )
    mlm_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as directory:
        weights = pathlib.Path(directory) / "adapted.weights.h5"
        adapted.backbone.save_weights(weights)
        del adapted
        results = []
        for labels, data in splits.items():
            epochs = _epochs(labels)
            pretrained = _classifier(seed)
            model = _classifier(seed)
            model.backbone.load_weights(weights)
            # How far the MLM moved the encoder: a check that the adapted
            # weights are the ones fine-tuned.
            moved = max(
                float(np.max(np.abs(a.numpy() - b.numpy())))
                for a, b in zip(
                    model.backbone.weights,
                    pretrained.backbone.weights,
                    strict=True,
                )
            )
            baseline = _fine_tune_and_test(
                pretrained, data, seed, epochs, limit
            )
            with_mlm = _fine_tune_and_test(model, data, seed, epochs, limit)
            results.append(
                {
                    "seed": seed,
                    "labels": labels,
                    "epochs": epochs,
                    "unlabelled_tweets": len(unlabelled),
                    "test_tweets": sum(baseline.support),
                    "baseline_accuracy": baseline.accuracy,
                    "adapted_accuracy": with_mlm.accuracy,
                    "mlm_seconds": mlm_seconds,
                    "mlm_max_weight_change": moved,
                }
            )
            print(
                f"seed {seed}, {labels} labels: without adaptation "
                f"{baseline.accuracy:.3f}, with {with_mlm.accuracy:.3f}",
                flush=True,
            )
    return results


def summarise(runs):
    """One row per label count: the two arms and their paired gain."""
    rows = {}
    for labels in sorted({r["labels"] for r in runs}):
        mine = [r for r in runs if r["labels"] == labels]
        baseline = [r["baseline_accuracy"] for r in mine]
        adapted = [r["adapted_accuracy"] for r in mine]
        gain = [100 * (a - b) for a, b in zip(adapted, baseline, strict=True)]
        rows[f"{labels}_labels"] = {
            "labels": labels,
            "epochs": mine[0]["epochs"],
            "without adaptation": harness.format_mean_std(baseline),
            "with MLM adaptation": harness.format_mean_std(adapted),
            "gain (points)": harness.format_mean_std(gain, digits=1),
            "seeds": len(mine),
            "runs": mine,
        }
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.domain_adaptation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--labels", nargs="+", type=int, default=[100, 400])
    parser.add_argument("--unlabelled", type=int, default=4000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--limit",
        type=int,
        help="at most this many batches of MLM, of fine-tuning per epoch "
        "and of test (smoke runs; the result is marked)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    runs = []
    for seed in args.seeds:
        runs += run(seed, args.labels, args.unlabelled, args.limit)
    payload = {
        "description": harness.description(__doc__),
        "parameters": {
            "model": "all-MiniLM-L6-v2 (TextClassifier, 2 classes)",
            "data": "tweet_sentiment(classes=2, seed=seed, train_size="
            "labels, test_size=1000); unlabelled: tweet_sentiment("
            "classes=3, seed=seed + 1000) minus the test tweets",
            "mlm": f"domain_adapt: 1 epoch, batch {MLM_BATCH_SIZE}, AdamW "
            f"{MLM_LEARNING_RATE:g}, 15 % masking, untrained keras-hub MLM "
            "head",
            "fine_tuning": f"AdamW {LEARNING_RATE:g}, linear decay to 0, "
            f"batch {BATCH_SIZE}, epochs per label count {EPOCHS}",
            "sequence_length": SEQUENCE_LENGTH,
            "unlabelled": args.unlabelled,
            "jit_compile": True,
            "seeds": args.seeds,
            "limit": args.limit,
        },
        "results": summarise(runs),
    }
    harness.write_json("domain_adaptation", payload)
    print(report.render_results("domain_adaptation", payload))


if __name__ == "__main__":
    main()
