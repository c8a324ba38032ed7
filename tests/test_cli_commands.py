"""The command line's subcommands and methods, on a small random BERT saved
as a keras-hub preset folder (`--preset`), so no test needs MiniLM."""

import csv
import io
import json
import os
import pathlib
import subprocess
import sys
import tomllib

import h5py
import numpy as np
import pytest

from kfinetune import cli
from kfinetune.cli import config_file
from kfinetune.cli import parser as flags
from kfinetune.cli import settings as defaults
from kfinetune.testing import models

POSITIVE = ["i love this", "what a great day", "best movie ever", "so happy"]
NEGATIVE = ["i hate this", "what an awful day", "worst film ever", "so sad"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    preset = models.save_small_bert_preset(folder / "preset")
    data = folder / "reviews.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "stars"])
        for i in range(20):
            writer.writerow([POSITIVE[i % 4], "good"])
            writer.writerow([NEGATIVE[i % 4], "bad"])
    return {"preset": preset, "csv": str(data)}


def common(files, output_dir):
    return [
        "--epochs",
        "1",
        "--train",
        files["csv"],
        "--text-column",
        "review",
        "--label-column",
        "stars",
        "--preset",
        files["preset"],
        "--sequence-length",
        "16",
        "--batch-size",
        "16",
        "--output-dir",
        str(output_dir),
    ]


# Every option of the schedule and of the layer groups, so that
# `test_config_file_repeats_a_run_exactly` repeats them all.
LORA_OPTIONS = [
    "--method",
    "lora",
    "--rank",
    "2",
    "--schedule",
    "cosine",
    "--warmup",
    "0.5",
    "--layerwise-decay",
    "0.8",
    "--unfreeze",
    "gradual",
    "--save",
    "adapter",
    "--no-export",
]


@pytest.fixture(scope="module")
def lora_run(files, tmp_path_factory):
    """A LoRA run saved as its adapters alone, without a SavedModel."""
    out = tmp_path_factory.mktemp("runs") / "lora"
    cli.main(["train", *common(files, out), *LORA_OPTIONS])
    return out


def read_toml(path):
    return tomllib.loads(pathlib.Path(path).read_text())


@pytest.mark.parametrize(
    "method, options",
    [
        # Full fine-tuning: tests/test_cli.py, on MiniLM.
        ("adapter", ["--size", "4"]),
        ("ia3", ["--merge"]),
        ("prefix", ["--length", "2"]),
        ("prompt", ["--length", "2"]),
    ],
)
def test_every_method_trains_and_writes_its_outputs(
    method, options, files, tmp_path, capsys
):
    out = tmp_path / method
    cli.main([*common(files, out), "--method", method, *options, "--no-export"])
    assert f"method: {method}" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == method
    assert set(metrics["per_class"]) == {"bad", "good"}
    assert metrics["trainable_parameters"] < metrics["total_parameters"]
    if method == "ia3":
        assert metrics["merge_max_difference"] < 1e-4
    assert metrics["keras_round_trip_max_difference"] < 1e-4
    names = {p.name for p in out.iterdir()}
    assert names == {
        "config.toml",
        "class_names.txt",
        "metrics.json",
        "model.keras",
        "training_curves.png",
        "confusion_matrix.png",
    }
    assert read_toml(out / "config.toml")["method"] == method
    # Nothing is left of the staging folder.
    assert [p.name for p in tmp_path.iterdir()] == [method]


def adapter_weights(run):
    """Every array of a run's `adapter.h5`, by its path in the file."""
    arrays = {}
    with h5py.File(run / "adapter.h5") as f:
        f.visititems(
            lambda name, item: (
                arrays.__setitem__(name, item[()])
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return arrays


def test_config_file_repeats_a_run_exactly(lora_run, tmp_path):
    first = lora_run
    config = read_toml(first / "config.toml")
    assert config["rank"] == 2 and config["alpha"] == 4.0
    assert config["schedule"] == "cosine" and config["warmup"] == 0.5
    assert config["layerwise-decay"] == 0.8
    assert config["unfreeze-fraction"] == 0.3
    assert "size" not in config and "classes" not in config
    second = tmp_path / "second"
    cli.main(
        [
            "train",
            "--config",
            str(first / "config.toml"),
            "--output-dir",
            str(second),
        ]
    )
    assert (second / "config.toml").read_text() == (
        first / "config.toml"
    ).read_text()
    one = json.loads((first / "metrics.json").read_text())
    two = json.loads((second / "metrics.json").read_text())
    assert one["settings"] == {**two["settings"], "output_dir": str(first)}
    # The same seed and settings train the same weights: the adapters and
    # the head (the rest is the preset's, frozen).
    one, two = adapter_weights(first), adapter_weights(second)
    assert one.keys() == two.keys() and len(one) > 2
    for name, array in one.items():
        np.testing.assert_array_equal(array, two[name], err_msg=name)


def test_flags_override_a_yaml_config(files, tmp_path):
    parser = flags.build_parser()
    path = tmp_path / "run.yaml"
    path.write_text(
        "method: lora\nrank: 4\nlearning_rate: 1e-3\ntargets: '.*/query'\n"
    )
    config = config_file.read_config(path, parser.train_actions)
    assert config == {
        "method": "lora",
        "rank": 4,
        "learning_rate": 1e-3,
        "targets": [".*/query"],
    }
    settings, _ = defaults.resolve({"rank": 2}, config)
    assert settings["rank"] == 2 and settings["alpha"] == 4.0
    assert settings["learning_rate"] == 1e-3


def test_toml_writer_round_trips_through_tomllib(tmp_path):
    settings = {
        "csv": 'a "quoted"\\ path\twith tab é',
        "targets": [".*/(query|value)", "x\\d+"],
        "learning_rate": 5e-05,
        "epochs": 3,
        "jit_compile": False,
        "export": True,
        "preset": None,
        "output_dir": "not written",
    }
    config_file.write_config(tmp_path / "c.toml", settings)
    read = read_toml(tmp_path / "c.toml")
    expected = {
        k.replace("_", "-"): v
        for k, v in settings.items()
        if v is not None and k != "output_dir"
    }
    assert read == expected


def test_predict_reads_arguments_a_file_and_stdin(
    lora_run, tmp_path, capsys, monkeypatch
):
    assert not (lora_run / "model.keras").exists()
    assert (lora_run / "adapter.h5").exists()
    cli.main(["predict", str(lora_run), "i love this", "so sad"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    label, probability, text = lines[0].split("\t")
    assert label in ("bad", "good") and text == "i love this"
    assert 0.5 <= float(probability) <= 1

    texts = tmp_path / "texts.txt"
    texts.write_text("i love this\n\nso sad\n")
    cli.main(["predict", str(lora_run), "--file", str(texts), "--json"])
    from_file = [
        json.loads(line) for line in capsys.readouterr().out.splitlines()
    ]
    # One output line per input line: the blank line gets a row without a
    # label, so output line i still answers input line i.
    assert [row["text"] for row in from_file] == ["i love this", "", "so sad"]
    assert from_file[1] == {
        "text": "",
        "label": None,
        "probability": None,
        "probabilities": None,
    }
    for row in from_file[::2]:
        assert set(row["probabilities"]) == {"bad", "good"}
        assert sum(row["probabilities"].values()) == pytest.approx(1, 1e-5)
        assert row["probability"] == max(row["probabilities"].values())
    cli.main(["predict", str(lora_run), "--file", str(texts)])
    lines = capsys.readouterr().out.split("\n")
    assert lines[1] == "" and lines[2].endswith("\tso sad")

    monkeypatch.setattr(sys, "stdin", io.StringIO("i love this\n\nso sad\n"))
    cli.main(["predict", str(lora_run), "--json"])
    from_stdin = [
        json.loads(line) for line in capsys.readouterr().out.splitlines()
    ]
    assert from_stdin == from_file


def test_evaluate_and_export_a_run(lora_run, files, tmp_path, capsys):
    cli.main(
        [
            "evaluate",
            str(lora_run),
            "--test",
            files["csv"],
            "--text-column",
            "review",
            "--label-column",
            "stars",
        ]
    )
    report = json.loads(
        (lora_run / "evaluation" / "evaluation.json").read_text()
    )
    assert sum(c["support"] for c in report["per_class"].values()) == 40
    assert (lora_run / "evaluation" / "confusion_matrix.png").exists()
    cli.main(["evaluate", str(lora_run), "--output-dir", str(tmp_path / "e")])
    report = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert sum(c["support"] for c in report["per_class"].values()) == 4

    exported = tmp_path / "exported"
    cli.main(["export", str(lora_run), "--merge", "--output", str(exported)])
    assert (exported / "saved_model.pb").exists()
    # A second export replaces the first.
    cli.main(["export", str(lora_run), "--output", str(exported)])
    assert (exported / "saved_model.pb").exists()
    assert "merged" in capsys.readouterr().out


def _fails(argv, capsys, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--method", "lora", "--size", "4"], "--size applies to --method"),
        (["--method", "adapter", "--merge"], "--merge folds only lora"),
        (["--save", "adapter"], "--save needs a parameter-efficient"),
        (
            ["--schedule", "constant", "--warmup", "0.1"],
            "--warmup needs a --schedule",
        ),
        (["--schedule", "stlr", "--warmup", "0"], "must be in (0, 1)"),
        (["--layerwise-decay", "1.5"], "--layerwise-decay must be in (0, 1]"),
        (["--unfreeze-fraction", "0.5"], "needs --unfreeze gradual"),
        (["--classes", "3"], "--classes applies to the bundled tweets"),
        (["--label-column", "nope"], "has no column 'nope'"),
        (["--method", "lora", "--targets", "nothing"], "nothing"),
    ],
)
def test_bad_options_write_nothing(options, message, files, tmp_path, capsys):
    out = tmp_path / "run"
    _fails([*common(files, out), *options], capsys, message)
    assert list(tmp_path.iterdir()) == []


def test_bad_files_write_nothing(files, tmp_path, capsys):
    out = tmp_path / "run"
    missing = str(tmp_path / "missing.csv")
    _fails([*common(files, out), "--train", missing], capsys, "is not a file")
    config = tmp_path / "c.toml"
    config.write_text("epochs = 1\nlearning-rte = 0.1\n")
    _fails(
        [*common(files, out), "--config", str(config)],
        capsys,
        "unknown setting 'learning-rte'",
    )
    config.write_text("epochs = 'three'\n")
    _fails(
        [*common(files, out), "--config", str(config)],
        capsys,
        "epochs must be an integer",
    )
    _fails(["predict", str(tmp_path), "hello"], capsys, "not the folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_commands_refuse_bad_arguments(lora_run, tmp_path, capsys):
    _fails(
        ["predict", str(lora_run), "x", "--file", "f.txt"], capsys, "not both"
    )
    _fails(
        ["predict", str(lora_run), "--file", str(tmp_path / "none.txt")],
        capsys,
        "cannot read the texts",
    )
    _fails(
        ["evaluate", str(lora_run), "--text-column", "review"],
        capsys,
        "--text-column needs --test",
    )
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    _fails(
        ["export", str(lora_run), "--output", str(target)],
        capsys,
        "--output must be a new folder",
    )
    assert (target / "notes.txt").read_text() == "keep me"


def test_entry_point_refuses_a_bad_flag_without_importing_tensorflow(
    tmp_path,
):
    # `-X importtime` lists every module the process imports on stderr.
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "kfinetune",
            "--epochs",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    imported = [line.split("|")[-1].strip() for line in lines[:-1]]
    assert all(line.startswith("import time:") for line in lines[:-1])
    assert "kfinetune.cli.parser" in imported
    heavy = ("tensorflow", "keras", "keras_hub", "numpy")
    assert not [m for m in imported if m.split(".")[0] in heavy]
    assert lines[-1] == (
        "python -m kfinetune train: error: --epochs must be positive. "
        "Received: --epochs=0 (--help lists the options)"
    )
    assert list(tmp_path.iterdir()) == []


def test_import_kfinetune_registers_every_class_for_loading():
    # `import kfinetune` alone must let `keras.models.load_model` find
    # kfinetune's classes (a fresh process: this one imported them all).
    code = (
        "import kfinetune, keras; "
        "print(keras.saving.get_registered_object('kfinetune>PEFTModel'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "PEFTModel" in result.stdout.strip().splitlines()[-1]
