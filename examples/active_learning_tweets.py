"""Active learning with the bundled MiniLM on the bundled tweets: a
simulated annotation loop for random sampling and one other strategy,
their learning curves (labels → test accuracy) and a PNG plot. One seed:
a single run shows the setup, not a significant difference (see
`python -m benchmarks.active_learning` for means over seeds).

python examples/active_learning_tweets.py [--strategy entropy]
    [--pool 2000] [--test 1000] [--budgets 50 100 200 400] [--epochs 10]
    [--plot active_learning.png]
"""

import argparse

import keras

import kfinetune as kft

parser = argparse.ArgumentParser()
parser.add_argument(
    "--strategy",
    default="entropy",
    choices=[s for s in kft.active.STRATEGIES if s != "random"],
)
parser.add_argument("--pool", type=int, default=2000)
parser.add_argument("--test", type=int, default=1000)
parser.add_argument(
    "--budgets", nargs="+", type=int, default=[50, 100, 200, 400]
)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--plot", default="active_learning.png")
args = parser.parse_args()

data = kft.data.tweet_sentiment(
    classes=2,
    seed=args.seed,
    train_size=args.pool,
    validation_size=0,
    test_size=args.test,
)
print(data)


def build():
    # Dropout stays at keras-hub's 0.1: BALD's Monte-Carlo passes need it.
    model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
    model.compile(
        optimizer=keras.optimizers.AdamW(5e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


curves = [
    kft.active.simulate(
        build,
        data.splits["train"],
        data.splits["test"],
        budgets=args.budgets,
        strategy=strategy,
        epochs=args.epochs,
        passes=5 if strategy == "bald" else None,
        seed=args.seed,
    )
    for strategy in ("random", args.strategy)
]
kft.active.save_learning_curves(args.plot, curves)

print(f"\n{'labels':>6}  " + "  ".join(f"{c.strategy:>9}" for c in curves))
for position, budget in enumerate(args.budgets):
    print(
        f"{budget:>6}  "
        + "  ".join(f"{c.accuracy[position]:>9.3f}" for c in curves)
    )
print(f"wrote {args.plot}")
