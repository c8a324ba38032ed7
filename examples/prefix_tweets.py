"""Prefix tuning on the bundled MiniLM: learned keys and values in every
attention layer, trained through an MLP that is folded away afterwards.

    python examples/prefix_tweets.py
"""

import keras
import numpy as np

import kfinetune as kft

EPOCHS = 3
LEARNING_RATE = 1e-3
data = kft.data.tweet_sentiment(classes=2, seed=0)
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
model = kft.peft.apply(model, kft.peft.PrefixConfig(length=16))
kft.peft.summary(model)

train = data.train.batch(32)
# The learning rate was chosen on the validation split (docs/prefix-tuning.md).
schedule = keras.optimizers.schedules.PolynomialDecay(
    LEARNING_RATE,
    decay_steps=EPOCHS * int(train.cardinality()),
    end_learning_rate=0.0,
)
model.compile(
    optimizer=keras.optimizers.AdamW(schedule),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(train, validation_data=data.validation.batch(32), epochs=EPOCHS)
print(kft.evaluation.evaluate_classifier(model, data.test, data.class_names))

# Fold the reparameterisation MLP into plain prefixes, then save and export.
texts = np.array(["what a great day", "this is awful"])
before = model.predict(texts)
kft.peft.merge(model)
np.testing.assert_allclose(model.predict(texts), before, atol=1e-4)
kft.peft.summary(model)
model.save("tweets_prefix.keras")  # reloads folded, with its prefixes
kft.peft.save(model, "tweets_prefix.adapter.h5")
