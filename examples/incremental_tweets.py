"""Class-incremental fine-tuning of the bundled MiniLM on the tweets.

Phase 1 trains a negative / positive classifier with a length curriculum
(short tweets first). Its head then grows to a third class, neutral, and
phase 2 trains on new data that holds only neutral tweets: once as plain
continued fine-tuning, once with replay of phase-1 tweets and an EWC
penalty. The old task's accuracy (binary test tweets, old classes' logits
only) and the 3-way accuracy (binary test tweets plus neutral ones) show
what each forgets. One seed: `python -m benchmarks.incremental` measures
over three.

python examples/incremental_tweets.py [--train 2000] [--new 1000]
    [--fisher 200] [--seed 0]
"""

import argparse

import keras
import numpy as np

import kfinetune as kft

parser = argparse.ArgumentParser()
parser.add_argument("--train", type=int, default=2000)
parser.add_argument("--new", type=int, default=1000)
parser.add_argument("--fisher", type=int, default=200)
parser.add_argument("--ewc-strength", type=float, default=None)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

CLASS_NAMES = ("negative", "positive", "neutral")
keras.utils.set_random_seed(args.seed)
binary = kft.data.tweet_sentiment(
    classes=2,
    seed=args.seed,
    train_size=args.train,
    validation_size=0,
    test_size=1000,
)
# Neutral tweets never occur in the binary data: every split is disjoint.
pool = kft.data.tweet_sentiment(
    classes=3,
    seed=args.seed,
    train_size=4 * args.new,
    validation_size=0,
    test_size=1700,
)


def neutral(split, size):
    texts = split.texts[split.labels == split.class_names.index("neutral")]
    texts = texts[:size]
    return kft.data.LabelledTexts(texts, np.full(len(texts), 2), CLASS_NAMES)


def relabelled(split):
    return kft.data.LabelledTexts(split.texts, split.labels, CLASS_NAMES)


old_train = relabelled(binary.splits["train"])
old_test = relabelled(binary.splits["test"])
new_train = neutral(pool.splits["train"], args.new)
new_test = neutral(pool.splits["test"], 500)
three_way_test = kft.data.LabelledTexts(
    np.concatenate([old_test.texts, new_test.texts]),
    np.concatenate([old_test.labels, new_test.labels]),
    CLASS_NAMES,
)


def compile_for(model, dataset):
    steps = int(dataset.cardinality())
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.PolynomialDecay(5e-5, steps, 0.0)
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )


def inputs(x, y):
    return x


def old_task_accuracy(model):
    test = old_test.as_dataset(shuffle=False).batch(64)
    logits = model.predict(test.map(inputs), verbose=0)
    return float(np.mean(np.argmax(logits[:, :2], -1) == old_test.labels))


def three_way_accuracy(model):
    test = three_way_test.as_dataset(shuffle=False)
    return kft.evaluation.evaluate_classifier(model, test, CLASS_NAMES).accuracy


# Phase 1: the binary task, short tweets first ("baby steps": the shortest
# third, then two thirds, then all).
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
staged = kft.data.curriculum(binary.train, "length", stages=3, seed=args.seed)
train = staged.batch(32)
compile_for(model, train)
model.fit(train, epochs=1, shuffle=False, verbose=2)
print(f"phase 1: old-task accuracy {old_task_accuracy(model):.3f}")

new = new_train.as_dataset(seed=args.seed)
old = old_train.as_dataset(seed=args.seed)

# Phase 2, plain: the new class's data only.
plain = kft.incremental.grow_head(model, 3)
train = new.batch(32)
compile_for(plain, train)
plain.fit(train, epochs=1, shuffle=False, verbose=2)

# Phase 2 against forgetting: half of the data replayed from phase 1, and
# EWC on the weights the old task depends on.
protected = kft.incremental.grow_head(model, 3)
old_fisher = kft.incremental.fisher(protected, old.take(args.fisher).batch(1))
mean_fisher = np.mean(np.concatenate([f.ravel() for f in old_fisher.values()]))
# As strong on average as L2-SP with strength 1, unless given.
strength = args.ewc_strength or float(1.0 / mean_fisher)
kft.incremental.anchor(protected, strength, "ewc", fisher=old_fisher)
train = kft.data.replay(new, old, ratio=0.5, seed=args.seed).batch(32)
compile_for(protected, train)
protected.fit(train, epochs=1, shuffle=False, verbose=2)
kft.incremental.release(protected)

for name, grown in (("plain", plain), ("replay + EWC", protected)):
    print(
        f"{name:>13}: old-task accuracy {old_task_accuracy(grown):.3f}, "
        f"3-way accuracy {three_way_accuracy(grown):.3f}"
    )
