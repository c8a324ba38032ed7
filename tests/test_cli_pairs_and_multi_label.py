"""Sentence pairs (`--text-column a,b`) and multi-label texts
(`--multi-label`) from the command line: one run of each on a small random
BERT preset folder and files written here, then evaluate, predict and
export; and the checks that refuse a run before TensorFlow starts."""

import json

import pytest

from kfinetune import cli
from kfinetune.cli.tasks import classify
from kfinetune.testing import models

FIRST = ["i love this movie", "a sad day", "so fun", "the film was boring"]
SECOND = ["great fun", "i hate it", "we loved it", "not a good movie", "so bad"]
TOPICS = ("fun", "sad", "movie")


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preset")
    return models.save_small_bert_preset(folder, max_sequence_length=32)


def options(preset, output_dir):
    return [
        "--preset",
        preset,
        "--sequence-length",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--output-dir",
        str(output_dir),
    ]


def pairs_csv(path, count=20):
    """`count` premise,hypothesis,label rows; the label is "yes" or "no"."""
    lines = ["premise,hypothesis,label"]
    for i in range(count):
        label = "no" if i % 3 else "yes"
        lines.append(f"{FIRST[i % 4]},{SECOND[i % 5]} {i},{label}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def topic_names(i):
    return [t for j, t in enumerate(TOPICS) if (i + j) % (j + 2) == 0]


def topics_jsonl(path, count=20):
    """`count` texts, each with a list of 0 to 3 topics."""
    lines = [
        json.dumps({"text": f"{FIRST[i % 4]} {i}", "tags": topic_names(i)})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def pair_run(preset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    out = folder / "run"
    cli.main(
        [
            "--train",
            pairs_csv(folder / "nli.csv"),
            "--text-column",
            "premise,hypothesis",
            # LoRA on pairs, saved and reloaded (the run compares the two);
            # `export` exports it below (tests/test_pairs_and_multi_label.py
            # compares a served pair model with its own outputs).
            "--method",
            "lora",
            "--no-export",
            *options(preset, out),
        ]
    )
    return out


@pytest.fixture(scope="module")
def multi_label_run(preset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    out = folder / "run"
    cli.main(
        [
            "--train",
            topics_jsonl(folder / "topics.jsonl"),
            "--label-column",
            "tags",
            "--multi-label",
            "--threshold",
            "0.4",
            # Watches the validation macro-F1 (`ValidationScore`).
            "--early-stopping",
            "1",
            "--no-export",
            *options(preset, out),
        ]
    )
    return out


def test_pair_run_trains_evaluates_and_exports(pair_run, capsys):
    metrics = json.loads((pair_run / "metrics.json").read_text())
    assert metrics["settings"]["text_column"] == "premise,hypothesis"
    assert metrics["trainable_parameters"] < metrics["total_parameters"]
    assert metrics["keras_round_trip_max_difference"] < 1e-4
    cli.main(["evaluate", str(pair_run)])
    report = json.loads(
        (pair_run / "evaluation" / "evaluation.json").read_text()
    )
    assert report["accuracy"] == pytest.approx(metrics["accuracy"])
    assert "macro-F1" in capsys.readouterr().out
    exported = pair_run.parent / "exported"
    cli.main(["export", str(pair_run), "--merge", "--output", str(exported)])
    assert (exported / "saved_model.pb").exists()


def test_pair_run_predicts_tab_separated_pairs(pair_run, capsys):
    cli.main(["predict", str(pair_run), "so fun\tgreat fun", "", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["text"] == "so fun" and rows[0]["text_pair"] == "great fun"
    assert rows[0]["label"] in ("no", "yes")
    assert set(rows[0]["probabilities"]) == {"no", "yes"}
    assert rows[1] == {
        "text": "",
        "text_pair": None,
        "label": None,
        "probability": None,
        "probabilities": None,
    }
    for argv, message in [
        (["so fun"], "its two texts separated by one tab; input 1 is not"),
        (["a\tb", "--threshold", "0.3"], "applies to classify --multi-label"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["predict", str(pair_run), *argv])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_multi_label_run_reports_f1_and_subset_accuracy(
    multi_label_run, capsys
):
    metrics = json.loads((multi_label_run / "metrics.json").read_text())
    assert metrics["threshold"] == 0.4
    assert metrics["settings"]["monitor"] == "macro_f1"
    assert {"micro_f1", "macro_f1", "subset_accuracy"} <= set(metrics)
    assert set(metrics["per_class"]) == set(TOPICS)
    assert metrics["keras_round_trip_max_difference"] < 1e-4
    # No confusion matrix: a text may have several classes, or none.
    names = {p.name for p in multi_label_run.iterdir()}
    assert "confusion_matrix.png" not in names
    # A CSV test file joins the labels of a cell with "|".
    test = multi_label_run.parent / "test.csv"
    rows = [f"{FIRST[i % 4]},{'|'.join(topic_names(i))}" for i in range(6)]
    test.write_text("\n".join(["body,topics", *rows]) + "\n")
    cli.main(
        [
            "evaluate",
            str(multi_label_run),
            "--test",
            str(test),
            "--text-column",
            "body",
            "--label-column",
            "topics",
            "--threshold",
            "0.45",
        ]
    )
    printed = capsys.readouterr().out
    assert "subset accuracy" in printed and "micro-F1" in printed
    report = json.loads(
        (multi_label_run / "evaluation" / "evaluation.json").read_text()
    )
    assert report["threshold"] == 0.45
    assert sum(c["support"] for c in report["per_class"].values()) == sum(
        len(topic_names(i)) for i in range(6)
    )
    cli.main(["export", str(multi_label_run)])
    assert (multi_label_run / "saved_model" / "saved_model.pb").exists()


def test_multi_label_run_predicts_every_label_above_the_threshold(
    multi_label_run, capsys
):
    # A threshold of its own, 0.5 instead of the run's 0.4.
    cli.main(
        ["predict", str(multi_label_run), "so fun", "", "--json"]
        + ["--threshold", "0.5"]
    )
    row, blank = [
        json.loads(line) for line in capsys.readouterr().out.splitlines()
    ]
    probabilities = row["probabilities"]
    # The class names are sorted, as the data's are.
    names = sorted(TOPICS)
    assert list(probabilities) == names
    assert row["labels"] == [t for t in names if probabilities[t] > 0.5]
    assert blank == {"text": "", "labels": None, "probabilities": None}
    # Printed without --json: each label with its probability, or (none).
    shown = ", ".join(f"{t} {probabilities[t]:.3f}" for t in row["labels"])
    assert classify.row_line(row, "so fun") == f"{shown or '(none)'}\tso fun"


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--train", "{csv}", "--text-column", "premise,hypothesis,label"],
            "--text-column must be a column name, or two different ones "
            "separated by a comma",
        ),
        (
            ["--train", "{csv}", "--text-column", "premise,body"],
            "has no column 'body'. Available columns: ['premise', "
            "'hypothesis', 'label']. Received: --text-column=premise,body",
        ),
        (
            ["--train", "{csv}", "--label-separator", ";"],
            "--label-separator needs --multi-label",
        ),
        (
            ["--train", "{csv}", "--threshold", "0.3"],
            "--threshold needs --multi-label",
        ),
        (
            ["--train", "{csv}", "--multi-label", "--threshold", "1.5"],
            "--threshold must be a probability in (0, 1)",
        ),
        (
            ["--train", "{csv}", "--multi-label", "--class-weight", "balanced"],
            "--class-weight cannot go with --multi-label",
        ),
        (
            ["--train", "{jsonl}", "--multi-label", "--early-stopping", "1"]
            + ["--monitor", "accuracy"],
            "--monitor must be one of macro_f1, micro_f1, subset_accuracy, "
            "loss for --task classify --multi-label",
        ),
        (
            ["--train", "{jsonl}", "--multi-label", "--label-separator", ";"],
            "--label-separator splits CSV and TSV label cells",
        ),
        (["--multi-label"], "--multi-label needs --train"),
    ],
)
def test_pair_and_multi_label_options_are_checked_first(
    argv, message, tmp_path, capsys
):
    files = {
        "csv": pairs_csv(tmp_path / "nli.csv", count=2),
        "jsonl": topics_jsonl(tmp_path / "topics.jsonl", count=2),
    }
    argv = [value.format(**files) for value in argv]
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--output-dir", str(out)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_refuses_one_text_column_for_a_pair_run(
    pair_run, tmp_path, capsys
):
    test = tmp_path / "test.csv"
    test.write_text("text,label\nso fun,yes\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(
            ["evaluate", str(pair_run), "--test", str(test)]
            + ["--text-column", "text"]
        )
    assert exit_info.value.code == 2
    assert "the run classifies sentence pairs" in capsys.readouterr().err
