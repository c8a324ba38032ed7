"""`--task classify`: a label per text, from CSV, TSV or JSON Lines files
(default: the bundled tweets)."""

import logging

import numpy as np

NAME = "classify"
SPLITS = ("train", "validation", "test")


def _read(settings, path, class_names=None):
    from kfinetune import data

    columns = (settings["text_column"], settings["label_column"])
    suffix = str(path).lower().rsplit(".", 1)[-1]
    options = dict(encoding=settings["encoding"], errors=settings["errors"])
    if suffix == "jsonl":
        return data.from_jsonl(path, *columns, classes=class_names, **options)
    delimiter = settings["delimiter"] or ("\t" if suffix == "tsv" else ",")
    return data.from_csv(
        path, *columns, classes=class_names, delimiter=delimiter, **options
    )


def load_data(settings):
    """The train, validation and test splits of a run: the bundled tweets,
    or `--train` with `--validation` / `--test` or splits of it."""
    from kfinetune import data

    if not settings["train"]:
        return data.tweet_sentiment(
            classes=settings["classes"], seed=settings["seed"]
        )
    texts = _read(settings, settings["train"])
    given = {
        name: _read(settings, settings[name], texts.class_names)
        for name in ("validation", "test")
        if settings[name]
    }
    split = texts.split(
        validation=0 if "validation" in given else settings["validation_split"],
        test=0 if "test" in given else settings["test_split"],
        seed=settings["seed"],
    )
    return data.TextClassificationData(
        splits={**split.splits, **given},
        class_names=texts.class_names,
        seed=settings["seed"],
    )


def read_split(settings, path, data):
    """A labelled file to evaluate a trained run on (`evaluate --test`)."""
    texts = _read(settings, path, data.class_names)
    return texts.as_dataset(shuffle=False)


def sizes(data):
    return {name: len(data.splits[name]) for name in SPLITS}


def split(data, name):
    """The `validation` or `test` split, as `evaluate` takes it."""
    return data.validation if name == "validation" else data.test


def labels(data):
    """The class names, in label order (written to `class_names.txt`)."""
    return data.class_names


def build_model(settings, labels):
    """The classifier for the class names `labels`."""
    from kfinetune import presets

    return presets.text_classifier(
        num_classes=len(labels),
        preset=settings["preset"],
        sequence_length=settings["sequence_length"],
    )


def truncation(model, data, settings):
    """How many training texts `--sequence-length` cuts, and what would
    hold them."""
    from kfinetune.data import tokenizing
    from kfinetune.data import truncation as truncating

    tokenizer = tokenizing.tokenizer_of(model.preprocessor)
    pieces = tokenizing.tokenize(tokenizer, list(data.splits["train"].texts))
    # [CLS] and [SEP] around every text.
    needed = [len(ids) + 2 for ids in pieces]
    # The run prints the report itself: the library's log line would say
    # it twice.
    logger = logging.getLogger(truncating.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return truncating.truncation_report(
            needed,
            settings["sequence_length"],
            name="training texts",
            argument="--sequence-length",
        )
    finally:
        logger.setLevel(level)


def fit_data(model, data, settings):
    batch = settings["batch_size"]
    return data.train.batch(batch), data.validation.batch(batch)


def loss_and_metrics(settings):
    import keras

    return (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ["accuracy"],
    )


def class_weight(data, settings):
    if settings["class_weight"] != "balanced":
        return None
    from kfinetune.cli import training

    counts = np.bincount(
        data.splits["train"].labels, minlength=len(data.class_names)
    )
    return training.balanced_class_weights(counts.tolist())


def monitor_callbacks(model, data, settings):
    """Callbacks that write `val_macro_f1` into the logs (what early
    stopping watches by default); `val_accuracy` and `val_loss` come from
    compile."""
    if settings["monitor"] != "macro_f1":
        return []
    from kfinetune.cli import validation

    def macro_f1(model):
        return evaluate(model, data.validation, data, settings).macro_f1

    return [validation.ValidationScore("val_macro_f1", macro_f1)]


def evaluate(model, dataset, data, settings):
    from kfinetune import evaluation

    return evaluation.evaluate_classifier(
        model, dataset, data.class_names, batch_size=settings["batch_size"]
    )


def report_lines(report, prefix="test "):
    return [
        str(report),
        f"{prefix}accuracy: {report.accuracy:.3f}",
        f"{prefix}macro-F1: {report.macro_f1:.3f}",
    ]


def write_plots(report, out):
    report.plot_confusion_matrix(out / "confusion_matrix.png")


def scores(report):
    return report.as_dict()


def probe(data, count=4):
    """A few test texts: what the round-trip checks compare, and the
    sample predictions."""
    test = data.test.take(count).as_numpy_iterator()
    return np.array([text.decode("utf-8") for text, _ in test])


def outputs(model, inputs, data, settings):
    """The logits for the probe texts: what the round trips compare."""
    return model.predict(inputs, verbose=0)


def sample_lines(inputs, logits, data, settings):
    """The predicted and the gold label of the probe texts, from their
    logits."""
    names = data.class_names
    gold = [names[label] for _, label in data.test.take(len(inputs))]
    lines = []
    for text, row, truth in zip(inputs, logits, gold, strict=True):
        label = names[int(np.argmax(row))]
        lines.append(f"  {label:>9}  (gold {truth})  {text}")
    return lines


def export(model, folder, data, settings):
    from kfinetune import export as exporting

    exporting.export_text_classifier(
        model, folder, class_names=data.class_names, verbose=False
    )


def export_difference(folder, inputs, expected, data, settings):
    """The largest difference between the exported model's logits and the
    model's (`expected`), on the probe texts."""
    import tensorflow as tf

    from kfinetune import export as exporting

    # Keep the loaded object alive: its functions do not own the variables.
    exported = exporting.load_text_classifier(folder)
    served = exported.serve(tf.constant(inputs))["outputs"].numpy()
    return float(np.max(np.abs(served - expected)))


def check_inputs(texts):
    """Any text can be classified."""


def predict_rows(model, texts, run, batch_size):
    """A row per text: its label, the label's probability and every
    class's."""
    logits = model.predict(np.array(texts), batch_size=batch_size, verbose=0)
    logits = logits - logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    rows = []
    for text, scores in zip(texts, probabilities, strict=True):
        best = int(np.argmax(scores))
        rows.append(
            {
                "text": text,
                "label": run.labels[best],
                "probability": round(float(scores[best]), 6),
                "probabilities": {
                    name: round(float(p), 6)
                    for name, p in zip(run.labels, scores, strict=True)
                },
            }
        )
    return rows


def blank_row(text):
    return {
        "text": text,
        "label": None,
        "probability": None,
        "probabilities": None,
    }


def row_line(row, text):
    if row["label"] is None:
        return text
    return f"{row['label']}\t{row['probability']:.3f}\t{text}"
