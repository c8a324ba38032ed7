"""Generates the pictures of the "Looking inside a model" guide.

Fine-tunes the bundled MiniLM briefly (2 epochs over 400 tweets, a few
minutes on a laptop CPU), then writes to `docs/img/`:

- `training_curves.png`: loss, accuracy and per-group learning rates
  (`kfinetune.callbacks.TrainingCurves`);
- `confusion_matrix.png`: the test-set confusion matrix;
- `attention.png` and `attention_heads.png`: last-layer attention;
- `attributions.png`: integrated-gradient attributions of three tweets.

python docs/make_figures.py
"""

import pathlib

import keras

import kfinetune as kft
from kfinetune import inspect

OUT = pathlib.Path(__file__).parent / "img"
TEXTS = [
    "what a lovely sunny morning, i love it",
    "my flight got cancelled again, worst airline ever",
    "the new phone is not bad at all",
]


def main():
    keras.utils.set_random_seed(0)
    data = kft.data.tweet_sentiment(
        classes=2, seed=0, train_size=400, validation_size=100, test_size=200
    )
    model = kft.presets.text_classifier(num_classes=2, sequence_length=48)
    groups = kft.optimizers.layer_groups(model)
    model.compile(
        optimizer=kft.optimizers.LayerwiseOptimizer(
            keras.optimizers.AdamW(1e-4), groups, decay=0.7
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        data.train.batch(32),
        validation_data=data.validation.batch(32),
        epochs=2,
        shuffle=False,
        callbacks=[kft.callbacks.TrainingCurves(OUT / "training_curves.png")],
    )
    report = kft.evaluation.evaluate_classifier(
        model, data.test, data.class_names
    )
    print(report)
    report.plot_confusion_matrix(OUT / "confusion_matrix.png")

    maps = inspect.attention(model, TEXTS[:1])
    inspect.plot_attention(maps[0], OUT / "attention.png")
    inspect.plot_attention(maps[0], OUT / "attention_heads.png", head="all")

    found = inspect.attributions(model, TEXTS, steps=32)
    names = [data.class_names[item.target] for item in found]
    inspect.plot_attributions(found, OUT / "attributions.png", names)
    for item in found:
        print(item.words, f"completeness error {item.delta:+.4f}")


if __name__ == "__main__":
    main()
