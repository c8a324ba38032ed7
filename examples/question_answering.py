"""Extractive question answering with the bundled MiniLM.

No SQuAD data ships with any installed package, so this builds a small
SQuAD v2.0-format task from real text, the bundled tweets: each context is
three tweets that each mention an account (`@...`), each introduced by a
first name ("Maya wrote: ..."), and each question asks whom one of the
people wrote to. The answer is the first account mentioned in that
person's tweet; a question about a name that is not in the context is
unanswerable. The files are written in SQuAD JSON and read back with
`kft.data.from_squad`.

    python examples/question_answering.py
"""

import json
import pathlib
import re
import tempfile

import keras
import keras_hub
import numpy as np

import kfinetune as kft

SEQUENCE_LENGTH = 128
NAMES = (
    "Maya Omar Lena Tariq Ines Jonas Priya Mateo Aiko Noor Felix Zara"
).split()
MENTION = re.compile(r"@\w+")


def tweets(dataset):
    texts = (text.decode() for text, _ in dataset.as_numpy_iterator())
    return [" ".join(t.split()) for t in texts if MENTION.search(t)]


def squad_document(texts, size, rng):
    """`size` questions over contexts of three tweets, a fifth unanswerable."""
    paragraphs = []
    for n in range(size):
        picked = rng.choice(len(texts), 3, replace=False)
        names = rng.choice(NAMES, 4, replace=False)
        context, answers = "", []
        for name, index in zip(names[:3], picked, strict=True):
            context += f"{name} wrote: "
            mention = MENTION.search(texts[index])
            answers.append(
                {
                    "text": mention[0],
                    "answer_start": len(context) + mention.start(),
                }
            )
            context += texts[index] + " "
        impossible = n % 5 == 0
        asked = 3 if impossible else int(rng.integers(3))
        paragraphs.append(
            {
                "context": context.strip(),
                "qas": [
                    {
                        "id": f"q{n}",
                        "question": f"Whom did {names[asked]} write to?",
                        "answers": [] if impossible else [answers[asked]],
                        "is_impossible": impossible,
                    }
                ],
            }
        )
    return {
        "version": "v2.0",
        "data": [{"title": "tweets", "paragraphs": paragraphs}],
    }


data = kft.data.tweet_sentiment(classes=2, seed=0)
rng = np.random.default_rng(0)
folder = pathlib.Path(tempfile.mkdtemp())
for split, dataset, size in (
    ("train", data.train, 800),
    ("test", data.test, 100),
):
    document = squad_document(tweets(dataset), size, rng)
    (folder / f"{split}.json").write_text(json.dumps(document))
train = kft.data.from_squad(folder / "train.json")
test = kft.data.from_squad(folder / "test.json")

path = str(kft.presets.minilm_path())
tokenizer = keras_hub.models.BertTokenizer.from_preset(path)
train_features = kft.qa.prepare_features(
    train, tokenizer, SEQUENCE_LENGTH, document_stride=64
)
test_features = kft.qa.prepare_features(
    test, tokenizer, SEQUENCE_LENGTH, document_stride=64
)
print(
    f"{len(train)} train questions -> {len(train_features.token_ids)} "
    f"windows; {len(test)} test questions -> "
    f"{len(test_features.token_ids)} windows"
)

model = kft.presets.question_answerer(sequence_length=SEQUENCE_LENGTH)
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(
    optimizer=keras.optimizers.AdamW(2e-4),
    loss={"start": loss, "end": loss},
)
model.fit(train_features.dataset().shuffle(4096, seed=0).batch(16), epochs=1)

out = model.predict(test_features.inputs(), batch_size=32)
answers = kft.qa.postprocess(
    test_features,
    out["start"],
    out["end"],
    max_answer_length=10,
    allow_no_answer=True,
)
for example in test[:3]:
    print(
        f"{example.question} -> {answers[example.id]!r} "
        f"(gold {example.answers})"
    )
print(kft.qa.squad_scores(answers, test))
