"""`--task tag`: a tag per word (named entities, chunks), from CoNLL column
files (default: case-restoration spans of the bundled tweets); softmax or
a word-level CRF (`--crf`)."""

import dataclasses

import numpy as np

NAME = "tag"
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class TagData:
    """The three `TaggedSentences` splits, the tag names and the tokenizer
    the words are aligned with."""

    splits: dict
    tag_names: tuple
    seed: int
    tokenizer: object
    # `TokenLabels` of sentences aligned once: `id(sentences)` to
    # `(sentences, aligned)` (the sentences kept, so the id stays theirs).
    aligned: dict = dataclasses.field(default_factory=dict, repr=False)

    def __repr__(self):
        counts = ", ".join(
            f"{name}: {len(split.sentences)}"
            for name, split in self.splits.items()
        )
        return (
            f"TaggedSentences: {counts} sentences; "
            f"{len(self.tag_names)} tags {', '.join(self.tag_names)}"
        )


def _read(settings, path, tags=None):
    from kfinetune import data

    return data.from_conll(
        path,
        token_column=settings["token_column"],
        tag_column=settings["tag_column"],
        tags=tags,
        encoding=settings["encoding"],
    )


def _subset(sentences, indices):
    from kfinetune.data import TaggedSentences

    return TaggedSentences(
        tuple(sentences.sentences[i] for i in indices),
        tuple(sentences.tags[i] for i in indices),
        sentences.tag_names,
    )


def load_data(settings):
    """`--train` (CoNLL) with `--validation` / `--test` files, or splits
    of it drawn with `--seed`; without `--train`, the case-restoration
    spans of the bundled tweets (`kfinetune.data.tweet_tagging`)."""
    from kfinetune import data
    from kfinetune.cli import tasks
    from kfinetune.data import TaggedSentences

    if not settings["train"]:
        splits = data.tweet_tagging("case", seed=settings["seed"])
        return TagData(
            splits,
            splits["train"].tag_names,
            settings["seed"],
            tasks.tokenizer(settings),
        )
    read = {
        name: _read(settings, settings[name])
        for name in SPLITS
        if settings[name]
    }
    # One tag vocabulary for every file: the union, `O` first (as
    # `from_conll` orders a file's own).
    names = {tag for split in read.values() for tag in split.tag_names}
    tag_names = tuple(sorted(names, key=lambda tag: (tag != "O", tag)))
    read = {
        name: TaggedSentences(split.sentences, split.tags, tag_names)
        for name, split in read.items()
    }
    train = read["train"]
    indices = tasks.held_out(len(train.sentences), settings, read)
    splits = {
        name: read[name]
        if name != "train" and name in read
        else _subset(train, indices[name])
        for name in SPLITS
    }
    return TagData(
        splits, tag_names, settings["seed"], tasks.tokenizer(settings)
    )


def read_split(settings, path, data):
    """A CoNLL file to evaluate a trained run on (`evaluate --test`)."""
    return _read(settings, path, data.tag_names)


def sizes(data):
    return {name: len(data.splits[name].sentences) for name in SPLITS}


def split(data, name):
    """The `validation` or `test` sentences, as `evaluate` takes them."""
    return data.splits[name]


def labels(data):
    """The tag names, in label order (written to `tag_names.txt`)."""
    return data.tag_names


def _aligned(sentences, data, settings):
    """`sentences` aligned to word pieces, once per run."""
    key = id(sentences)
    if key not in data.aligned:
        aligned = sentences.align(data.tokenizer, settings["sequence_length"])
        data.aligned[key] = (sentences, aligned)
    return data.aligned[key][1]


def build_model(settings, labels):
    """The tagger for the tag names `labels` (with `--crf`, a CRF that
    forbids the scheme's impossible transitions)."""
    from kfinetune import presets
    from kfinetune.data import tag_schemes

    constraints = None
    if settings["crf"]:
        constraints = tag_schemes.tag_constraints(labels, _scheme(labels))
    return presets.token_classifier(
        len(labels),
        sequence_length=settings["sequence_length"],
        crf=settings["crf"],
        preset=settings["preset"],
        constraints=constraints,
    )


def _scheme(tag_names):
    """IOBES when the tags have E- or S- tags, else IOB2."""
    iobes = any(tag[:2] in ("E-", "S-") for tag in tag_names)
    return "IOBES" if iobes else "IOB2"


def truncation(model, data, settings):
    """Sentences too long for one row are tagged in overlapping windows,
    never cut: reported as windows."""
    aligned = _aligned(data.splits["train"], data, settings)
    rows = len(aligned.word_starts)
    sentences = len(data.splits["train"].sentences)
    return (
        f"{rows - sentences} of {sentences} training sentences were longer "
        f"than --sequence-length={settings['sequence_length']} and are read "
        "in overlapping windows"
        if rows > sentences
        else None
    )


