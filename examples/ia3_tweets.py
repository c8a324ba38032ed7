"""IA3 on the bundled MiniLM: rescale keys, values and the feed-forward
activation with 13,824 learned weights, then fold them into the kernels.

    python examples/ia3_tweets.py
"""

import keras
import numpy as np

import kfinetune as kft

EPOCHS = 3
data = kft.data.tweet_sentiment(classes=2, seed=0)
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
model = kft.peft.apply(model, kft.peft.IA3Config())
kft.peft.summary(model)

train = data.train.batch(32)
# The learning rate was chosen on the validation split (docs/ia3.md).
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

# Fold the vectors into the kernels: the base model's inference cost.
texts = np.array(["what a great day", "this is awful"])
before = model.predict(texts)
kft.peft.merge(model)
np.testing.assert_allclose(model.predict(texts), before, atol=1e-4)
kft.peft.save(model, "tweets_ia3.adapter.h5")
