"""Extractive question answering with the bundled MiniLM.

No SQuAD data ships with any installed package, so
`kft.data.tweet_questions` builds a small SQuAD v2.0-style task from real
text, the bundled tweets: each context is three tweets that each mention
an account (`@...`), each introduced by a first name ("Maya wrote: ..."),
and each question asks whom one of the people wrote to. The answer is the
first account mentioned in that person's tweet; a question about a name
that is not in the context is unanswerable. Your own SQuAD JSON files
read with `kft.data.from_squad` give the same `QAExample`s.

    python examples/question_answering.py
"""

import keras
import keras_hub

import kfinetune as kft

SEQUENCE_LENGTH = 128

splits = kft.data.tweet_questions(
    seed=0, train_size=800, validation_size=0, test_size=100
)
train, test = splits["train"], splits["test"]

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
print(kft.qa.squad_scores_by_kind(answers, test))
