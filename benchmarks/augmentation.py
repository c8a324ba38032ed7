"""Gain or loss of each text augmentation, and of mixup, over none.

Full fine-tuning of the real MiniLM (sequence length 64) on the binary
tweets of each seed: `k` = 16 and 64 tweets per class
(`kfinetune.data.few_shot`) and the full 2,000-tweet train split. Every
method of a size trains for the same number of optimizer steps, on the
same examples, and is scored on the same 1,000 test tweets; the gain is
the paired difference to no augmentation, seed by seed.

An augmented run's stream repeats passes over the originals plus one
fresh augmented copy of each (shuffled together: the usual EDA setting,
which keeps the originals in training), so it sees each original about
half as often as the baseline, and new variants in its place. Mixup trains
on the originals with a `kfinetune.layers.Mixup` after the pooled output.

    python -m benchmarks.augmentation [--sizes 16 64 full]
        [--methods none random_swap ...] [--seeds 0 1 2] [--limit STEPS]

Each row is written as soon as its seeds finish, and rows of an earlier
run with the same seeds and limit are kept, so sizes can be run one
command at a time (`--sizes 16 64`, then `--sizes full`) and an
interrupted run keeps what it finished.
"""

import argparse
import json
import logging
import math
import time

import keras
import keras_hub
import tensorflow as tf

import kfinetune
from benchmarks import harness
from benchmarks import report
from kfinetune import evaluation
from kfinetune import layers
from kfinetune import presets
from kfinetune.data import augment

SEQUENCE_LENGTH = 64
LEARNING_RATE = 5e-5
# (batch size, epochs of the baseline) per train size: a few-shot set is a
# few batches, so it needs more passes to take a useful number of steps.
SCHEDULES = {"16": (16, 20), "64": (16, 10), "full": (32, 2)}
EDA_RATE = 0.1
MASK_RATE = 0.15
CUTOFF_RATE = 0.1
MIXUP_ALPHA = 0.2
SYNONYMS_K = 5

TEXT_METHODS = {
    "random_deletion": lambda synonyms, seed: augment.random_deletion(
        EDA_RATE, seed
    ),
    "random_swap": lambda synonyms, seed: augment.random_swap(EDA_RATE, seed),
    "random_insertion": lambda synonyms, seed: augment.random_insertion(
        synonyms, EDA_RATE, seed
    ),
    "synonym_replacement": lambda synonyms, seed: augment.synonym_replacement(
        synonyms, EDA_RATE, seed
    ),
}
TOKEN_METHODS = {
    "token_masking": lambda tokenizer, seed: augment.token_masking(
        tokenizer, MASK_RATE, seed
    ),
    "span_cutoff": lambda tokenizer, seed: augment.span_cutoff(
        tokenizer, CUTOFF_RATE, seed
    ),
}
METHODS = ["none", *TEXT_METHODS, *TOKEN_METHODS, "mixup"]


