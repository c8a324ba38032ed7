"""`--task classify`: a label per text or sentence pair (`--text-column
a,b`), or any number of labels per text (`--multi-label`), from CSV, TSV
or JSON Lines files (default: the bundled tweets)."""

import logging

import numpy as np

NAME = "classify"
SPLITS = ("train", "validation", "test")
# Between the two texts of a pair in the sample predictions.
PAIR_MARK = " [SEP] "
# A multi-label prediction above no threshold, in printed lines.
NO_LABELS = "(none)"


def _pairs(settings):
    """Whether the run classifies sentence pairs (two text columns)."""
    from kfinetune.cli import settings as defaults

    return len(defaults.text_columns(settings["text_column"] or "text")) == 2


def _multi_label(settings):
    # `None` for the bundled tweets and for runs older than the option.
    return bool(settings.get("multi_label"))


def _read(settings, path, class_names=None):
    from kfinetune import data
    from kfinetune.cli import settings as defaults

    names = defaults.text_columns(settings["text_column"])
    text_column = names if len(names) == 2 else names[0]
    columns = (text_column, settings["label_column"])
    suffix = str(path).lower().rsplit(".", 1)[-1]
    options = dict(
        encoding=settings["encoding"],
        errors=settings["errors"],
        multi_label=_multi_label(settings),
    )
    if suffix == "jsonl":
        return data.from_jsonl(path, *columns, classes=class_names, **options)
    delimiter = settings["delimiter"] or ("\t" if suffix == "tsv" else ",")
    if options["multi_label"]:
        options["label_separator"] = settings["label_separator"]
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
    """How many training texts (or pairs) `--sequence-length` cuts, and
    what would hold them."""
    from kfinetune.data import tokenizing
    from kfinetune.data import truncation as truncating

    tokenizer = tokenizing.tokenizer_of(model.preprocessor)
    texts = data.splits["train"].texts
    if data.pairs:
        firsts, seconds = (
            tokenizing.tokenize(tokenizer, list(texts[:, i])) for i in range(2)
        )
        # [CLS] a [SEP] b [SEP]
        needed = [
            len(a) + len(b) + 3 for a, b in zip(firsts, seconds, strict=True)
        ]
    else:
        # [CLS] and [SEP] around every text.
        needed = [len(ids) + 2 for ids in tokenizing.tokenize(tokenizer, texts)]
    # The run prints the report itself: the library's log line would say
    # it twice.
    logger = logging.getLogger(truncating.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return truncating.truncation_report(
            needed,
            settings["sequence_length"],
            name="training pairs" if data.pairs else "training texts",
            argument="--sequence-length",
        )
    finally:
        logger.setLevel(level)


def fit_data(model, data, settings):
    batch = settings["batch_size"]
    return data.train.batch(batch), data.validation.batch(batch)


def loss_and_metrics(settings):
    """Softmax cross-entropy and accuracy; with `--multi-label`, a
    sigmoid cross-entropy per class and no compiled metric (the scores
    that count, F1 and subset accuracy, need every batch at once)."""
    import keras

    if _multi_label(settings):
        # `[]`, not `None`: Keras keeps the metrics of an earlier compile
        # (keras-hub's, sparse accuracy) when given none.
        return keras.losses.BinaryCrossentropy(from_logits=True), []
    return (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ["accuracy"],
    )


def class_weight(data, settings):
    # `settings` refuses `balanced` with `--multi-label`.
    if settings["class_weight"] != "balanced":
        return None
    from kfinetune.cli import training

    counts = np.bincount(
        data.splits["train"].labels, minlength=len(data.class_names)
    )
    return training.balanced_class_weights(counts.tolist())


# The validation scores a callback writes into the logs (the others,
# `val_accuracy` and `val_loss`, come from compile).
REPORT_MONITORS = ("macro_f1", "micro_f1", "subset_accuracy")


def monitor_callbacks(model, data, settings):
    """Callbacks that write `val_macro_f1` (what early stopping watches by
    default), `val_micro_f1` or `val_subset_accuracy` into the logs."""
    monitor = settings["monitor"]
    if monitor not in REPORT_MONITORS:
        return []
    from kfinetune.cli import validation

    def score(model):
        report = evaluate(model, data.validation, data, settings)
        return getattr(report, monitor)

    return [validation.ValidationScore(f"val_{monitor}", score)]


def evaluate(model, dataset, data, settings):
    from kfinetune import evaluation

    return evaluation.evaluate_classifier(
        model,
        dataset,
        data.class_names,
        batch_size=settings["batch_size"],
        threshold=settings["threshold"] if data.multi_label else None,
    )


def _is_multi_label(report):
    return hasattr(report, "subset_accuracy")


def report_lines(report, prefix="test "):
    if _is_multi_label(report):
        return [
            str(report),
            f"{prefix}micro-F1: {report.micro_f1:.3f}",
            f"{prefix}macro-F1: {report.macro_f1:.3f}",
            f"{prefix}subset accuracy: {report.subset_accuracy:.3f}",
        ]
    return [
        str(report),
        f"{prefix}accuracy: {report.accuracy:.3f}",
        f"{prefix}macro-F1: {report.macro_f1:.3f}",
    ]


def write_plots(report, out):
    # A multi-label report has no confusion matrix: an example may be of
    # several classes, or none.
    if not _is_multi_label(report):
        report.plot_confusion_matrix(out / "confusion_matrix.png")


def scores(report):
    return report.as_dict()


def probe(data, count=4):
    """A few test texts (for pairs, an `(n, 2)` array): what the round-trip
    checks compare, and the sample predictions."""
    test = data.test.take(count).as_numpy_iterator()
    if data.pairs:
        return np.array([[a.decode(), b.decode()] for (a, b), _ in test])
    return np.array([text.decode("utf-8") for text, _ in test])


def _model_inputs(inputs):
    """What `model.predict` takes: texts, or a tuple of the pairs' first
    and second texts, which the preprocessor packs."""
    if inputs.ndim == 2:
        return inputs[:, 0], inputs[:, 1]
    return inputs


def outputs(model, inputs, data, settings):
    """The logits for the probe texts: what the round trips compare."""
    from kfinetune import preprocessing

    return preprocessing.predict(model, _model_inputs(inputs))


def _sigmoid(logits):
    return 1 / (1 + np.exp(-np.asarray(logits, np.float64)))


def _chosen(names, logits, threshold):
    """The names whose probability is above `threshold`."""
    return [
        n for n, p in zip(names, _sigmoid(logits), strict=True) if p > threshold
    ]


def sample_lines(inputs, logits, data, settings):
    """The predicted and the gold labels of the probe texts, from their
    logits."""
    names = data.class_names
    test = data.test.take(len(inputs)).as_numpy_iterator()
    lines = []
    for text, row, (_, truth) in zip(inputs, logits, test, strict=True):
        if data.multi_label:
            label = ",".join(_chosen(names, row, settings["threshold"]))
            gold = ",".join(n for n, t in zip(names, truth, strict=True) if t)
            label, gold = label or NO_LABELS, gold or NO_LABELS
        else:
            label, gold = names[int(np.argmax(row))], names[int(truth)]
        shown = PAIR_MARK.join(text) if data.pairs else text
        lines.append(f"  {label:>9}  (gold {gold})  {shown}")
    return lines


def export(model, folder, data, settings):
    from kfinetune import export as exporting

    exporting.export_text_classifier(
        model,
        folder,
        class_names=data.class_names,
        verbose=False,
        pairs=data.pairs,
        multi_label=data.multi_label,
        threshold=settings["threshold"] if data.multi_label else None,
    )


def export_difference(folder, inputs, expected, data, settings):
    """The largest difference between the exported model's logits and the
    model's (`expected`), on the probe texts."""
    import tensorflow as tf

    from kfinetune import export as exporting

    # Keep the loaded object alive: its functions do not own the variables.
    exported = exporting.load_text_classifier(folder)
    texts = _model_inputs(inputs)
    # `serve` takes the texts, or the texts and the text pairs.
    texts = texts if isinstance(texts, tuple) else (texts,)
    served = exported.serve(*(tf.constant(t) for t in texts))
    return float(np.max(np.abs(served["outputs"].numpy() - expected)))


def check_inputs(texts, run):
    """Any text can be classified; a sentence-pair run takes its two
    texts on a line, separated by a tab."""
    if not _pairs(run.settings):
        return
    from kfinetune.cli import errors

    for number, line in enumerate(texts, 1):
        parts = line.split("\t")
        if len(parts) != 2 or not all(part.strip() for part in parts):
            raise errors.UsageError(
                "each input of a sentence-pair run is its two texts "
                f"separated by one tab; input {number} is not. "
                f"Received: {line[:60]!r}"
            )


def _text_fields(text, pairs):
    if not pairs:
        return {"text": text}
    first, _, second = text.partition("\t")
    return {"text": first, "text_pair": second if text.strip() else None}


def predict_rows(model, texts, run, batch_size):
    """A row per text: its label, the label's probability and every
    class's; for a multi-label run, every label above the threshold and
    every class's probability."""
    pairs = _pairs(run.settings)
    inputs = np.array([text.split("\t") for text in texts] if pairs else texts)
    from kfinetune import preprocessing

    logits = preprocessing.predict(model, _model_inputs(inputs), batch_size)
    if _multi_label(run.settings):
        probabilities = _sigmoid(logits)
    else:
        logits = logits - logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
    rows = []
    for text, scores in zip(texts, probabilities, strict=True):
        row = _text_fields(text, pairs)
        every = {
            name: round(float(p), 6)
            for name, p in zip(run.labels, scores, strict=True)
        }
        if _multi_label(run.settings):
            threshold = run.settings["threshold"]
            row["labels"] = [n for n, p in every.items() if p > threshold]
        else:
            best = int(np.argmax(scores))
            row["label"] = run.labels[best]
            row["probability"] = every[run.labels[best]]
        row["probabilities"] = every
        rows.append(row)
    return rows


def blank_row(text, run):
    row = _text_fields(text, _pairs(run.settings))
    if _multi_label(run.settings):
        row["labels"] = None
    else:
        row["label"] = row["probability"] = None
    row["probabilities"] = None
    return row


def row_line(row, text):
    if row["probabilities"] is None:
        return text
    if "labels" in row:
        labels = ", ".join(
            f"{name} {row['probabilities'][name]:.3f}" for name in row["labels"]
        )
        return f"{labels or NO_LABELS}\t{text}"
    return f"{row['label']}\t{row['probability']:.3f}\t{text}"
