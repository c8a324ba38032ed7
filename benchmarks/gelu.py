"""Does exact GELU change fine-tuning quality? MiniLM with keras-hub's tanh
approximation against the checkpoint's own exact (erf) GELU.

keras-hub's `BertBackbone` computes the feed-forward activation with the
tanh approximation of GELU; all-MiniLM-L6-v2 was trained with exact GELU,
which `kfinetune.presets` now builds (`HFBertBackbone`). For each seed, both
models are fine-tuned fully on the binary tweets of that seed (2,000
train, 1,000 test), paired: the same new head weights, the same dropout
seed, the same batches. The gain is exact minus tanh, seed by seed.

    python -m benchmarks.gelu [--seeds 0 1 2] [--epochs 2] [--limit STEPS]

`--limit N` is a smoke run: N steps and N test batches, seed 0 only.
"""

import argparse
import logging
import time

import keras
import keras_hub

import kfinetune
from benchmarks import harness
from benchmarks import report
from kfinetune import evaluation
from kfinetune import presets

SEQUENCE_LENGTH = 64
BATCH_SIZE = 32
LEARNING_RATE = 5e-5
VARIANTS = ("tanh", "exact")


def _models(seed):
    """The tanh and the exact-GELU classifier, with the same head."""
    keras.utils.set_random_seed(seed)
    tanh = keras_hub.models.TextClassifier.from_preset(
        str(presets.minilm_path()), num_classes=2, preprocessor=None
    )
    keras.utils.set_random_seed(seed)
    exact = keras_hub.models.BertTextClassifier(
        backbone=presets.backbone(), num_classes=2, preprocessor=None
    )
    head = tanh.get_layer("logits").get_weights()
    exact.get_layer("logits").set_weights(head)
    return {"tanh": tanh, "exact": exact}


def run(seed, epochs, limit=None):
    """Fine-tunes both variants on one seed's split; returns their runs."""
    data = kfinetune.data.tweet_sentiment(classes=2, seed=seed)
    preprocessor = presets.text_classifier_preprocessor(
        sequence_length=SEQUENCE_LENGTH
    )
    texts = data.splits["train"]
    train = (
        texts.as_dataset(shuffle=True, seed=seed)
        .batch(BATCH_SIZE)
        .map(preprocessor)
    )
    test = data.test.batch(64).map(preprocessor)
    steps = epochs * -(-len(texts) // BATCH_SIZE)
    if limit is not None:
        train, test, steps = train.take(limit), test.take(limit), limit
    results = {}
    for name, model in _models(seed).items():
        model.compile(
            optimizer=keras.optimizers.AdamW(
                keras.optimizers.schedules.PolynomialDecay(
                    LEARNING_RATE, decay_steps=steps, end_learning_rate=0.0
                )
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            # A new model per run: compiling it costs more than it saves.
            jit_compile=False,
        )
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        model.fit(
            train,
            epochs=1 if limit is not None else epochs,
            shuffle=False,
            verbose=0,
        )
        fit_seconds = time.perf_counter() - start
        report_ = evaluation.evaluate_classifier(model, test, data.class_names)
        results[name] = {
            "seed": seed,
            "test_accuracy": report_.accuracy,
            "test_macro_f1": report_.macro_f1,
            "fit_seconds": fit_seconds,
        }
        print(
            f"seed {seed} {name}: test accuracy {report_.accuracy:.3f}, "
            f"fit {fit_seconds:.0f} s",
            flush=True,
        )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gelu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, help="a smoke run")
    args = parser.parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    seeds = args.seeds[:1] if args.limit is not None else args.seeds

    runs = {name: [] for name in VARIANTS}
    for seed in seeds:
        for name, result in run(seed, args.epochs, args.limit).items():
            runs[name].append(result)
    results = {}
    for name in VARIANTS:
        accuracy = [r["test_accuracy"] for r in runs[name]]
        row = {
            "feed-forward activation": {
                "tanh": "tanh approximation (keras-hub's BertBackbone)",
                "exact": "exact erf GELU (kfinetune.presets)",
            }[name],
            "test_accuracy": harness.format_mean_std(accuracy),
            "test_macro_f1": harness.format_mean_std(
                [r["test_macro_f1"] for r in runs[name]]
            ),
        }
        if name == "exact":
            gains = [
                100 * (e["test_accuracy"] - t["test_accuracy"])
                for e, t in zip(runs["exact"], runs["tanh"], strict=True)
            ]
            mean, std = harness.mean_std(gains)
            row["gain (points)"] = f"{mean:+.2f} ± {std:.2f}"
        else:
            row["gain (points)"] = ""
        row["runs"] = runs[name]
        results[name] = row
    payload = {
        "description": harness.description(__doc__),
        "parameters": {
            "model": "all-MiniLM-L6-v2 (TextClassifier, 2 classes), full "
            "fine-tuning",
            "data": "kfinetune.data.tweet_sentiment(classes=2, seed=seed)",
            "epochs": args.epochs,
            "batch_size": BATCH_SIZE,
            "sequence_length": SEQUENCE_LENGTH,
            "optimizer": f"AdamW {LEARNING_RATE}, linear decay to 0",
            "jit_compile": False,
            "seeds": seeds,
            "limit": args.limit,
        },
        "results": results,
    }
    harness.write_json("gelu", payload)
    print(report.render_results("gelu", payload))


if __name__ == "__main__":
    main()
