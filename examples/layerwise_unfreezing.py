"""A plain Keras fine-tuning script, plus kfinetune's layer-wise optimizer
and gradual unfreezing: the lines marked `# kfinetune` are all that change.

    python examples/layerwise_unfreezing.py
"""

import keras

import kfinetune as kft

data = kft.data.tweet_sentiment(classes=2, seed=0)
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
train = data.train.batch(32)
epochs = 2

# The rates measured for BERT-family models: 1e-4 for the head, 0.9 times
# that per group below, every group training by 30 % of the run
# (kft.recipes.fine_tune's defaults; docs/training-control.md).
steps = epochs * int(train.cardinality())
groups = kft.optimizers.layer_groups(model)  # kfinetune
schedule = kft.optimizers.schedules.SlantedTriangular(  # kfinetune
    1e-4, total_steps=steps
)
optimizer = kft.optimizers.LayerwiseOptimizer(  # kfinetune
    keras.optimizers.AdamW(schedule), groups, decay=0.9
)
unfreezing = kft.callbacks.GradualUnfreezing(  # kfinetune
    groups, every=max(1, int(0.3 * steps) // len(groups)), unit="step"
)

model.compile(
    optimizer=optimizer,
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(
    train,
    validation_data=data.validation.batch(32),
    epochs=epochs,
    shuffle=False,
    callbacks=[unfreezing],
)
print(model.evaluate(data.test.batch(32), return_dict=True))
