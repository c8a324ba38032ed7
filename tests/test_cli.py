import csv
import json
import pathlib
import tomllib
import zipfile

import h5py
import pytest

from kfinetune import cli
from kfinetune import data

SAMPLE_CSV = pathlib.Path(__file__).parent.parent / "examples/data/reviews.csv"

POSITIVE = ["i love this", "what a great day", "best movie ever", "so happy"]
NEGATIVE = ["i hate this", "what an awful day", "worst film ever", "so sad"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs must be positive. Received: --epochs=0"),
        (["--batch-size", "-1"], "--batch-size must be positive"),
        (["--learning-rate", "0"], "--learning-rate must be positive"),
        (["--classes", "4"], "invalid choice: 4"),
    ],
)
def test_bad_arguments_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_sample_csv_loads_as_documented():
    texts = data.from_csv(SAMPLE_CSV, "review", "stars")
    assert len(texts) == 40
    assert texts.class_names == ("1", "2", "3", "4", "5")
    assert list(texts.class_counts().values()) == [8] * 5


# About 28 s: the one command-line run on the real MiniLM with every
# output (its default preset, `model.keras`, a SavedModel exported and
# reloaded); the other command-line tests use a small random preset.
def test_fine_tunes_minilm_on_a_csv_file_and_saves_no_optimizer_state(
    tmp_path, capsys
):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "stars"])
        for i in range(30):
            writer.writerow([f"{POSITIVE[i % 4]} {i}", "good"])
            writer.writerow([f"{NEGATIVE[i % 4]} {i}", "bad"])
    out_dir = tmp_path / "run"
    cli.main(
        [
            "--epochs",
            "1",
            "--train",
            str(path),
            "--text-column",
            "review",
            "--label-column",
            "stars",
            "--sequence-length",
            "16",
            "--batch-size",
            "8",
            "--output-dir",
            str(out_dir),
        ]
    )
    printed = capsys.readouterr().out
    assert "test accuracy: " in printed
    assert "method: full" in printed
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["method"] == "full"
    assert set(metrics["per_class"]) == {"bad", "good"}
    assert sum(c["support"] for c in metrics["per_class"].values()) == 6
    assert metrics["trainable_parameters"] == metrics["total_parameters"]
    assert {p.name for p in out_dir.iterdir()} == {
        "config.toml",
        "class_names.txt",
        "metrics.json",
        "model.keras",
        "saved_model",
        "training_curves.png",
        "confusion_matrix.png",
    }
    assert tomllib.loads((out_dir / "config.toml").read_text())["method"] == (
        "full"
    )
    # Nothing is left of the staging folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv", "run"]
    assert metrics["keras_round_trip_max_difference"] < 1e-4
    assert metrics["saved_model_max_difference"] < 1e-4
    assert (out_dir / "saved_model" / "saved_model.pb").exists()
    with zipfile.ZipFile(out_dir / "model.keras") as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        slots = weights["optimizer/vars"].values()
        # A fresh optimizer's step count and learning rate, no AdamW slots.
        assert [slot.shape for slot in slots] == [(), ()]
