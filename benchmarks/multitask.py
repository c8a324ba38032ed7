"""Multi-task against single-task fine-tuning on two real tweet tasks, over
seeds, with full fine-tuning and with LoRA under `peft.apply`'s defaults.

The tasks come from the bundled tweets (`tweet_sentiment(classes=3)`):

- `sentiment`: negative / neutral / positive, the corpus's labels, on
  every tweet;
- `airline`: which of six US airlines a tweet is addressed to, read from
  its first @handle, on the tweets that have one. Every @handle is removed
  from the inputs of both tasks, so the airline must be told from the rest
  of the text (airport codes, routes, how customers complain).

Every model is `kfinetune.multitask.build` on the real MiniLM (sequence
length 64) with one head per task it learns: one head for a single-task
run, both for a multi-task run, which draws its batches from
`kfinetune.data.mix` (temperature sampling 2.0, loss weights 1). LoRA runs
apply `LoRAConfig(rank=8, alpha=16)` with no `trainable=`: the heads stay
trainable because `peft.apply` keeps the task heads by default. AdamW with
linear decay to zero, batch 32; each task is scored on its own test
tweets (accuracy and macro-F1, `kfinetune.multitask.evaluate`).

Not yet in `make quality`: its runs so far stayed at the majority class
even for sentiment alone, which `examples/multitask_tweets.py` learns, so
something in this script is still wrong (under investigation).

    python -m benchmarks.multitask [--methods single_sentiment ...]
        [--epochs 2] [--seeds 0 1 2] [--train-size 2000] [--limit BATCHES]
"""

import argparse
import dataclasses
import logging
import re
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

import kfinetune
from benchmarks import harness
from benchmarks import report
from kfinetune import multitask
from kfinetune import peft
from kfinetune import presets

BATCH_SIZE = 32
SEQUENCE_LENGTH = 64
TEST_SIZE = 1000
AIRLINES = (
    "united",
    "usairways",
    "americanair",
    "southwestair",
    "jetblue",
    "virginamerica",
)
NUM_CLASSES = {"sentiment": 3, "airline": len(AIRLINES)}
_HANDLE = re.compile(r"@(\w+)")


def carrier(text):
    """The index in `AIRLINES` of the first airline handle, or -1."""
    for handle in _HANDLE.findall(text):
        if handle.lower() in AIRLINES:
            return AIRLINES.index(handle.lower())
    return -1


def task_data(split):
    """`{task: unbatched (text, label) dataset}` of one split, handles
    removed from every text."""
    texts = [t.decode() for t, _ in split.as_numpy_iterator()]
    labels = np.array([int(y) for _, y in split.as_numpy_iterator()])
    inputs = [" ".join(_HANDLE.sub(" ", t).split()) for t in texts]
    carriers = np.array([carrier(t) for t in texts])
    known = np.flatnonzero(carriers >= 0)
    return {
        "sentiment": tf.data.Dataset.from_tensor_slices(
            (inputs, labels.astype("int32"))
        ),
        "airline": tf.data.Dataset.from_tensor_slices(
            ([inputs[i] for i in known], carriers[known].astype("int32"))
        ),
    }


@dataclasses.dataclass(frozen=True)
class Method:
    """A training setup.

    Attributes:
        tasks: the tasks the model learns (one head each).
        lora: LoRA under `peft.apply`'s defaults, else full fine-tuning.
        learning_rate: the peak AdamW learning rate.
    """

    tasks: tuple
    lora: bool
    learning_rate: float


METHODS = {
    f"{'lora_' if lora else ''}{name}": Method(
        tasks, lora, 2e-3 if lora else 5e-5
    )
    for lora in (False, True)
    for name, tasks in (
        ("single_sentiment", ("sentiment",)),
        ("single_airline", ("airline",)),
        ("multitask", ("sentiment", "airline")),
    )
}