def fit_data(model, data, settings):
    crf = settings["crf"]
    batch = settings["batch_size"]
    options = dict(sample_weights=not crf, word_mask=crf)
    train = (
        _aligned(data.splits["train"], data, settings)
        .dataset(**options)
        .shuffle(10_000, seed=settings["seed"])
        .batch(batch)
    )
    validation = _aligned(data.splits["validation"], data, settings)
    validation = validation.dataset(**options)
    return train, validation.batch(batch)


def loss_and_metrics(settings):
    import keras

    from kfinetune import layers

    if settings["crf"]:
        return layers.CRFLoss(), None
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True), None


def class_weight(data, settings):
    return None


def monitor_callbacks(model, data, settings):
    """`kfinetune.callbacks.EntityF1` writes `val_entity_f1` when early
    stopping watches it."""
    if settings["monitor"] != "entity_f1":
        return []
    from kfinetune import callbacks

    return [
        callbacks.EntityF1(
            data.splits["validation"],
            data.tokenizer,
            settings["sequence_length"],
            scheme=_scheme(data.tag_names),
            batch_size=settings["batch_size"],
        )
    ]


def _word_tags(model, aligned, settings):
    predictions = model.predict(
        aligned.inputs_for(model),
        batch_size=settings["batch_size"],
        verbose=0,
    )
    return aligned.to_words(predictions)


def evaluate(model, sentences, data, settings):
    """The entity report of the model on `sentences`."""
    from kfinetune import evaluation

    predicted = _word_tags(model, _aligned(sentences, data, settings), settings)
    return evaluation.sequence_labelling_report(
        list(sentences.tags), predicted, _scheme(data.tag_names)
    )


def report_lines(report, prefix="test "):
    return [str(report), f"{prefix}entity F1 (micro): {report.micro_f1:.3f}"]


def write_plots(report, out):
    """`entity_scores.png`: precision, recall and F1 per entity type."""
    report.plot_scores(out / "entity_scores.png")


def scores(report):
    return {**report.as_dict(), "entity_f1": report.micro_f1}


def probe(data, count=4):
    """A few test sentences: what the round-trip checks compare, and the
    sample predictions."""
    test = data.splits["test"]
    return _subset(test, range(min(count, len(test.sentences))))


def outputs(model, sentences, data, settings):
    """The tag scores (or a CRF's tags) of the probe sentences' pieces."""
    aligned = _aligned(sentences, data, settings)
    return np.asarray(model.predict(aligned.inputs_for(model), verbose=0))


def sample_lines(sentences, predictions, data, settings):
    """The probe sentences with their predicted tags (word/TAG), from the
    model's outputs."""
    predicted = _aligned(sentences, data, settings).to_words(predictions)
    lines = []
    for words, tags, gold in zip(
        sentences.sentences, predicted, sentences.tags, strict=True
    ):
        wrong = sum(t != g for t, g in zip(tags, gold, strict=True))
        lines.append(
            f"  {_marked(words, tags)}  ({wrong} of {len(words)} tags wrong)"
        )
    return lines


def _marked(words, tags):
    """`word/TAG` for each tagged word, the word alone for `O`."""
    return " ".join(
        word if tag == "O" else f"{word}/{tag}"
        for word, tag in zip(words, tags, strict=True)
    )


def export(model, folder, data, settings):
    from kfinetune import export as exporting

    exporting.export_tagger(
        model,
        data.tokenizer,
        data.tag_names,
        folder,
        sequence_length=settings["sequence_length"],
        verbose=False,
    )


def export_difference(folder, sentences, predictions, data, settings):
    """The fraction of the probe sentences' words that the exported model
    tags differently from the model's `predictions` (0 when they
    agree)."""
    import tensorflow as tf

    from kfinetune import export as exporting

    exported = exporting.load_text_classifier(folder)
    texts = [" ".join(words) for words in sentences.sentences]
    served = exported.serve(tf.constant(texts))["tags"].numpy()
    expected = _aligned(sentences, data, settings).to_words(predictions)
    words = differ = 0
    for row, tags in zip(served, expected, strict=True):
        got = [tag.decode() for tag in row[: len(tags)]]
        words += len(tags)
        differ += sum(a != b for a, b in zip(got, tags, strict=True))
    return differ / max(1, words)


def check_inputs(texts, run):
    """Any sentence can be tagged (its words are split at whitespace)."""


def predict_rows(model, texts, run, batch_size):
    """A row per sentence: its words and their tags."""
    from kfinetune import data
    from kfinetune.cli import tasks

    words = [text.split() for text in texts]
    aligned = data.align_tags(
        words,
        None,
        tasks.tokenizer(run.settings),
        run.labels,
        run.settings["sequence_length"],
    )
    predictions = model.predict(
        aligned.inputs_for(model), batch_size=batch_size, verbose=0
    )
    tags = aligned.to_words(predictions)
    return [
        {"text": text, "words": w, "tags": t}
        for text, w, t in zip(texts, words, tags, strict=True)
    ]


def blank_row(text, run):
    return {"text": text, "words": [], "tags": []}


def row_line(row, text):
    return _marked(row["words"], row["tags"])
