"""`--task qa`: extractive question answering from SQuAD JSON files (v1.1
and v2.0, whose unanswerable questions the model learns to leave
unanswered; default: questions about the bundled tweets)."""

import dataclasses

import numpy as np

NAME = "qa"
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class QAData:
    """The three splits (lists of `kfinetune.data.QAExample`), whether any
    question is unanswerable, and the tokenizer."""

    splits: dict
    allow_no_answer: bool
    tokenizer: object
    # Windows of examples prepared once: `id(examples)` to `(examples,
    # features)` (the examples kept, so the id stays theirs).
    features: dict = dataclasses.field(default_factory=dict, repr=False)

    def __repr__(self):
        counts = ", ".join(
            f"{name}: {len(split)}" for name, split in self.splits.items()
        )
        kind = (
            "SQuAD v2.0 (some unanswerable)"
            if self.allow_no_answer
            else "SQuAD"
        )
        return f"{kind} questions: {counts}"


def _read(settings, path):
    from kfinetune import data

    return list(data.from_squad(path, encoding=settings["encoding"]))


def load_data(settings):
    """`--train` with `--validation` / `--test` files, or splits of it: by
    context, so that no context is in two splits. Without `--train`, the
    questions about the bundled tweets (`kfinetune.data.tweet_questions`)."""
    from kfinetune import data
    from kfinetune.cli import tasks

    if not settings["train"]:
        splits = data.tweet_questions(seed=settings["seed"])
        return QAData(splits, True, tasks.tokenizer(settings))
    train = _read(settings, settings["train"])
    given = {
        name: _read(settings, settings[name])
        for name in ("validation", "test")
        if settings[name]
    }
    contexts = sorted({example.context for example in train})
    indices = tasks.held_out(len(contexts), settings, given)
    splits = {}
    for name in ("train", "validation", "test"):
        if name in given:
            splits[name] = given[name]
            continue
        held = {contexts[i] for i in indices[name]}
        splits[name] = [e for e in train if e.context in held]
    allow = any(e.is_impossible for split in splits.values() for e in split)
    return QAData(splits, allow, tasks.tokenizer(settings))


def read_split(settings, path, data):
    """A SQuAD file to evaluate a trained run on (`evaluate --test`)."""
    return _read(settings, path)


def sizes(data):
    return {name: len(data.splits[name]) for name in SPLITS}


def split(data, name):
    return data.splits[name]


def labels(data):
    """QA has no label vocabulary."""
    return None


def build_model(settings, labels):
    """The question answerer (`labels` is `None`: QA has none)."""
    from kfinetune import presets

    return presets.question_answerer(
        preset=settings["preset"], sequence_length=settings["sequence_length"]
    )


