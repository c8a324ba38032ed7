"""The command line's four subcommands, run from Python: LoRA on the bundled
tweets, then evaluate, predict and export.

python examples/cli_lora_tweets.py

The same from a shell:

    python -m kfinetune train --method lora --rank 8 --save both \\
        --no-export --output-dir runs/cli-lora
    python -m kfinetune evaluate runs/cli-lora
    python -m kfinetune predict runs/cli-lora "what a great day" --json
    python -m kfinetune export runs/cli-lora --merge
"""

from kfinetune import cli

run = "runs/cli-lora"
cli.main(
    [
        "train",
        "--method",
        "lora",
        "--rank",
        "8",
        "--save",
        "both",
        "--no-export",
        "--output-dir",
        run,
    ]
)
cli.main(["evaluate", run])
cli.main(["predict", run, "what a great day", "so sad", "--json"])
cli.main(["export", run, "--merge"])
# Repeat the run exactly from its config file, with another seed.
cli.main(
    [
        "train",
        "--config",
        f"{run}/config.toml",
        "--seed",
        "1",
        "--output-dir",
        f"{run}-seed1",
    ]
)