def _classifier(method, seed):
    """The MiniLM classifier without its preprocessor (the pipeline runs
    it), with a `Mixup` layer before the head for `"mixup"`."""
    keras.utils.set_random_seed(seed)
    model = keras_hub.models.TextClassifier.from_preset(
        str(presets.minilm_path()), num_classes=2, preprocessor=None
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if method != "mixup":
        return model, loss
    backbone = model.backbone
    pooled = backbone(backbone.input)["pooled_output"]
    mixup = layers.Mixup(alpha=MIXUP_ALPHA, seed=seed, name="mixup")
    # The classifier's own head, so only the mixup layer differs.
    logits = model.output_dense(model.output_dropout(mixup(pooled)))
    return keras.Model(backbone.input, logits), layers.MixupLoss(loss, mixup)


def _stream(method, texts, preprocessor, batch_size, seed):
    """The repeated training stream of `(features, label)` batches."""
    originals = texts.as_dataset(shuffle=True, seed=seed)
    if method in TEXT_METHODS:
        words = {w for text in texts.texts for w in text.lower().split()}
        synonyms = augment.embedding_synonyms(
            _minilm_backbone(),
            preprocessor.tokenizer,
            k=SYNONYMS_K,
            words=words,
        )
        edit = TEXT_METHODS[method](synonyms, seed)
        both = originals.concatenate(originals.map(edit)).map(preprocessor)
    elif method in TOKEN_METHODS:
        edit = TOKEN_METHODS[method](preprocessor.tokenizer, seed)
        features = originals.map(preprocessor)
        both = features.concatenate(features.map(edit))
    else:
        return originals.repeat().batch(batch_size).map(preprocessor)
    both = both.shuffle(2 * len(texts), seed=seed)
    return both.repeat().batch(batch_size)


_BACKBONE = {}


def _minilm_backbone():
    """The pretrained MiniLM backbone, loaded once, for its embeddings."""
    if "minilm" not in _BACKBONE:
        _BACKBONE["minilm"] = keras_hub.models.Backbone.from_preset(
            str(presets.minilm_path())
        )
    return _BACKBONE["minilm"]


def run(method, size, seed, limit=None):
    """Trains and evaluates one method at one train size with one seed."""
    data = kfinetune.data.tweet_sentiment(classes=2, seed=seed)
    if size != "full":
        data = kfinetune.data.few_shot(data, k=int(size), seed=seed)
    texts = data.splits["train"]
    batch_size, epochs = SCHEDULES[size]
    steps = epochs * math.ceil(len(texts) / batch_size)
    if limit is not None:
        steps = min(steps, limit)
    preprocessor = presets.text_classifier_preprocessor(
        sequence_length=SEQUENCE_LENGTH
    )
    train = _stream(method, texts, preprocessor, batch_size, seed)
    model, loss = _classifier(method, seed)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.PolynomialDecay(
                LEARNING_RATE, decay_steps=steps, end_learning_rate=0.0
            )
        ),
        loss=loss,
        # Every run is a new model: compiling it with XLA (about a minute
        # here) costs more than it saves in a few dozen steps.
        jit_compile=False,
    )
    start = time.perf_counter()
    model.fit(train, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    fit_seconds = time.perf_counter() - start
    test = data.test.batch(64).map(preprocessor)
    if limit is not None:
        test = test.take(limit)
    result = evaluation.evaluate_classifier(model, test, data.class_names)
    return {
        "seed": seed,
        "train_examples": len(texts),
        "steps": steps,
        "test_accuracy": result.accuracy,
        "test_macro_f1": result.macro_f1,
        "test_examples": sum(result.support),
        "fit_seconds": fit_seconds,
    }


def summarise(size, method, runs, baseline_runs):
    """A results row: means ± standard deviations and the paired gain."""
    accuracy = [r["test_accuracy"] for r in runs]
    row = {
        "train_examples": runs[0]["train_examples"],
        "method": method,
        "steps": runs[0]["steps"],
        "test_accuracy": harness.format_mean_std(accuracy),
        "test_macro_f1": harness.format_mean_std(
            [r["test_macro_f1"] for r in runs]
        ),
    }
    if baseline_runs is not None and method != "none":
        gains = [
            r["test_accuracy"] - b["test_accuracy"]
            for r, b in zip(runs, baseline_runs, strict=True)
        ]
        mean, std = harness.mean_std(gains)
        row["gain_vs_none"] = f"{mean:+.3f} ± {std:.3f}"
    row["fit_seconds"] = harness.format_mean_std(
        [r["fit_seconds"] for r in runs], digits=0
    )
    row["runs"] = runs
    return row


def _merged(results, seeds, limit):
    """Adds the rows of an earlier run with the same seeds and limit, so
    the sizes can be measured one command at a time."""
    path = harness.RESULTS_DIR / "augmentation.json"
    if not path.exists():
        return results
    earlier = json.loads(path.read_text())
    parameters = earlier["parameters"]
    if parameters.get("seeds") != seeds or parameters.get("limit") != limit:
        return results
    return {**earlier["results"], **results}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.augmentation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", nargs="+", choices=list(SCHEDULES))
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=METHODS
    )
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument(
        "--limit",
        type=int,
        help="train for at most this many steps and test on at most this "
        "many batches, by default with seed 0 at k=16 only "
        "(smoke runs; the result is marked)",
    )
    args = parser.parse_args(argv)
    smoke = args.limit is not None
    args.sizes = args.sizes or (["16"] if smoke else list(SCHEDULES))
    args.seeds = args.seeds or ([0] if smoke else [0, 1, 2])
    # Every run builds a new model and so new tf.functions, which
    # TensorFlow warns about as retracing.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)
    methods = ["none"] + [m for m in args.methods if m != "none"]

    results = {}
    for size in args.sizes:
        baseline = None
        for method in methods:
            runs = []
            for seed in args.seeds:
                result = run(method, size, seed, args.limit)
                runs.append(result)
                print(
                    f"k={size} {method} seed {seed}: test accuracy "
                    f"{result['test_accuracy']:.3f}, macro-F1 "
                    f"{result['test_macro_f1']:.3f}, fit "
                    f"{result['fit_seconds']:.0f} s",
                    flush=True,
                )
            if method == "none":
                baseline = runs
            name = f"{'full' if size == 'full' else 'k=' + size} {method}"
            results[name] = summarise(size, method, runs, baseline)
            # Written after every row, so an interrupted run keeps the
            # rows it finished.
            payload = _write(results, args.seeds, args.limit)
    print(report.render_results("augmentation", payload))


def _write(results, seeds, limit):
    """Writes this run's rows merged with an earlier run's; returns the
    payload."""
    merged = _merged(results, seeds, limit)
    sizes = list(dict.fromkeys(name.split()[0] for name in merged))
    methods = [
        m for m in METHODS if any(r["method"] == m for r in merged.values())
    ]
    payload = {
        "description": harness.description(__doc__),
        "parameters": {
            "model": "all-MiniLM-L6-v2 (TextClassifier, 2 classes), full "
            "fine-tuning",
            "data": "kfinetune.data.tweet_sentiment(classes=2, seed=seed), "
            "k-shot train sets from kfinetune.data.few_shot(data, k, seed)",
            "sizes": sizes,
            "schedules": {
                size: {"batch_size": b, "baseline_epochs": e}
                for size, (b, e) in SCHEDULES.items()
            },
            "steps": "baseline epochs x batches per epoch, the same for "
            "every method of a size",
            "augmented_stream": "originals plus one fresh augmented copy "
            "of each per pass, shuffled together",
            "sequence_length": SEQUENCE_LENGTH,
            "optimizer": f"AdamW {LEARNING_RATE}, linear decay to 0",
            "jit_compile": False,
            "eda_rate": EDA_RATE,
            "token_masking_rate": MASK_RATE,
            "span_cutoff_rate": CUTOFF_RATE,
            "mixup_alpha": MIXUP_ALPHA,
            "synonyms": f"embedding_synonyms(MiniLM, k={SYNONYMS_K}) for "
            "the words of the train split",
            "methods": methods,
            "seeds": seeds,
            "limit": limit,
        },
        "results": merged,
    }
    harness.write_json("augmentation", payload)
    return payload


if __name__ == "__main__":
    main()
