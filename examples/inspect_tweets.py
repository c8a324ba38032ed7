"""Looks inside a briefly fine-tuned MiniLM: training curves, confusion
matrix, attention heatmaps and word attributions (PNG and HTML).

python examples/inspect_tweets.py
"""

import pathlib

import keras

import kfinetune as kft

out = pathlib.Path("inspect_tweets")
data = kft.data.tweet_sentiment(classes=2, seed=0, train_size=400)
model = kft.presets.text_classifier(num_classes=2, sequence_length=48)
model = kft.peft.apply(model, kft.peft.LoRAConfig(rank=8, alpha=16))
model.compile(
    optimizer=keras.optimizers.AdamW(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(
    data.train.batch(32),
    validation_data=data.validation.batch(32),
    epochs=2,
    shuffle=False,  # the dataset reshuffles itself every epoch
    callbacks=[kft.callbacks.TrainingCurves(out / "curves.png")],
)
report = kft.evaluation.evaluate_classifier(model, data.test, data.class_names)
print(report)
report.plot_confusion_matrix(out / "confusion.png")

texts = ["what a lovely morning", "worst airline ever, cancelled again"]
maps = kft.inspect.attention(model, texts)
print(maps[0].tokens, maps[0].weights.shape)  # (layers, heads, len, len)
kft.inspect.plot_attention(maps[0], out / "attention.png", head="all")

found = kft.inspect.attributions(model, texts)
for item in found:
    print(data.class_names[item.target], item.words)
kft.inspect.plot_attributions(
    found,
    out / "attributions.png",
    [data.class_names[item.target] for item in found],
)
(out / "attributions.html").write_text(
    "\n".join(item.to_html(data.class_names[item.target]) for item in found)
)
