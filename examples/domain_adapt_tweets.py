"""Domain adaptation of the bundled MiniLM on unlabelled tweets, then
fine-tuning on 100 labelled tweets, against the same fine-tuning without
adaptation. One seed: a single run shows the setup, not a significant
difference (the 1,000-tweet test split has a standard error of about
1.2 points at this accuracy).

python examples/domain_adapt_tweets.py [--unlabelled 3200] [--labels 100]
    [--mlm-learning-rate 2e-5]
"""

import argparse

import keras

import kfinetune as kft

parser = argparse.ArgumentParser()
parser.add_argument("--unlabelled", type=int, default=3200)
parser.add_argument("--labels", type=int, default=100)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--mlm-learning-rate", type=float, default=2e-5)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

data = kft.data.tweet_sentiment(
    classes=2,
    seed=args.seed,
    train_size=args.labels,
    validation_size=0,
    test_size=1000,
)
# Unlabelled domain text: other tweets of the same corpus, all three
# sentiments, their labels dropped, and every tweet of the labelled test
# split removed so that the MLM never reads a test text.
test_texts = set(data.splits["test"].texts)
pool = kft.data.tweet_sentiment(
    classes=3,
    seed=args.seed + 1,
    train_size=args.unlabelled,
    validation_size=0,
    test_size=0,
).splits["train"]
unlabelled = [text for text in pool.texts if text not in test_texts]
print(
    f"{len(unlabelled)} unlabelled tweets ({len(pool) - len(unlabelled)} "
    "test tweets removed)"
)


def fine_tune_and_test(model):
    keras.utils.set_random_seed(args.seed)
    model.compile(
        optimizer=keras.optimizers.AdamW(5e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        data.train.batch(16),
        epochs=args.epochs,
        shuffle=False,  # the dataset reshuffles itself every epoch
        verbose=0,
    )
    report = kft.evaluation.evaluate_classifier(
        model, data.test, data.class_names
    )
    return report.accuracy


def classifier():
    # The same classifier head initialisation for both arms.
    keras.utils.set_random_seed(args.seed)
    return kft.presets.text_classifier(num_classes=2, sequence_length=64)


baseline = fine_tune_and_test(classifier())

adapted = classifier()
kft.recipes.domain_adapt(
    adapted,
    unlabelled,
    epochs=1,
    batch_size=32,
    learning_rate=args.mlm_learning_rate,
    seed=args.seed,
    verbose=2,
)
adapted_accuracy = fine_tune_and_test(adapted)

print(f"labels: {args.labels}, seed: {args.seed}")
print(f"without adaptation: test accuracy {baseline:.3f}")
print(f"with MLM adaptation: test accuracy {adapted_accuracy:.3f}")
print(f"difference: {adapted_accuracy - baseline:+.3f}")
