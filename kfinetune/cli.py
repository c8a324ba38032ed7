"""`python -m kfinetune`: fine-tune a text classifier from the command line.

With no arguments it fine-tunes the bundled MiniLM on the bundled tweets
(binary sentiment), which is what `make demo` runs. With `--csv` it
fine-tunes on the user's own file.
"""

import argparse
import json
import os
import pathlib
import sys
import time
import warnings

SENTENCES = (
    "I love this, what a wonderful day!",
    "This is the worst service I have ever had.",
    "Not bad at all, I would do it again.",
    "I am so disappointed and angry right now.",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m kfinetune",
        description=(
            "Fine-tune a pretrained keras-hub text classifier (by default the "
            "bundled all-MiniLM-L6-v2) on the bundled tweet sentiment data or "
            "on your own CSV file; evaluate on a held-out test split, save a "
            ".keras model and export a SavedModel that reads raw text."
        ),
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--csv",
        help="your own CSV file; split into train / validation / test. "
        "Default: the bundled tweets.",
    )
    data.add_argument("--text-column", default="text")
    data.add_argument("--label-column", default="label")
    data.add_argument(
        "--classes",
        type=int,
        default=2,
        choices=(2, 3),
        help="bundled tweets only: 2 (negative/positive, balanced) or 3 "
        "(with neutral, stratified). Default: 2.",
    )
    train = parser.add_argument_group("training")
    train.add_argument(
        "--preset",
        help="a keras-hub preset folder or handle. Default: bundled MiniLM.",
    )
    train.add_argument("--sequence-length", type=int, default=64)
    train.add_argument("--epochs", type=int, default=1)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=5e-5)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--jit-compile",
        action="store_true",
        help="compile the train step with XLA (what TPUs run).",
    )
    parser.add_argument(
        "--output-dir",
        default="runs/finetune",
        help="where model.keras, saved_model/ and metrics.json go. "
        "Default: runs/finetune.",
    )
    return parser


def _check(args, parser):
    for name in ("epochs", "batch_size", "sequence_length"):
        if getattr(args, name) <= 0:
            parser.error(
                f"--{name.replace('_', '-')} must be positive. "
                f"Received: {getattr(args, name)}"
            )
    if args.learning_rate <= 0:
        parser.error(
            f"--learning-rate must be positive. Received: {args.learning_rate}"
        )


def _load_data(args):
    from kfinetune import data

    if args.csv:
        texts = data.from_csv(args.csv, args.text_column, args.label_column)
        return texts.split(validation=0.1, test=0.1, seed=args.seed)
    return data.tweet_sentiment(classes=args.classes, seed=args.seed)


def _compile(model, args):
    import keras

    model.compile(
        optimizer=keras.optimizers.AdamW(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=args.jit_compile,
    )


def run(args):
    """Runs the fine-tuning job; returns the metrics it wrote."""
    import keras
    import numpy as np
    import tensorflow as tf

    from kfinetune import evaluation
    from kfinetune import export
    from kfinetune import presets

    keras.utils.set_random_seed(args.seed)
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    data = _load_data(args)
    print(data)
    model = presets.text_classifier(
        num_classes=len(data.class_names),
        preset=args.preset,
        sequence_length=args.sequence_length,
    )
    _compile(model, args)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    print(
        f"trainable parameters: {trainable:,} of {total:,} "
        f"({100 * trainable / total:.2f} %)"
    )
    model.fit(
        data.train.batch(args.batch_size),
        validation_data=data.validation.batch(args.batch_size),
        epochs=args.epochs,
        # The dataset reshuffles every epoch itself.
        shuffle=False,
        verbose=1,
    )

    report = evaluation.evaluate_classifier(
        model, data.test, data.class_names, batch_size=args.batch_size
    )
    print(report)
    print(f"test accuracy: {report.accuracy:.3f}")
    print(f"test macro-F1: {report.macro_f1:.3f}")

    keras_path = output_dir / "model.keras"
    # keras-hub tasks never restore a compiled optimizer on load (they
    # compile themselves with their defaults), so the trained AdamW state,
    # two slots per weight or twice the model's size, would be dead weight
    # in the file. A freshly compiled optimizer holds no state.
    _compile(model, args)
    model.save(keras_path)
    with warnings.catch_warnings():
        # Keras warns twice that it did not compile the reloaded keras-hub
        # task or restore its optimizer; the reload only predicts.
        warnings.filterwarnings("ignore", message=".*compile.*")
        warnings.filterwarnings("ignore", message=".*optimizer.*")
        reloaded = keras.models.load_model(keras_path)
    sentences = np.array(SENTENCES)
    expected = model.predict(sentences, verbose=0)
    keras_error = float(
        np.max(np.abs(reloaded.predict(sentences, verbose=0) - expected))
    )
    print(f"saved {keras_path}; reloaded max |difference| = {keras_error:.2e}")

    export_path = output_dir / "saved_model"
    export.export_text_classifier(
        model, export_path, class_names=data.class_names, verbose=False
    )
    # Keep the loaded object alive: its functions do not own the variables.
    exported = export.load_text_classifier(export_path)
    served = exported.serve(tf.constant(sentences))
    export_error = float(np.max(np.abs(served["outputs"].numpy() - expected)))
    print(
        f"exported {export_path} (takes raw text); reloaded max |difference|"
        f" = {export_error:.2e}"
    )
    for text, label in zip(sentences, served["labels"].numpy(), strict=True):
        print(f"  {label.decode():>9}  {text}")

    metrics = {
        **report.as_dict(),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "keras_round_trip_max_difference": keras_error,
        "saved_model_max_difference": export_error,
        "seconds": round(time.perf_counter() - started, 1),
        "arguments": vars(args),
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    tolerance = 1e-4
    if max(keras_error, export_error) > tolerance:
        raise RuntimeError(
            "Reloaded models disagree with the trained one by more than "
            f"{tolerance}: .keras {keras_error:.2e}, SavedModel "
            f"{export_error:.2e}."
        )
    print(f"done in {metrics['seconds']} s; metrics in {output_dir}")
    return metrics


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(args, parser)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