def run(method, seed, epochs, train_size, limit=None):
    """Trains one model with one seed and scores each of its tasks."""
    keras.utils.set_random_seed(seed)
    data = kfinetune.data.tweet_sentiment(
        classes=3,
        seed=seed,
        train_size=train_size,
        validation_size=0,
        test_size=TEST_SIZE,
    )
    train = {
        t: d for t, d in task_data(data.train).items() if t in method.tasks
    }
    test = {t: d for t, d in task_data(data.test).items() if t in method.tasks}
    preprocessor = presets.text_classifier_preprocessor(
        sequence_length=SEQUENCE_LENGTH
    )
    backbone = keras_hub.models.Backbone.from_preset(str(presets.minilm_path()))
    model = multitask.build(
        backbone, heads={t: NUM_CLASSES[t] for t in method.tasks}
    )
    if method.lora:
        model = peft.apply(model, peft.LoRAConfig(rank=8, alpha=16))
    mixed = kfinetune.data.mix(train, sampling=2.0, seed=seed)
    batches = (
        mixed.shuffle(10_000, seed=seed)
        .batch(BATCH_SIZE)
        .map(lambda x, y, w: (preprocessor(x), y, w))
    )
    if limit is not None:
        batches = batches.take(limit)
    # A mix's size is unknown to tf.data: count its batches (a negative
    # cardinality made the learning-rate decay meaningless).
    steps = epochs * sum(1 for _ in batches)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.PolynomialDecay(
                method.learning_rate, steps, end_learning_rate=0.0
            )
        ),
        loss={t: sparse for t in method.tasks},
        jit_compile=True,
    )
    start = time.perf_counter()
    model.fit(batches, epochs=epochs, verbose=0)
    fit_seconds = time.perf_counter() - start
    scores = multitask.evaluate(
        model,
        {t: d.map(lambda x, y: (preprocessor(x), y)) for t, d in test.items()},
    )
    result = {"seed": seed, "fit_seconds": fit_seconds}
    for task in method.tasks:
        labels = np.array([int(y) for _, y in test[task].as_numpy_iterator()])
        result[task] = {
            "accuracy": scores[task]["accuracy"],
            "macro_f1": scores[task]["macro_f1"],
            "majority": float(np.bincount(labels).max() / len(labels)),
            "train": int(train[task].cardinality()),
            "test": len(labels),
        }
    return result


def summarise(method, runs):
    """One table row: each task's mean ± std over the seeds."""
    row = {
        "training": "LoRA r=8 (defaults)" if method.lora else "full",
        "learning rate": f"{method.learning_rate:g}",
    }
    for task in ("sentiment", "airline"):
        if task not in method.tasks:
            row[f"{task} accuracy"] = row[f"{task} macro F1"] = "—"
            continue
        row[f"{task} accuracy"] = harness.format_mean_std(
            [r[task]["accuracy"] for r in runs]
        )
        row[f"{task} macro F1"] = harness.format_mean_std(
            [r[task]["macro_f1"] for r in runs]
        )
    row["fit (s)"] = f"{np.mean([r['fit_seconds'] for r in runs]):.0f}"
    row["runs"] = runs
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.multitask",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS)
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument(
        "--limit",
        type=int,
        help="train on at most this many batches per epoch (smoke runs; "
        "the result is marked)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    results = {}
    for name in args.methods:
        method = METHODS[name]
        runs = []
        for seed in args.seeds:
            result = run(method, seed, args.epochs, args.train_size, args.limit)
            runs.append(result)
            scores = ", ".join(
                f"{task} accuracy {result[task]['accuracy']:.3f} "
                f"(majority {result[task]['majority']:.3f})"
                for task in method.tasks
            )
            print(
                f"{name} seed {seed}: {scores}, fit "
                f"{result['fit_seconds']:.0f} s",
                flush=True,
            )
        results[name] = summarise(method, runs)
    payload = {
        "description": harness.description(__doc__),
        "parameters": {
            "model": "all-MiniLM-L6-v2 (multitask.build)",
            "data": "tweet_sentiment(classes=3, seed=seed): "
            f"{args.train_size} train, {TEST_SIZE} test tweets; airline "
            "task on the tweets with an airline handle, handles removed",
            "batch_size": BATCH_SIZE,
            "sequence_length": SEQUENCE_LENGTH,
            "optimizer": "AdamW, linear decay to 0 over the run",
            "sampling": 2.0,
            "jit_compile": True,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "limit": args.limit,
        },
        "results": results,
    }
    harness.write_json("multitask", payload)
    print(report.render_results("multitask", payload))


if __name__ == "__main__":
    main()
