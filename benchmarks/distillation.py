"""Test accuracy of a 3-layer MiniLM student distilled from a fine-tuned
6-layer MiniLM teacher, against the same student trained on labels only.

Per seed: the binary tweet-sentiment split of that seed; the real MiniLM
(`kfinetune.presets.text_classifier`, sequence length 64) with a new head,
from which three identical students are taken first
(`kfinetune.presets.shrink(model, [0, 2, 4])`: the pretrained embeddings,
layers 0, 2 and 4, the pooler and the same new head). The model is then
fully fine-tuned as the teacher. The students train for the same epochs
at the same learning rate: on the labels only, by distillation on the
labelled train split (`kfinetune.distillation.Distiller`, soft targets and
labels), and by distillation from unlabelled tweets only (other tweets of
the corpus, all three sentiments, every validation and test tweet removed;
the teacher labels them as training goes). Every model is evaluated on the
test split (accuracy, macro-F1) and the validation split. Means ± standard
deviations over seeds: the 1,000-tweet test set alone has a standard error
of about 0.8 points.

    python -m benchmarks.distillation [--seeds 0 1 2] [--epochs 3]
        [--teacher-epochs 2] [--unlabelled 4000] [--limit BATCHES]
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
from benchmarks import workloads
from kfinetune import distillation
from kfinetune import evaluation
from kfinetune import presets

BATCH_SIZE = 32
SEQUENCE_LENGTH = 64
STUDENT_LAYERS = [0, 2, 4]
TEACHER_LEARNING_RATE = 5e-5
STUDENT_LEARNING_RATE = 1e-4
TEMPERATURE = 2.0
ALPHA = 0.5
ROWS = {
    "teacher": "6 layers, full fine-tuning",
    "student_labels": "3 layers, trained on the labels only",
    "student_distilled": (
        f"3 layers, Distiller(temperature={TEMPERATURE}, alpha={ALPHA}) "
        "on the labelled train split"
    ),
    "student_unlabelled": (
        f"3 layers, Distiller(temperature={TEMPERATURE}) on unlabelled "
        "tweets only (soft targets)"
    ),
}


def _compile(model, learning_rate, steps, loss=True):
    # Linear decay to zero over the run, the usual BERT schedule.
    schedule = keras.optimizers.schedules.PolynomialDecay(
        learning_rate, decay_steps=max(steps, 1), end_learning_rate=0.0
    )
    kwargs = {}
    if loss:
        kwargs["loss"] = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule),
        metrics=None,
        jit_compile=True,
        **kwargs,
    )


def _fit(model, dataset, epochs, learning_rate, loss=True):
    steps = epochs * int(dataset.cardinality())
    _compile(model, learning_rate, steps, loss=loss)
    start = time.perf_counter()
    # The datasets shuffle themselves; `shuffle` would only warn.
    model.fit(dataset, epochs=epochs, shuffle=False, verbose=0)
    return time.perf_counter() - start


def _unlabelled_pool(data, size, seed):
    """Other tweets of the corpus, labels dropped, without the labelled
    validation and test tweets."""
    held_out = set(data.splits["test"].texts) | set(
        data.splits["validation"].texts
    )
    pool = kfinetune.data.tweet_sentiment(
        classes=3,
        seed=seed + 1000,
        train_size=size,
        validation_size=0,
        test_size=0,
    ).splits["train"]
    return [text for text in pool.texts if text not in held_out]


def run(seed, epochs, teacher_epochs, unlabelled_size, limit=None):
    """Trains the teacher and the three students of one seed.

    Returns:
        A dict of row name to that row's measurements.
    """
    keras.utils.set_random_seed(seed)
    data = kfinetune.data.tweet_sentiment(classes=2, seed=seed)
    model = presets.text_classifier(
        num_classes=2, sequence_length=SEQUENCE_LENGTH
    )
    students = {
        name: presets.shrink(model, STUDENT_LAYERS)
        for name in (
            "student_labels",
            "student_distilled",
            "student_unlabelled",
        )
    }
    texts = _unlabelled_pool(data, unlabelled_size, seed)
    train = data.train.batch(BATCH_SIZE)
    validation = data.validation.batch(BATCH_SIZE)
    test = data.test.batch(BATCH_SIZE)
    unlabelled = (
        tf.data.Dataset.from_tensor_slices(texts)
        .shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH_SIZE)
    )
    if limit is not None:
        train, validation, test, unlabelled = (
            split.take(limit) for split in (train, validation, test, unlabelled)
        )
    preprocess = model.preprocessor

    seconds = {
        "teacher": _fit(model, train, teacher_epochs, TEACHER_LEARNING_RATE)
    }
    teacher = model
    seconds["student_labels"] = _fit(
        students["student_labels"], train, epochs, STUDENT_LEARNING_RATE
    )
    distiller = distillation.Distiller(
        teacher,
        students["student_distilled"],
        temperature=TEMPERATURE,
        alpha=ALPHA,
    )
    seconds["student_distilled"] = _fit(
        distiller,
        train.map(preprocess),
        epochs,
        STUDENT_LEARNING_RATE,
        loss=False,
    )
    distiller = distillation.Distiller(
        teacher, students["student_unlabelled"], temperature=TEMPERATURE
    )
    seconds["student_unlabelled"] = _fit(
        distiller,
        unlabelled.map(preprocess),
        epochs,
        STUDENT_LEARNING_RATE,
        loss=False,
    )

    models = {"teacher": teacher, **students}
    runs = {}
    for name, trained in models.items():
        test_report = evaluation.evaluate_classifier(
            trained, test, data.class_names
        )
        validation_report = evaluation.evaluate_classifier(
            trained, validation, data.class_names
        )
        runs[name] = {
            "seed": seed,
            "params": workloads.parameter_counts(trained)[1],
            "test_accuracy": test_report.accuracy,
            "test_macro_f1": test_report.macro_f1,
            "test_examples": sum(test_report.support),
            "validation_accuracy": validation_report.accuracy,
            "fit_seconds": seconds[name],
        }
    runs["student_unlabelled"]["unlabelled_tweets"] = len(texts)
    return runs


def summarise(name, runs):
    """One results row: preformatted mean ± std cells and the raw runs."""

    def cell(key):
        return harness.format_mean_std([r[key] for r in runs])

    return {
        "model": ROWS[name],
        "params": runs[0]["params"],
        "test_accuracy": cell("test_accuracy"),
        "test_macro_f1": cell("test_macro_f1"),
        "validation_accuracy": cell("validation_accuracy"),
        "fit_seconds": f"{np.mean([r['fit_seconds'] for r in runs]):.0f}",
        "runs": runs,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.distillation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--unlabelled", type=int, default=4000)
    parser.add_argument(
        "--limit",
        type=int,
        help="train on at most this many batches per epoch and evaluate on "
        "at most this many per split (smoke runs; the result is marked)",
    )
    args = parser.parse_args(argv)
    # Every run builds new models and so new tf.functions, which
    # TensorFlow warns about as retracing.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    per_row = {name: [] for name in ROWS}
    for seed in args.seeds:
        runs = run(
            seed, args.epochs, args.teacher_epochs, args.unlabelled, args.limit
        )
        for name, result in runs.items():
            per_row[name].append(result)
            print(
                f"{name} seed {seed}: test accuracy "
                f"{result['test_accuracy']:.3f}, macro-F1 "
                f"{result['test_macro_f1']:.3f}, fit "
                f"{result['fit_seconds']:.0f} s",
                flush=True,
            )
    payload = {
        "description": harness.description(__doc__),
        "parameters": {
            "model": "all-MiniLM-L6-v2 (TextClassifier, 2 classes)",
            "student_layers": STUDENT_LAYERS,
            "data": "kfinetune.data.tweet_sentiment(classes=2, seed=seed)",
            "unlabelled": (
                "kfinetune.data.tweet_sentiment(classes=3, seed=seed + 1000, "
                f"train_size={args.unlabelled}) texts minus the labelled "
                "validation and test texts"
            ),
            "batch_size": BATCH_SIZE,
            "sequence_length": SEQUENCE_LENGTH,
            "optimizer": "AdamW, linear decay to 0 over each fit",
            "teacher_learning_rate": TEACHER_LEARNING_RATE,
            "student_learning_rate": STUDENT_LEARNING_RATE,
            "temperature": TEMPERATURE,
            "alpha": ALPHA,
            "jit_compile": True,
            "epochs": args.epochs,
            "teacher_epochs": args.teacher_epochs,
            "seeds": args.seeds,
            "limit": args.limit,
        },
        "results": {
            name: summarise(name, runs) for name, runs in per_row.items()
        },
    }
    harness.write_json("distillation", payload)
    print(report.render_results("distillation", payload))


if __name__ == "__main__":
    main()
