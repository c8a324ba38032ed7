"""Test accuracy of fine-tuning methods on the real tweets, over seeds.

Each run builds the real MiniLM (`kfinetune.presets.text_classifier`,
sequence length 64), configures it with a method, trains it on the binary
tweet-sentiment split of that seed (batch 32) and evaluates accuracy and
macro-F1 on the test split (and the validation split, the one to tune
learning rates on). Results are means ± standard deviations over seeds:
the 1,000-tweet test set alone has a standard error of about 0.8 points.

    python -m benchmarks.quality [--methods full linear_probe keras_lora]
        [--epochs 1] [--seeds 0 1 2] [--limit BATCHES]
"""

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Callable

import keras
import numpy as np

import kfinetune
from benchmarks import harness
from benchmarks import report
from benchmarks import workloads
from kfinetune import evaluation
from kfinetune import presets
from kfinetune import recipes

BATCH_SIZE = 32
SEQUENCE_LENGTH = 64


@dataclasses.dataclass(frozen=True)
class Method:
    """A fine-tuning method as the quality benchmark runs it.

    Attributes:
        configure: takes a freshly built classifier and returns the model
            to train (see `benchmarks.workloads`).
        learning_rate: the AdamW learning rate.
        note: what the method trains and where the learning rate comes
            from.
        train: optional `train(model, dataset, epochs, learning_rate)`
            that compiles and fits the model itself (a recipe); by default
            AdamW with linear decay.
    """

    configure: Callable
    learning_rate: float
    note: str
    train: Callable | None = None


def _train(model, train, epochs, peak_learning_rate):
    steps = epochs * int(train.cardinality())
    # Every method: linear decay to zero over the run, the usual BERT
    # fine-tuning schedule.
    learning_rate = keras.optimizers.schedules.PolynomialDecay(
        peak_learning_rate, decay_steps=steps, end_learning_rate=0.0
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=None,
        jit_compile=True,
    )
    # The data module shuffles; `shuffle` would only warn that it cannot.
    model.fit(train, epochs=epochs, shuffle=False, verbose=0)


# LoRA+'s learning-rate ratio of B over A: the paper's and PEFT's
# recommendation.
LORA_PLUS_RATIO = 16.0


