"""Full fine-tuning of the bundled MiniLM on the bundled tweets.

python examples/finetune_tweets.py
"""

import keras

import kfinetune as kft

data = kft.data.tweet_sentiment(classes=2, seed=0)
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
model.compile(
    optimizer=keras.optimizers.AdamW(5e-5),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(
    data.train.batch(32),
    validation_data=data.validation.batch(32),
    epochs=1,
    shuffle=False,  # the dataset reshuffles itself every epoch
)
report = kft.evaluation.evaluate_classifier(model, data.test, data.class_names)
print(report)

model.save("tweets.keras")
kft.export.export_text_classifier(
    model, "tweets_saved_model", class_names=data.class_names
)
