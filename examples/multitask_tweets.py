"""Multi-task fine-tuning of the bundled MiniLM on two tasks from the
bundled tweets, with one shared backbone.

- "sentiment": negative / neutral / positive, the corpus's own labels.
- "airline": which of six US airlines a tweet is addressed to, read from its
  first @handle. Every @handle is removed from the inputs of both tasks, so
  the model has to tell the airline from the rest of the text (airport
  codes, route names, the way customers complain). Tweets without one of
  the six handles are left out of this task.

python examples/multitask_tweets.py
"""

import re

import keras
import keras_hub
import numpy as np
import tensorflow as tf

import kfinetune as kft

AIRLINES = (
    "united",
    "usairways",
    "americanair",
    "southwestair",
    "jetblue",
    "virginamerica",
)
MENTION = re.compile(r"@(\w+)")


def airline(text):
    handles = [h.lower() for h in MENTION.findall(text)]
    known = [h for h in handles if h in AIRLINES]
    return AIRLINES.index(known[0]) if known else -1


def without_mentions(text):
    return " ".join(MENTION.sub(" ", text).split())


def task_datasets(split):
    texts, labels = zip(
        *((x.decode(), int(y)) for x, y in split.as_numpy_iterator()),
        strict=True,
    )
    inputs = [without_mentions(t) for t in texts]
    carriers = np.array([airline(t) for t in texts])
    known = np.flatnonzero(carriers >= 0)
    sentiment = tf.data.Dataset.from_tensor_slices(
        (inputs, np.array(labels, "int32"))
    )
    carrier = tf.data.Dataset.from_tensor_slices(
        ([inputs[i] for i in known], carriers[known].astype("int32"))
    )
    return {"sentiment": sentiment, "airline": carrier}


data = kft.data.tweet_sentiment(
    classes=3, seed=0, train_size=800, validation_size=0, test_size=400
)
train = task_datasets(data.train)
test = task_datasets(data.test)
print({task: int(ds.cardinality()) for task, ds in train.items()})

preprocessor = kft.presets.text_classifier_preprocessor(sequence_length=64)
backbone = keras_hub.models.Backbone.from_preset(str(kft.presets.minilm_path()))
model = kft.multitask.build(
    backbone, heads={"sentiment": 3, "airline": len(AIRLINES)}
)
sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(
    optimizer=keras.optimizers.AdamW(1e-4),
    loss={"sentiment": sparse, "airline": sparse},
    # The airline task is the harder one and has fewer examples.
    loss_weights={"sentiment": 1.0, "airline": 2.0},
    # `weighted_metrics`, not `metrics`: Keras applies sample weights only
    # to these, so each task's accuracy counts its own tweets only.
    weighted_metrics={"sentiment": ["accuracy"], "airline": ["accuracy"]},
)


def preprocess(x, y, sample_weight):
    return preprocessor(x), y, sample_weight


mixed = kft.data.mix(train, sampling=2.0, seed=0).shuffle(2000, seed=0)
kft.multitask.check(model, mixed)
model.fit(mixed.batch(32).map(preprocess), epochs=3, verbose=2)


def preprocess_one(x, y):
    return preprocessor(x), y


results = kft.multitask.evaluate(
    model,
    {task: ds.map(preprocess_one) for task, ds in test.items()},
    class_names={"sentiment": data.class_names, "airline": AIRLINES},
)
for task, metrics in results.items():
    print(
        f"{task}: accuracy {metrics['accuracy']:.3f}, "
        f"macro F1 {metrics['macro_f1']:.3f} "
        f"({int(test[task].cardinality())} test tweets)"
    )
majority = np.bincount([y for _, y in test["airline"].as_numpy_iterator()])
print(f"airline majority-class accuracy: {majority.max() / majority.sum():.3f}")
