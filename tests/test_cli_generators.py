"""`--task causal-lm` and `--task seq2seq` from the command line, end to
end, on small random generators with byte-level tokenizers saved as
keras-hub preset folders: train, evaluate, predict, export, and the checks
that refuse a run before TensorFlow starts."""

import contextlib
import io
import json
import os
import subprocess
import sys
import tomllib

import h5py
import keras
import numpy as np
import pytest

from kfinetune import cli
from kfinetune import presets
from kfinetune import testing
from kfinetune.cli import runs
from kfinetune.testing import models

WORDS = ["good", "bad", "fun", "sad"]
LENGTH = 24


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def instructions(count, offset=0):
    return [
        {"prompt": f"say {WORDS[i % 4]} {i}:", "response": f" {WORDS[i % 4]}"}
        for i in range(offset, offset + count)
    ]


def pairs(count, offset=0):
    return [
        {"source": f"{WORDS[i % 4]} day {i}", "target": f"{WORDS[i % 4]} {i}!"}
        for i in range(offset, offset + count)
    ]


def train(argv):
    """Runs `train` in this process; returns what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        cli.main(["train", *argv])
    return printed.getvalue()


def options(preset, output_dir):
    return [
        "--preset",
        preset,
        "--sequence-length",
        str(LENGTH),
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--generation-examples",
        "3",
        "--output-dir",
        str(output_dir),
    ]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("generators")


@pytest.fixture(scope="module")
def causal_run(folder):
    """LoRA on a small GPT-2, saved as a model and as adapters, stopping
    early on the validation chrF of generated responses."""
    # One layer: tracing the train step is most of a tiny model's cost.
    preset = models.save_small_generator_preset(
        folder / "gpt2", "gpt2", num_layers=1
    )
    test = instructions(4, offset=12)
    out = folder / "causal"
    keras.utils.set_random_seed(0)
    printed = train(
        [
            "--task",
            "causal-lm",
            "--train",
            write_jsonl(folder / "train.jsonl", instructions(12)),
            "--test",
            write_jsonl(folder / "test.jsonl", test),
            "--validation-split",
            "0.2",
            "--method",
            "lora",
            "--rank",
            "2",
            "--save",
            "both",
            "--early-stopping",
            "1",
            "--monitor",
            "chrf",
            *options(preset, out),
        ]
    )
    return {"out": out, "preset": preset, "test": test, "printed": printed}


@pytest.fixture(scope="module")
def seq2seq_run(folder):
    """Full fine-tuning of a small BART."""
    preset = models.save_small_generator_preset(
        folder / "bart", "bart", num_layers=1
    )
    out = folder / "seq2seq"
    keras.utils.set_random_seed(0)
    printed = train(
        [
            "--task",
            "seq2seq",
            "--train",
            write_jsonl(folder / "pairs.jsonl", pairs(12)),
            "--test-split",
            "0.25",
            "--validation-split",
            "0.2",
            *options(preset, out),
        ]
    )
    return {"out": out, "preset": preset, "printed": printed}


def target_tokens(texts):
    """Byte-level tokens of each text and the end token after it."""
    return sum(len(text.encode()) + 1 for text in texts)


def test_causal_lm_run_scores_saves_and_exports(causal_run):
    out, test = causal_run["out"], causal_run["test"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "causal-lm" and metrics["method"] == "lora"
    assert metrics["settings"]["monitor"] == "chrf"
    assert metrics["epochs_run"] == 1
    # Early stopping read the validation chrF of generated responses.
    assert "val_chrf: " in causal_run["printed"]
    # Perplexity over the test file's responses and their end tokens
    # alone: the prompts weigh nothing.
    assert metrics["tokens"] == target_tokens(r["response"] for r in test)
    assert metrics["perplexity"] == pytest.approx(
        np.exp(metrics["cross_entropy"])
    )
    # A random model's perplexity is near its vocabulary's size (258).
    assert 20 < metrics["perplexity"] < 3000
    assert metrics["generated_examples"] == 3
    assert 0 <= metrics["chrf"] <= 100 and 0 <= metrics["exact_match"] <= 1
    assert metrics["trainable_parameters"] < metrics["total_parameters"]
    for name in (
        "adapter_round_trip_max_difference",
        "keras_round_trip_max_difference",
        "preset_max_difference",
    ):
        assert metrics[name] < 1e-4, name
    assert {p.name for p in out.iterdir()} == {
        "config.toml",
        "metrics.json",
        "model.keras",
        "adapter.h5",
        "preset",
        "generations.jsonl",
        "training_curves.png",
    }
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["task"] == "causal-lm"
    assert config["generation-examples"] == 3 and config["export"] is True
    # The generated examples are the test file's first, with their
    # references; the sample predictions print them.
    generations = [
        json.loads(line)
        for line in (out / "generations.jsonl").read_text().splitlines()
    ]
    assert [g["prompt"] for g in generations] == [r["prompt"] for r in test[:3]]
    assert [g["reference"] for g in generations] == [
        r["response"] for r in test[:3]
    ]
    samples = causal_run["printed"].split("sample predictions (test split):")
    lines = samples[1].strip().splitlines()[:3]
    for line, generation in zip(lines, generations, strict=True):
        assert line.strip().startswith(generation["prompt"])
        assert f"(reference {generation['reference']!r})" in line
    # The export is a keras-hub preset of the merged model, with its
    # tokenizer: it loads as a plain GPT-2 whose logits are the run's.
    exported = presets.causal_lm(out / "preset")
    assert type(exported).__name__ == "GPT2CausalLM"
    assert exported.preprocessor.sequence_length == LENGTH
    trained = runs.load_keras(out / "model.keras")
    x = testing.small_gpt2_inputs(batch_size=2, sequence_length=8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(exported(x)),
        keras.ops.convert_to_numpy(trained(x)),
        atol=1e-4,
    )


def greedy_text(model, prompt_ids, width):
    """Greedy decoding without a cache, up to `width` tokens with the
    prompt, cut at the end token, as text."""
    tokenizer = model.preprocessor.tokenizer
    x = {
        "token_ids": np.zeros((1, width), "int32"),
        "padding_mask": np.zeros((1, width), "int32"),
    }
    x["token_ids"][0, : len(prompt_ids)] = prompt_ids
    x["padding_mask"][0, : len(prompt_ids)] = 1
    new = testing.greedy_decoding(model, x)[0, len(prompt_ids) :].tolist()
    if tokenizer.end_token_id in new:
        new = new[: new.index(tokenizer.end_token_id)]
    return tokenizer.detokenize(new) if new else ""


def predicted(argv, capsys):
    cli.main(["predict", *argv, "--json"])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_causal_lm_evaluates_predicts_and_exports(
    causal_run, folder, tmp_path, capsys
):
    out = causal_run["out"]
    metrics = json.loads((out / "metrics.json").read_text())
    cli.main(["evaluate", str(out)])
    report = json.loads((out / "evaluation" / "evaluation.json").read_text())
    for name in ("perplexity", "tokens", "chrf", "bleu", "exact_match"):
        assert report[name] == pytest.approx(metrics[name], rel=1e-5), name
    assert (out / "evaluation" / "generations.jsonl").read_text() == (
        out / "generations.jsonl"
    ).read_text()
    other = instructions(5, offset=20)
    cli.main(
        [
            "evaluate",
            str(out),
            "--test",
            write_jsonl(tmp_path / "o.jsonl", other),
        ]
    )
    report = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert report["tokens"] == target_tokens(r["response"] for r in other)
    assert report["data"].endswith("o.jsonl")
    printed = capsys.readouterr().out
    assert "\nperplexity: " in printed and "\ngeneration (3 examples" in printed

    # Predictions are greedy: what decoding without a cache gives, each
    # at most --max-new-tokens tokens; "\n" in a prompt is a newline.
    model = runs.load_keras(out / "model.keras")
    start = model.preprocessor.tokenizer.start_token_id
    prompt = "say fun:\nok"
    ids = [start, *prompt.encode()]
    rows = predicted(
        [str(out), "say fun:\\nok", "", "--max-new-tokens", "3"], capsys
    )
    assert rows[0]["prompt"] == prompt
    assert rows[0]["generated"] == greedy_text(model, ids, len(ids) + 3)
    assert rows[1] == {"prompt": "", "generated": None}
    (row,) = predicted([str(out), "say fun:\\nok"], capsys)
    assert row["generated"] == greedy_text(model, ids, LENGTH)
    cli.main(["predict", str(out), "say fun:\\nok"])
    assert capsys.readouterr().out == (
        row["generated"].replace("\\", "\\\\").replace("\n", "\\n") + "\n"
    )

    exported = tmp_path / "exported"
    cli.main(["export", str(out), "--output", str(exported)])
    reloaded = presets.causal_lm(exported)
    x = testing.small_gpt2_inputs(batch_size=2, sequence_length=8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(x)),
        keras.ops.convert_to_numpy(model(x)),
        atol=1e-4,
    )
    # A second export replaces the first.
    cli.main(["export", str(out), "--output", str(exported), "--merge"])
    assert "merged the adapters" in capsys.readouterr().out


def adapter_weights(run):
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


def test_config_file_repeats_a_causal_lm_run(causal_run, tmp_path):
    first = causal_run["out"]
    second = tmp_path / "again"
    train(
        [
            "--config",
            str(first / "config.toml"),
            "--no-export",
            "--output-dir",
            str(second),
        ]
    )
    one, two = adapter_weights(first), adapter_weights(second)
    assert one.keys() == two.keys() and any("lora_a" in k for k in one)
    for name, array in one.items():
        np.testing.assert_array_equal(array, two[name], err_msg=name)


def test_seq2seq_run_evaluates_predicts_and_exports(
    seq2seq_run, tmp_path, capsys
):
    out = seq2seq_run["out"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "seq2seq" and metrics["method"] == "full"
    assert metrics["trainable_parameters"] == metrics["total_parameters"]
    assert (
        "sources and targets: train: 7, validation: 2, test: 3"
        in (seq2seq_run["printed"])
    )
    assert metrics["generated_examples"] == 3
    assert metrics["keras_round_trip_max_difference"] < 1e-4
    assert metrics["preset_max_difference"] < 1e-4
    assert {p.name for p in out.iterdir()} == {
        "config.toml",
        "metrics.json",
        "model.keras",
        "preset",
        "generations.jsonl",
        "training_curves.png",
    }
    generations = [
        json.loads(line)
        for line in (out / "generations.jsonl").read_text().splitlines()
    ]
    assert all(
        set(g) == {"source", "reference", "generated"} for g in generations
    )

    # The target is greedy and honours --max-new-tokens: BART's decoder
    # starts with `</s> <s>`, then 3 new tokens at most.
    model = runs.load_keras(out / "model.keras")
    # keras-hub does not save a sequence-to-sequence preprocessor's lengths.
    model.preprocessor.encoder_sequence_length = LENGTH
    (row,) = predicted([str(out), "fun day 3", "--max-new-tokens", "3"], capsys)
    x = model.preprocessor.generate_preprocess(["fun day 3"], sequence_length=5)
    x = {k: keras.ops.convert_to_numpy(v) for k, v in x.items()}
    tokens = testing.greedy_decoding(model, x)[0, 2:].tolist()
    tokenizer = model.preprocessor.tokenizer
    if tokenizer.end_token_id in tokens:
        tokens = tokens[: tokens.index(tokenizer.end_token_id)]
    assert row == {
        "source": "fun day 3",
        "generated": tokenizer.detokenize(tokens) if tokens else "",
    }

    exported = presets.seq2seq_lm(out / "preset")
    assert type(exported).__name__ == "BartSeq2SeqLM"
    assert exported.preprocessor.encoder_sequence_length == LENGTH
    assert exported.preprocessor.decoder_sequence_length == LENGTH
    x = testing.small_seq2seq_inputs(batch_size=2, sequence_length=8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(exported(x)),
        keras.ops.convert_to_numpy(model(x)),
        atol=1e-4,
    )
    cli.main(["evaluate", str(out)])
    report = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert report["chrf"] == pytest.approx(metrics["chrf"])
    assert report["tokens"] == metrics["tokens"]


def fails(argv, capsys, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


@pytest.fixture(scope="module")
def files(folder):
    """A tokenizer-less folder and JSON Lines files of each format (no
    model: these runs are refused before TensorFlow builds one)."""
    bare = folder / "bare"
    bare.mkdir()
    (bare / "config.json").write_text("{}")
    tokenizer = folder / "tokenized"
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_text("{}")
    (tokenizer / "config.json").write_text(
        json.dumps({"config": {"max_sequence_length": 32}})
    )
    return {
        "bare": str(bare),
        "preset": str(tokenizer),
        "instructions": write_jsonl(folder / "i.jsonl", instructions(4)),
        "pairs": write_jsonl(folder / "p.jsonl", pairs(4)),
        "other": write_jsonl(
            folder / "x.jsonl", [{"prompt": "a", "answer": "b"}]
        ),
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--task", "causal-lm"],
            "--task causal-lm needs --preset: a keras-hub preset folder",
        ),
        (
            ["--task", "seq2seq", "--preset", "{bare}"],
            "has no tokenizer (tokenizer.json, tokenizer.model, vocab.json)",
        ),
        (
            ["--task", "seq2seq", "--preset", "{preset}", "--train", "{other}"],
            "has no key 'source': --task seq2seq reads source and target",
        ),
        (
            [
                "--task",
                "seq2seq",
                "--preset",
                "{preset}",
                "--train",
                "{instructions}",
            ],
            "(its keys are those of --task causal-lm)",
        ),
        (
            [
                "--task",
                "causal-lm",
                "--preset",
                "{preset}",
                "--train",
                "{other}",
            ],
            "has no key 'response': --task causal-lm reads prompt and "
            "response or messages",
        ),
        (
            [
                "--task",
                "causal-lm",
                "--preset",
                "{preset}",
                "--train",
                "{pairs}",
            ],
            "(its keys are those of --task seq2seq)",
        ),
        (
            ["--task", "seq2seq", "--preset", "{preset}", "--classes", "3"],
            "--classes applies to --task classify or causal-lm only",
        ),
        (
            ["--task", "causal-lm", "--preset", "{preset}", "--crf"],
            "--crf applies to --task tag only",
        ),
        (
            [
                "--task",
                "causal-lm",
                "--preset",
                "{preset}",
                "--method",
                "prefix",
                "--export",
            ],
            "--export writes a keras-hub preset folder",
        ),
        (
            [
                "--task",
                "seq2seq",
                "--preset",
                "{preset}",
                "--early-stopping",
                "1",
                "--monitor",
                "macro_f1",
            ],
            "--monitor must be one of loss, chrf, bleu, rouge_l, exact_match",
        ),
        (
            ["--task", "causal-lm", "--preset", "{preset}"],
            "--sequence-length defaults to 128 for --task causal-lm, longer "
            "than the model's 32 positions",
        ),
        (
            ["--generation-examples", "3"],
            "--generation-examples applies to --task causal-lm or seq2seq",
        ),
    ],
)
def test_generator_runs_are_refused_before_tensorflow(
    argv, message, files, tmp_path, capsys
):
    argv = [arg.format(**files) for arg in argv]
    fails([*argv, "--output-dir", str(tmp_path / "run")], capsys, message)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_preset_is_refused_without_importing_tensorflow(tmp_path):
    # `-X importtime` lists every module the process imports on stderr.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kfinetune"]
        + ["--task", "seq2seq"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    imported = [line.split("|")[-1].strip() for line in lines[:-1]]
    heavy = ("tensorflow", "keras", "keras_hub", "numpy")
    assert not [m for m in imported if m.split(".")[0] in heavy]
    assert "--task seq2seq needs --preset" in lines[-1]
    assert list(tmp_path.iterdir()) == []


def test_commands_refuse_what_a_generator_run_cannot_do(
    causal_run, tmp_path, capsys
):
    out = str(causal_run["out"])
    fails(
        ["predict", out, "hi", "--max-new-tokens", "0"],
        capsys,
        "--max-new-tokens must be positive",
    )
    # A prefix run's adapters do not fold into a preset's weights (the
    # config alone says so: nothing is loaded).
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    config = (causal_run["out"] / "config.toml").read_text()
    (prefix / "config.toml").write_text(
        config.replace('method = "lora"', 'method = "prefix"').replace(
            "rank = 2\n", ""
        )
    )
    (prefix / "model.keras").write_text("")
    fails(
        ["export", str(prefix)],
        capsys,
        "prefix adapters do not fold into its weights",
    )
    classify = tmp_path / "classify"
    classify.mkdir()
    (classify / "config.toml").write_text('task = "classify"\n')
    (classify / "class_names.txt").write_text("bad\ngood\n")
    (classify / "model.keras").write_text("")
    fails(
        ["predict", str(classify), "hi", "--max-new-tokens", "3"],
        capsys,
        "--max-new-tokens applies to causal-lm and seq2seq runs, and the "
        "run's task is classify",
    )


def test_without_train_the_bundled_tweets_are_instructions_and_sources(files):
    from kfinetune.cli import settings as defaults
    from kfinetune.cli import tasks

    given = {"task": "causal-lm", "preset": files["preset"], "classes": 3}
    given["sequence_length"] = 32
    settings, _ = defaults.resolve(given, {})
    data = tasks.get("causal-lm").load_data(settings)
    assert tasks.get("causal-lm").sizes(data) == {
        "train": 2000,
        "validation": 500,
        "test": 1000,
    }
    example = data.splits["test"][0]
    assert example["prompt"].startswith("Tweet: ")
    assert example["prompt"].endswith("\nSentiment:")
    responses = {e["response"] for e in data.splits["train"]}
    assert responses == {" negative", " neutral", " positive"}

    given = {"task": "seq2seq", "preset": files["preset"]}
    given["sequence_length"] = 32
    settings, _ = defaults.resolve(given, {})
    data = tasks.get("seq2seq").load_data(settings)
    assert all(e["source"] == e["target"].lower() for e in data.splits["test"])
    assert any(e["source"] != e["target"] for e in data.splits["test"])


def test_schedules_span_every_batch_when_gradients_accumulate(files):
    from kfinetune.cli import settings as defaults
    from kfinetune.cli import training

    given = {"task": "causal-lm", "preset": files["preset"]}
    given.update(sequence_length=32, accumulate=4, warmup=0.25)
    settings, _ = defaults.resolve(given, {})
    optimizer, _ = training.optimizer_and_callbacks(None, settings, 40)
    # Keras evaluates a schedule at the batch count, not at the optimizer
    # steps: over 10 steps, it reached zero after a quarter of the run.
    schedule = optimizer.get_config()["learning_rate"]["config"]
    assert schedule["total_steps"] == 40 and schedule["warmup_steps"] == 10