def max_question_length(settings):
    """Questions are cut to 64 pieces (BERT's SQuAD setting), or to half
    the row when rows are shorter than 128."""
    return min(64, settings["sequence_length"] // 2)


def _prepare(examples, tokenizer, settings):
    from kfinetune import qa

    return qa.prepare_features(
        examples,
        tokenizer,
        settings["sequence_length"],
        document_stride=settings["document_stride"],
        max_question_length=max_question_length(settings),
    )


def _features(examples, data, settings):
    """The windows of `examples`, prepared once per run."""
    key = id(examples)
    if key not in data.features:
        features = _prepare(examples, data.tokenizer, settings)
        data.features[key] = (examples, features)
    return data.features[key][1]


def _logits(model, features, batch_size=None):
    """The start and end logits of every window, side by side."""
    out = model.predict(features.inputs(), batch_size=batch_size, verbose=0)
    return np.concatenate([out["start"], out["end"]], axis=-1)


def _postprocess(features, logits, settings, allow_no_answer):
    """The answer of every question, from `_logits`."""
    from kfinetune import qa

    length = settings["sequence_length"]
    return qa.postprocess(
        features,
        logits[:, :length],
        logits[:, length:],
        max_answer_length=settings["max_answer_length"],
        allow_no_answer=allow_no_answer,
    )


def truncation(model, data, settings):
    """Contexts longer than a window are read in several windows, never
    cut: reported as windows."""
    features = _features(data.splits["train"], data, settings)
    rows = len(features.token_ids)
    questions = len(data.splits["train"])
    if rows == questions:
        return None
    return (
        f"{questions} training questions make {rows} windows of "
        f"--sequence-length={settings['sequence_length']}: long contexts "
        f"are read in windows {settings['document_stride']} tokens apart"
    )


def fit_data(model, data, settings):
    batch = settings["batch_size"]
    train = (
        _features(data.splits["train"], data, settings)
        .dataset()
        .shuffle(10_000, seed=settings["seed"])
        .batch(batch)
    )
    validation = _features(data.splits["validation"], data, settings)
    return train, validation.dataset().batch(batch)


def loss_and_metrics(settings):
    import keras

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return {"start": loss, "end": loss}, None


def class_weight(data, settings):
    return None


def _answers_from(examples, logits, data, settings):
    """The answers to `examples` that their windows' `logits` give."""
    features = _features(examples, data, settings)
    return _postprocess(features, logits, settings, data.allow_no_answer)


def _answers(model, examples, data, settings):
    """The model's answers to `examples`."""
    features = _features(examples, data, settings)
    logits = _logits(model, features, settings["batch_size"])
    return _answers_from(examples, logits, data, settings)


def monitor_callbacks(model, data, settings):
    """Writes `val_f1` or `val_exact_match` when early stopping watches
    it."""
    monitor = settings["monitor"]
    if monitor not in ("f1", "exact_match"):
        return []
    from kfinetune.cli import validation

    def score(model):
        return evaluate(model, data.splits["validation"], data, settings)[
            monitor
        ]

    return [validation.ValidationScore(f"val_{monitor}", score)]


def evaluate(model, examples, data, settings):
    """SQuAD's exact match and F1 (percent) of the model's answers."""
    from kfinetune import qa

    answers = _answers(model, examples, data, settings)
    scores = qa.squad_scores_by_kind(answers, examples)
    return {
        **scores.pop("all"),
        **scores,
        "allow_no_answer": data.allow_no_answer,
    }


# The groups of questions scored apart when a split has both kinds.
KINDS = ("answerable", "unanswerable")


def report_lines(report, prefix="test "):
    lines = [
        f"{prefix}exact match: {report['exact_match']:.1f} %",
        f"{prefix}F1: {report['f1']:.1f} % ({report['count']} questions)",
    ]
    for kind in KINDS:
        if kind in report:
            group = report[kind]
            lines.append(
                f"  {kind}: exact match {group['exact_match']:.1f} %, "
                f"F1 {group['f1']:.1f} % ({group['count']} questions)"
            )
    return lines


def write_plots(report, out):
    """`qa_scores.png`: exact match and F1, of all the questions and of
    the answerable and the unanswerable ones apart."""
    from kfinetune import qa

    overall = {key: report[key] for key in ("exact_match", "f1", "count")}
    groups = {"all": overall, **{k: report[k] for k in KINDS if k in report}}
    qa.plot_scores(groups, out / "qa_scores.png")


def scores(report):
    return dict(report)


def probe(data, count=4):
    return data.splits["test"][:count]


def outputs(model, examples, data, settings):
    """The start and end logits of the probe questions' windows."""
    return _logits(model, _features(examples, data, settings))


def sample_lines(examples, logits, data, settings):
    """The probe questions with the model's answers, from its logits."""
    answers = _answers_from(examples, logits, data, settings)
    lines = []
    for example in examples:
        gold = example.answers[0] if example.answers else ""
        lines.append(
            f"  {example.question} -> {answers[example.id]!r} (gold {gold!r})"
        )
    return lines


def export(model, folder, data, settings):
    from kfinetune import export as exporting

    exporting.export_question_answerer(
        model,
        data.tokenizer,
        folder,
        sequence_length=settings["sequence_length"],
        document_stride=settings["document_stride"],
        max_question_length=max_question_length(settings),
        max_answer_length=settings["max_answer_length"],
        allow_no_answer=data.allow_no_answer,
        verbose=False,
    )


def export_difference(folder, examples, logits, data, settings):
    """The fraction of the probe questions that the exported model answers
    differently from the model's `logits` (0 when they agree)."""
    import tensorflow as tf

    from kfinetune import export as exporting

    exported = exporting.load_text_classifier(folder)
    served = exported.serve(
        questions=tf.constant([e.question for e in examples]),
        contexts=tf.constant([e.context for e in examples]),
    )["answers"].numpy()
    answers = _answers_from(examples, logits, data, settings)
    differ = sum(
        got.decode() != answers[e.id]
        for got, e in zip(served, examples, strict=True)
    )
    return differ / max(1, len(examples))


def check_inputs(lines, run):
    """Each line is a question and its context, separated by a tab."""
    from kfinetune.cli import errors

    for number, line in enumerate(lines, 1):
        parts = line.split("\t")
        if len(parts) != 2 or not all(part.strip() for part in parts):
            raise errors.UsageError(
                "each input of a qa run is a question and its context "
                f"separated by one tab; input {number} is not. "
                f"Received: {line[:60]!r}"
            )


def predict_rows(model, lines, run, batch_size):
    """A row per question: its answer ("" when the model finds none)."""
    from kfinetune import data as loading
    from kfinetune.cli import tasks

    settings = run.settings
    examples = [
        loading.QAExample(str(i), *line.split("\t"), (), ())
        for i, line in enumerate(lines)
    ]
    features = _prepare(examples, tasks.tokenizer(settings), settings)
    logits = _logits(model, features, batch_size)
    allow_no_answer = run.metrics.get("allow_no_answer", False)
    answers = _postprocess(features, logits, settings, allow_no_answer)
    return [
        {"question": e.question, "context": e.context, "answer": answers[e.id]}
        for e in examples
    ]


def blank_row(text, run):
    return {"question": None, "context": None, "answer": None}


def row_line(row, text):
    return "" if row["answer"] is None else row["answer"]
