"""The command line's tagging and question answering tasks, run from
Python on files written from the bundled tweets.

No tagged corpus or SQuAD file is installed here, so this writes both from
real text: a CoNLL file whose words starting with `@` are MENTION entities
and with `#` HASHTAG entities (IOB2), and a SQuAD file whose questions ask
whom a tweet mentions. Then it trains a tagger with a CRF and a question
answerer with LoRA, and predicts with each.

python examples/cli_tag_and_qa.py

The same from a shell, with the files written:

    kfinetune train --task tag --train runs/cli-files/train.conll \\
        --test runs/cli-files/test.conll --crf --epochs 1 \\
        --output-dir runs/cli-tag
    kfinetune predict runs/cli-tag "thanks @united for nothing #fail"
    kfinetune train --task qa --train runs/cli-files/train.json \\
        --method lora --sequence-length 128 --epochs 1 \\
        --output-dir runs/cli-qa
"""

import json
import pathlib

import kfinetune as kft
from kfinetune import cli

files = pathlib.Path("runs/cli-files")
files.mkdir(parents=True, exist_ok=True)
data = kft.data.tweet_sentiment(classes=2, seed=0)


def mentions(tweet):
    return [word for word in tweet.split() if tag(word) == "B-MENTION"]


def texts(dataset, count):
    """The first `count` tweets that mention an account."""
    tweets = (text.decode() for text, _ in dataset.as_numpy_iterator())
    return [tweet for tweet in tweets if mentions(tweet)][:count]


def tag(word):
    if len(word) > 1 and word[0] in "@#":
        return "B-MENTION" if word[0] == "@" else "B-HASHTAG"
    return "O"


for split, dataset, count in (
    ("train", data.train, 600),
    ("test", data.test, 100),
):
    lines = []
    for tweet in texts(dataset, count):
        lines += [f"{word} {tag(word)}" for word in tweet.split()] + [""]
    (files / f"{split}.conll").write_text("\n".join(lines))

paragraphs = []
for n, tweet in enumerate(texts(data.train, 400)):
    mention = mentions(tweet)[0]
    paragraphs.append(
        {
            "context": tweet,
            "qas": [
                {
                    "id": f"q{n}",
                    "question": "Whom does this tweet mention first?",
                    "answers": [
                        {"text": mention, "answer_start": tweet.index(mention)}
                    ],
                }
            ],
        }
    )
(files / "train.json").write_text(
    json.dumps({"data": [{"paragraphs": paragraphs}]})
)

common = ["--epochs", "1", "--batch-size", "16"]
cli.main(
    ["train", "--task", "tag", "--train", str(files / "train.conll")]
    + ["--test", str(files / "test.conll"), "--crf", *common]
    + ["--output-dir", "runs/cli-tag"]
)
cli.main(["predict", "runs/cli-tag", "thanks @united for nothing #fail"])
cli.main(
    ["train", "--task", "qa", "--train", str(files / "train.json")]
    + ["--method", "lora", "--sequence-length", "128", *common]
    + ["--output-dir", "runs/cli-qa"]
)
cli.main(
    ["predict", "runs/cli-qa"]
    + ["Whom does this tweet mention first?\t@delta lost my bag again"]
)
