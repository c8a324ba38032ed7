"""Sentence pairs and multi-label texts from the command line, run from
Python on files written from the bundled tweets.

No pair or multi-label corpus is installed here, so this writes both from
real tweets: a JSON Lines file whose labels are the accounts a tweet
mentions among seven (a list: none, one or several), and a CSV file of
pairs whose second text is five words of a tweet, labelled "match" when
they come from the first text's tweet and "other" when from another
tweet (the model must compare the two texts). Then it trains a LoRA
multi-label classifier and a LoRA pair classifier, and predicts with each.

python examples/cli_pairs_and_multi_label.py

The same from a shell, with the files written:

    kfinetune train --train runs/cli-files/accounts.jsonl \\
        --test runs/cli-files/accounts-test.jsonl --label-column accounts \\
        --multi-label --method lora --epochs 4 --learning-rate 5e-3 \\
        --output-dir runs/cli-accounts
    kfinetune predict runs/cli-accounts "@united and @jetblue lost my bag"
    kfinetune train --train runs/cli-files/pairs.csv \\
        --test runs/cli-files/pairs-test.csv --text-column text,snippet \\
        --method lora --sequence-length 96 --epochs 2 \\
        --output-dir runs/cli-pairs
    printf 'the crew was great, thanks\\tcrew was great\\n' \\
        | kfinetune predict runs/cli-pairs
"""

import csv
import json
import pathlib
import random

import kfinetune as kft
from kfinetune import cli

ACCOUNTS = (
    "@united",
    "@usairways",
    "@southwestair",
    "@americanair",
    "@jetblue",
    "@virginamerica",
    "@apple",
)

files = pathlib.Path("runs/cli-files")
files.mkdir(parents=True, exist_ok=True)
data = kft.data.tweet_sentiment(classes=2, seed=0)
rng = random.Random(0)


def accounts(tweet):
    """The accounts of `ACCOUNTS` a tweet mentions, in that order."""
    words = {word.strip(".,:!?").lower() for word in tweet.split()}
    return [account for account in ACCOUNTS if account in words]


def snippet(tweet):
    """Five consecutive words of `tweet` (all of it when shorter)."""
    words = tweet.split()
    start = rng.randrange(max(1, len(words) - 4))
    return " ".join(words[start : start + 5])


for split, name, count in (("train", "", 800), ("test", "-test", 200)):
    tweets = list(data.splits[split].texts[:count])
    with open(files / f"accounts{name}.jsonl", "w") as f:
        for tweet in tweets:
            f.write(json.dumps({"text": tweet, "accounts": accounts(tweet)}))
            f.write("\n")
    with open(files / f"pairs{name}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "snippet", "label"])
        for i, tweet in enumerate(tweets):
            # Every other pair takes its snippet from the next tweet.
            other = i % 2
            source = tweets[(i + 1) % count] if other else tweet
            writer.writerow(
                [tweet, snippet(source), "other" if other else "match"]
            )

common = ["--method", "lora", "--batch-size", "16"]
# The sigmoids first learn how rare each account is (2 epochs at LoRA's
# 2e-3 predicted no account at all); 4 epochs at 5e-3 learn which.
cli.main(
    ["train", "--train", str(files / "accounts.jsonl")]
    + ["--test", str(files / "accounts-test.jsonl")]
    + ["--label-column", "accounts", "--multi-label", *common]
    + ["--epochs", "4", "--learning-rate", "5e-3"]
    + ["--output-dir", "runs/cli-accounts"]
)
cli.main(["predict", "runs/cli-accounts", "@united and @jetblue lost my bag"])
cli.main(
    ["train", "--train", str(files / "pairs.csv")]
    + ["--test", str(files / "pairs-test.csv")]
    + ["--text-column", "text,snippet", "--sequence-length", "96", *common]
    + ["--epochs", "2", "--output-dir", "runs/cli-pairs"]
)
cli.main(
    ["predict", "runs/cli-pairs"]
    + ["the crew was great, thanks\tcrew was great"]
    + ["the crew was great, thanks\tlost my bag again"]
)
