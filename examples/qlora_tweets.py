"""LoRA over an int8-quantized MiniLM (QLoRA-style), with rematerialised
transformer blocks: the backbone's weights take a quarter of their float32
memory, the LoRA factors and the head train in float, and the blocks'
activations are recomputed in the backward pass.

    python examples/qlora_tweets.py
"""

import keras

import kfinetune as kft

data = kft.data.tweet_sentiment(classes=2, seed=0)
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
# Quantize first (Keras's own int8), the backbone only: the new head
# trains in float. LoRA then wraps the int8 query and value projections.
model.backbone.quantize("int8")
model = kft.peft.apply(model, kft.peft.LoRAConfig(rank=8, alpha=16))
kft.peft.remat(model)
kft.peft.summary(model)

train = data.train.batch(32)
epochs = 3
schedule = kft.optimizers.schedules.WarmupLinearDecay(
    2e-3, warmup_steps=0, total_steps=epochs * len(train)
)
model.compile(
    optimizer=keras.optimizers.AdamW(schedule),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    jit_compile=True,
)
model.fit(
    train,
    validation_data=data.validation.batch(32),
    epochs=epochs,
    shuffle=False,
)
print(kft.evaluation.evaluate_classifier(model, data.test, data.class_names))

# The adapter file loads into any MiniLM quantized the same way.
kft.peft.save(model, "tweets.qlora.h5")
fresh = kft.presets.text_classifier(num_classes=2, sequence_length=64)
fresh.backbone.quantize("int8")
fresh = kft.peft.load(fresh, "tweets.qlora.h5")
print(fresh.predict(["what a great day", "this is awful"], verbose=0))