def _train_lora_plus(model, train, epochs, peak_learning_rate):
    steps = epochs * int(train.cardinality())
    learning_rate = keras.optimizers.schedules.PolynomialDecay(
        peak_learning_rate, decay_steps=steps, end_learning_rate=0.0
    )
    model.compile(
        optimizer=kfinetune.optimizers.lora_plus(
            keras.optimizers.AdamW(learning_rate), model, LORA_PLUS_RATIO
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=None,
        jit_compile=True,
    )
    model.fit(train, epochs=epochs, shuffle=False, verbose=0)


def _ulmfit(model, train, epochs, learning_rate):
    recipes.fine_tune(
        model,
        train,
        epochs,
        learning_rate=learning_rate,
        decay=0.9,
        unfreeze_fraction=0.3,
        metrics=[],
        jit_compile=True,
        verbose=0,
    )


METHODS = {
    "full": Method(
        workloads.full,
        5e-5,
        "every weight trains; 5e-5 is the top of BERT's recommended range "
        "(2e-5 to 5e-5), suited to one short epoch",
    ),
    "linear_probe": Method(
        workloads.frozen,
        1e-3,
        "backbone frozen, only the head trains; a new linear layer takes a "
        "large learning rate",
    ),
    "keras_lora": Method(
        workloads.keras_lora,
        5e-4,
        "keras-hub enable_lora(rank=8) on query and value, head trainable "
        "(its A factors have shape (d, heads, r): 445k LoRA weights, not "
        "the standard 74k); LoRA usually takes 1e-4 to 1e-3, more than "
        "full fine-tuning (not tuned here)",
    ),
    "lora": Method(
        workloads.lora,
        2e-3,
        "kfinetune LoRAConfig(rank=8, alpha=16) on query and value, head "
        "trainable (74,498 trainable weights, 0.33 %); peak learning rate "
        "chosen on the validation split of seed 0 (one epoch, constant "
        "rate): 5e-4 0.798, 1e-3 0.858, 2e-3 0.902",
    ),
    "dora": Method(
        workloads.dora,
        2e-3,
        "as `lora` (same rank, targets and learning rate, not tuned), with "
        "DoRA's trainable magnitude per output unit "
        "(LoRAConfig(use_dora=True))",
    ),
    "rslora": Method(
        workloads.rslora,
        2e-3,
        "as `lora` (learning rate not tuned), scaled by alpha / sqrt(rank) "
        "= 5.66 instead of alpha / rank = 2 (LoRAConfig(use_rslora=True))",
    ),
    "pissa": Method(
        workloads.pissa,
        2e-3,
        "as `lora` (learning rate not tuned), A and B started from the "
        "kernels' top 8 singular vectors, the residual in the base "
        '(LoRAConfig(init="pissa"))',
    ),
    "lora_plus": Method(
        workloads.lora,
        5e-4,
        "as `lora`, with LoRA+ (kfinetune.optimizers.lora_plus, ratio 16): "
        "A and the head at 5e-4, B at 8e-3 (a quarter of LoRA's rate for "
        "A, four times for B; not tuned)",
        train=_train_lora_plus,
    ),
    "lora_int8": Method(
        workloads.lora_int8,
        2e-3,
        "as `lora` (same learning rate), over a backbone quantized to int8 "
        'with Keras\'s `backbone.quantize("int8")` (QLoRA-style): the '
        "LoRA factors and the head train in float",
    ),
    "houlsby": Method(
        workloads.houlsby,
        2e-3,
        "kfinetune AdapterConfig(size=48, placement='houlsby'), head "
        "trainable (448,322 trainable weights, 1.94 %); peak learning rate "
        "chosen on the validation split of seed 0 (one epoch, constant "
        "rate): 5e-4 0.840, 1e-3 0.904, 2e-3 0.914",
    ),
    "ia3": Method(
        workloads.ia3,
        3e-2,
        "kfinetune IA3Config() on keys, values and the feed-forward "
        "activation, head trainable (14,594 trainable weights, 0.06 %); "
        "peak learning rate chosen on the validation split of seed 0 (one "
        "epoch, constant rate): 3e-3 0.768, 1e-2 0.876, 3e-2 0.902, "
        "1e-1 0.884",
    ),
    "prefix": Method(
        workloads.prefix,
        1e-3,
        "kfinetune PrefixConfig(length=16) with the MLP "
        "reparameterisation (hidden 512, one MLP per layer), head "
        "trainable (3,584,258 weights train, 15.8 %; 73,728 stored once "
        "folded); peak learning rate chosen on the validation split of "
        "seed 0 (one epoch, constant rate): 3e-4 0.778, 1e-3 0.796, "
        "3e-3 and 1e-2 0.500 (the representations collapse: every input "
        "gives the same logits)",
    ),
    "prompt": Method(
        workloads.prompt,
        3e-2,
        "kfinetune PromptConfig(length=20, init='vocab') after [CLS], head "
        "trainable (8,450 trainable weights, 0.04 %); peak learning rate "
        "chosen on the validation split of seed 0 (one epoch, constant "
        "rate): 1e-2 0.770, 3e-2 0.778, 1e-1 0.736",
    ),
    "ulmfit": Method(
        workloads.full,
        1e-4,
        "kfinetune.recipes.fine_tune: the head first, then one more group "
        "(of 8) per stage until all train at 30 % of the run "
        "(GradualUnfreezing), layer-wise decay 0.9 (head 1e-4 down to "
        "embeddings 4.8e-5: BERT's range rather than ULMFiT's 2.6 per group "
        "for LSTMs), slanted triangular schedule; chosen on the validation "
        "split of seed 0 (3 epochs) among (rate, decay, fraction) = "
        "(1e-4, 0.8, 0.5) 0.920, (2e-4, 0.8, 0.5) 0.930, "
        "(1e-4, 0.9, 0.3) 0.932",
        train=_ulmfit,
    ),
}


def run(method, seed, epochs, limit=None):
    """Trains and evaluates one method with one seed.

    Args:
        method: a `Method`.
        seed: seeds Keras (head initialisation, dropout) and the data split.
        epochs: passes over the training split.
        limit: if set, train on at most this many batches per epoch and
            evaluate on at most this many batches of each split (smoke
            runs).

    Returns:
        A JSON-ready dict of the run's measurements.
    """
    keras.utils.set_random_seed(seed)
    data = kfinetune.data.tweet_sentiment(classes=2, seed=seed)
    model = presets.text_classifier(
        num_classes=2, sequence_length=SEQUENCE_LENGTH
    )
    model = method.configure(model)
    train = data.train.batch(BATCH_SIZE)
    validation = data.validation.batch(BATCH_SIZE)
    test = data.test.batch(BATCH_SIZE)
    if limit is not None:
        train, validation, test = (
            split.take(limit) for split in (train, validation, test)
        )
    trainable, total = workloads.parameter_counts(model)
    start = time.perf_counter()
    if method.train is not None:
        method.train(model, train, epochs, method.learning_rate)
    else:
        _train(model, train, epochs, method.learning_rate)
    fit_seconds = time.perf_counter() - start
    test_report = evaluation.evaluate_classifier(model, test, data.class_names)
    validation_report = evaluation.evaluate_classifier(
        model, validation, data.class_names
    )
    return {
        "seed": seed,
        "trainable_params": trainable,
        "total_params": total,
        "test_accuracy": test_report.accuracy,
        "test_macro_f1": test_report.macro_f1,
        "test_examples": sum(test_report.support),
        "validation_accuracy": validation_report.accuracy,
        "fit_seconds": fit_seconds,
    }


def summarise(method, runs):
    """Means and sample standard deviations of a method's runs."""

    def stats(key):
        values = np.array([r[key] for r in runs], dtype=float)
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        return float(values.mean()), float(std)

    accuracy_mean, accuracy_std = stats("test_accuracy")
    f1_mean, f1_std = stats("test_macro_f1")
    return {
        "learning_rate": method.learning_rate,
        "note": method.note,
        "trainable_params": runs[0]["trainable_params"],
        "total_params": runs[0]["total_params"],
        "trainable_percent": (
            100 * runs[0]["trainable_params"] / runs[0]["total_params"]
        ),
        "test_accuracy_mean": accuracy_mean,
        "test_accuracy_std": accuracy_std,
        "test_macro_f1_mean": f1_mean,
        "test_macro_f1_std": f1_std,
        "validation_accuracy_mean": stats("validation_accuracy")[0],
        "fit_seconds_mean": stats("fit_seconds")[0],
        "runs": runs,
    }


def _merged(results, args):
    """Adds the other methods of an earlier run with the same epochs, seeds
    and limit, so methods can be measured one command at a time."""
    path = harness.RESULTS_DIR / "quality.json"
    if not path.exists():
        return results
    earlier = json.loads(path.read_text())
    same = all(
        earlier["parameters"].get(key) == value
        for key, value in (
            ("epochs", args.epochs),
            ("seeds", args.seeds),
            ("limit", args.limit),
        )
    )
    if not same:
        return results
    return {**earlier["results"], **results}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--methods", nargs="+", choices=sorted(METHODS), default=list(METHODS)
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--limit",
        type=int,
        help="train on at most this many batches per epoch and evaluate on "
        "at most this many per split (smoke runs; the result is marked)",
    )
    args = parser.parse_args(argv)
    # Every run builds a new model and so new tf.functions, which
    # TensorFlow warns about as retracing.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    results = {}
    for name in args.methods:
        method = METHODS[name]
        runs = []
        for seed in args.seeds:
            result = run(method, seed, args.epochs, args.limit)
            runs.append(result)
            print(
                f"{name} seed {seed}: test accuracy "
                f"{result['test_accuracy']:.3f}, macro-F1 "
                f"{result['test_macro_f1']:.3f}, validation accuracy "
                f"{result['validation_accuracy']:.3f}, fit "
                f"{result['fit_seconds']:.0f} s",
                flush=True,
            )
        results[name] = summarise(method, runs)
    payload = {
        "parameters": {
            "model": "all-MiniLM-L6-v2 (TextClassifier, 2 classes)",
            "data": "kfinetune.data.tweet_sentiment(classes=2, seed=seed)",
            "batch_size": BATCH_SIZE,
            "sequence_length": SEQUENCE_LENGTH,
            "optimizer": "AdamW, peak learning rate per method, linear "
            "decay to 0 over the run",
            "jit_compile": True,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "limit": args.limit,
        },
        "results": _merged(results, args),
    }
    harness.write_json("quality", payload)
    print(report.render_results("quality", payload))


if __name__ == "__main__":
    main()
