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

train = data.train.batch(32)
epochs = 3
# LoRA takes a far higher learning rate than full fine-tuning's 5e-5: 2e-3,
# decayed linearly to 0, is the one measured to work here
# (docs/choosing-a-method.md).
schedule = kft.optimizers.schedules.WarmupLinearDecay(
    2e-3, warmup_steps=0, total_steps=epochs * len(train)
)
model.compile(
    optimizer=keras.optimizers.AdamW(schedule),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(
    train,
    validation_data=data.validation.batch(32),
    epochs=epochs,
    shuffle=False,
)
print(kft.evaluation.evaluate_classifier(model, data.test, data.class_names))

# Only the LoRA weights and the head: 352 KB instead of 91 MB.
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
