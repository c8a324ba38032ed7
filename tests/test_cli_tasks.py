"""`--task tag` and `--task qa` from the command line, end to end, on a
small random BERT saved as a keras-hub preset folder and files written
here: train, evaluate, predict and export."""

import json

import pytest

from kfinetune import cli
from kfinetune.testing import models

PEOPLE = ["Mary", "John", "Ann", "Omar"]
PLACES = ["Paris", "Lima", "Oslo", "Rome"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preset")
    return models.save_small_bert_preset(folder, max_sequence_length=64)


def conll(path, count, offset=0):
    """`count` sentences "<person> went to <place> ." tagged IOB2, one word
    and its tag per line, a blank line between sentences."""
    lines = ["-DOCSTART- O", ""]
    for i in range(offset, offset + count):
        person, place = PEOPLE[i % 4], PLACES[(i // 4) % 4]
        lines += [
            f"{person} B-PER",
            "went O",
            "to O",
            f"{place} B-LOC",
            ". O",
            "",
        ]
    path.write_text("\n".join(lines))
    return str(path)


def squad(path, count):
    paragraphs = []
    for i in range(count):
        person, place = PEOPLE[i % 4], PLACES[(i // 4) % 4]
        context = f"{person} went to {place} in {1990 + i}."
        paragraphs.append(
            {
                "context": context,
                "qas": [
                    {
                        "id": f"q{i}",
                        "question": f"where did {person} go?",
                        "answers": [
                            {
                                "text": place,
                                "answer_start": context.index(place),
                            }
                        ],
                    }
                ],
            }
        )
    path.write_text(json.dumps({"data": [{"paragraphs": paragraphs}]}))
    return str(path)


def options(preset, output_dir, length="32"):
    return [
        "--preset",
        preset,
        "--sequence-length",
        length,
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--output-dir",
        str(output_dir),
    ]


@pytest.fixture(scope="module")
def tag_run(preset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tag")
    out = folder / "run"
    cli.main(
        [
            "train",
            "--task",
            "tag",
            "--train",
            conll(folder / "train.conll", 24),
            "--test",
            conll(folder / "test.conll", 4, offset=24),
            "--crf",
            "--method",
            "lora",
            "--save",
            "both",
            # Watches the validation entity F1 (`EntityF1`).
            "--early-stopping",
            "1",
            *options(preset, out),
        ]
    )
    return out


def test_tag_trains_evaluates_and_exports(tag_run, capsys):
    metrics = json.loads((tag_run / "metrics.json").read_text())
    assert metrics["task"] == "tag" and metrics["method"] == "lora"
    assert metrics["settings"]["monitor"] == "entity_f1"
    assert {"entity_f1", "per_type"} <= set(metrics)
    assert set(metrics["per_type"]) == {"LOC", "PER"}
    assert metrics["trainable_parameters"] < metrics["total_parameters"]
    for name in (
        "adapter_round_trip_max_difference",
        "keras_round_trip_max_difference",
        "saved_model_max_difference",
    ):
        assert metrics[name] < 1e-4, name
    assert (tag_run / "tag_names.txt").read_text().split() == [
        "O",
        "B-LOC",
        "B-PER",
    ]
    names = {p.name for p in tag_run.iterdir()}
    assert {"model.keras", "adapter.h5", "saved_model"} <= names
    # Splits: 24 train sentences, of which 10 % are held out for
    # validation; the test file has 4.
    assert metrics["settings"]["test_split"] is None
    cli.main(["evaluate", str(tag_run)])
    report = json.loads(
        (tag_run / "evaluation" / "evaluation.json").read_text()
    )
    assert report["entity_f1"] == pytest.approx(metrics["entity_f1"])
    printed = capsys.readouterr().out
    assert "entity F1" in printed
    exported = tag_run.parent / "exported"
    cli.main(["export", str(tag_run), "--merge", "--output", str(exported)])
    assert (exported / "saved_model.pb").exists()
    assert "merged" in capsys.readouterr().out


def test_tag_predicts_words_and_tags(tag_run, capsys):
    cli.main(["predict", str(tag_run), "Ann went to Rome .", "", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["words"] == ["Ann", "went", "to", "Rome", "."]
    assert len(rows[0]["tags"]) == 5
    assert set(rows[0]["tags"]) <= {"O", "B-LOC", "B-PER"}
    assert rows[1] == {"text": "", "words": [], "tags": []}


def test_qa_trains_predicts_and_exports(preset, tmp_path, capsys):
    out = tmp_path / "run"
    cli.main(
        [
            "train",
            "--task",
            "qa",
            "--train",
            squad(tmp_path / "train.json", 30),
            "--method",
            "lora",
            "--validation-split",
            "0.2",
            "--test-split",
            "0.2",
            # Watches the validation F1 of the answers.
            "--early-stopping",
            "1",
            *options(preset, out, length="48"),
        ]
    )
    printed = capsys.readouterr().out
    assert "SQuAD questions: train: 18, validation: 6, test: 6" in printed
    assert "sample predictions (test split):" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "qa"
    assert metrics["settings"]["monitor"] == "f1"
    assert 0 <= metrics["exact_match"] <= metrics["f1"] <= 100
    assert metrics["count"] == 6
    assert metrics["keras_round_trip_max_difference"] < 1e-4
    assert metrics["saved_model_max_difference"] == 0
    cli.main(
        [
            "predict",
            str(out),
            "where did Mary go?\tMary went to Oslo.",
            "--json",
        ]
    )
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["question"] == "where did Mary go?"
    assert row["answer"] in "Mary went to Oslo."
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", str(out), "a question without a context"])
    assert exit_info.value.code == 2
    assert "separated by one tab" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "tag"], "--task tag has no bundled data: give --train"),
        (
            ["--task", "tag", "--train", "x.csv"],
            "--train must be a .conll, .iob, .txt file for --task tag",
        ),
        (["--task", "qa", "--crf"], "--crf applies to --task tag only"),
        (
            ["--task", "tag", "--class-weight", "balanced"],
            "--class-weight applies to --task classify only",
        ),
        (
            ["--task", "qa", "--early-stopping", "1", "--monitor", "macro_f1"],
            "--monitor must be one of f1, exact_match, loss for --task qa",
        ),
    ],
)
def test_task_options_are_checked_first(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *argv, "--output-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
