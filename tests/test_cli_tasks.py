"""`--task tag` and `--task qa` from the command line, end to end, on a
small random BERT saved as a keras-hub preset folder and files written
here: train, evaluate, predict and export."""

import json

import pytest

from kfinetune import cli
from kfinetune.cli import settings as cli_settings
from kfinetune.cli import tasks
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
        # Every third question asks about someone else: no answer.
        impossible = i % 3 == 2
        asked = PEOPLE[(i + 1) % 4] if impossible else person
        answers = [{"text": place, "answer_start": context.index(place)}]
        paragraphs.append(
            {
                "context": context,
                "qas": [
                    {
                        "id": f"q{i}",
                        "question": f"where did {asked} go?",
                        "answers": [] if impossible else answers,
                        "is_impossible": impossible,
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
    assert {"entity_scores.png", "training_curves.png"} <= names
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
    assert (
        "SQuAD v2.0 (some unanswerable) questions: train: 18, "
        "validation: 6, test: 6"
    ) in printed
    assert "sample predictions (test split):" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "qa"
    assert metrics["settings"]["monitor"] == "f1"
    assert 0 <= metrics["exact_match"] <= metrics["f1"] <= 100
    assert metrics["count"] == 6
    # Every fifth question of `squad` has no answer: scored apart.
    kinds = metrics["answerable"]["count"], metrics["unanswerable"]["count"]
    assert sum(kinds) == 6 and min(kinds) > 0
    assert (out / "qa_scores.png").read_bytes()[:4] == b"\x89PNG"
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
        (
            ["--task", "tag", "--validation-split", "0.2"],
            "--validation-split needs --train: the bundled data's splits "
            "are fixed",
        ),
        (["--task", "tag", "--tag-column", "1"], "--tag-column needs --train"),
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


@pytest.mark.parametrize(
    "task, length, sizes",
    [
        ("tag", 64, {"train": 1950, "validation": 487, "test": 983}),
        ("qa", 128, {"train": 800, "validation": 200, "test": 200}),
    ],
)
def test_tag_and_qa_default_to_the_bundled_tweets(
    task, length, sizes, tmp_path
):
    settings, _ = cli_settings.resolve({"task": task}, {})
    assert settings["sequence_length"] == length
    # Full fine-tuning of both at 2e-4 (measured; the classifier's 5e-5
    # learned less), and QA's windows overlap at any row length.
    assert settings["learning_rate"] == 2e-4
    if task == "qa":
        assert settings["document_stride"] == 64
        train = squad(tmp_path / "train.json", 3)
        own, _ = cli_settings.resolve({"task": task, "train": train}, {})
        assert own["sequence_length"] == 384
        assert own["document_stride"] == 128
    assert settings["validation_split"] is None
    module = tasks.get(task)
    data = module.load_data(settings)
    assert module.sizes(data) == sizes
    # The same seed draws the same splits.
    again = module.load_data(settings)
    assert module.split(again, "test") == module.split(data, "test")
