"""Prompt tuning on the bundled MiniLM: 20 soft-prompt vectors after [CLS],
started from the embeddings of a text, and nothing else trained but the
head.

    python examples/prompt_tweets.py
"""

import keras
import numpy as np

import kfinetune as kft

EPOCHS = 3
data = kft.data.tweet_sentiment(classes=2, seed=0)
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
config = kft.peft.PromptConfig(
    length=20, init="text", text="is the sentiment of this tweet positive"
)
model = kft.peft.apply(model, config)  # tokenized by the model's preprocessor
kft.peft.summary(model)

train = data.train.batch(32)
# Prompts take a much larger learning rate than weights do
# (docs/prompt-tuning.md).
schedule = keras.optimizers.schedules.PolynomialDecay(
    3e-2, decay_steps=EPOCHS * int(train.cardinality()), end_learning_rate=0.0
)
model.compile(
    optimizer=keras.optimizers.AdamW(schedule),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(train, validation_data=data.validation.batch(32), epochs=EPOCHS)
print(kft.evaluation.evaluate_classifier(model, data.test, data.class_names))

# About 35 KB: the prompts and the head.
kft.peft.save(model, "tweets_prompt.adapter.h5")
fresh = kft.presets.text_classifier(num_classes=2, sequence_length=64)
restored = kft.peft.load(fresh, "tweets_prompt.adapter.h5")
texts = np.array(["what a great day", "this is awful"])
np.testing.assert_allclose(
    restored.predict(texts), model.predict(texts), atol=1e-5
)
