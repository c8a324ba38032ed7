"""LoRA on the bundled MiniLM: train 0.33 % of the weights, save only them,
load them into a fresh model, merge for inference.

    python examples/peft_tweets.py
"""

import keras
import numpy as np

import kfinetune as kft

data = kft.data.tweet_sentiment(classes=2, seed=0)
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
model = kft.peft.apply(model, kft.peft.LoRAConfig(rank=8, alpha=16))
kft.peft.summary(model)

model.compile(
    optimizer=keras.optimizers.AdamW(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(
    data.train.batch(32),
    validation_data=data.validation.batch(32),
    epochs=3,
    shuffle=False,
)
print(kft.evaluation.evaluate_classifier(model, data.test, data.class_names))

# Only the LoRA weights and the head: about 300 KB instead of 90 MB.
kft.peft.save(model, "tweets.adapter.h5")
fresh = kft.presets.text_classifier(num_classes=2, sequence_length=64)
restored = kft.peft.load(fresh, "tweets.adapter.h5")

texts = np.array(["what a great day", "this is awful"])
np.testing.assert_allclose(
    restored.predict(texts), model.predict(texts), atol=1e-5
)

# Fold LoRA into the kernels: inference at the base model's cost.
kft.peft.merge(restored)
print(restored.predict(texts))
restored.save("tweets_lora.keras")  # reloads merged, with its adapters
