"""Knowledge distillation on the bundled MiniLM and the binary tweets.

A 6-layer MiniLM teacher is fine-tuned on the labelled tweets; a 3-layer
student made of its pretrained layers 0, 2 and 4
(`kfinetune.presets.shrink`) is then trained twice from the same start:
on the labels alone, and by distillation from the teacher. With
`--unlabelled N`, a third student learns from N unlabelled tweets (other
tweets of the corpus, all three sentiments, test tweets removed) that the
teacher labels as it goes. One seed: a single run shows the setup, not a
significant difference (the test split's standard error is about a point).

python examples/distill_tweets.py [--labels 2000] [--test 1000]
    [--epochs 3] [--unlabelled 0] [--temperature 2.0] [--alpha 0.5]
"""

import argparse

import keras
import tensorflow as tf

import kfinetune as kft

parser = argparse.ArgumentParser()
parser.add_argument("--labels", type=int, default=2000)
parser.add_argument("--test", type=int, default=1000)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--unlabelled", type=int, default=0)
parser.add_argument("--temperature", type=float, default=2.0)
parser.add_argument("--alpha", type=float, default=0.5)
parser.add_argument("--learning-rate", type=float, default=5e-5)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

data = kft.data.tweet_sentiment(
    classes=2,
    seed=args.seed,
    train_size=args.labels,
    validation_size=0,
    test_size=args.test,
)

keras.utils.set_random_seed(args.seed)
teacher = kft.presets.text_classifier(num_classes=2, sequence_length=64)
# Students from the pretrained layers (and the same new head), taken before
# the teacher trains, so every student starts from the same weights.
students = {
    name: kft.presets.shrink(teacher, layers=[0, 2, 4])
    for name in ("labels only", "distilled", "distilled, unlabelled")
}


def optimizer():
    return keras.optimizers.AdamW(args.learning_rate)


def accuracy(model):
    report = kft.evaluation.evaluate_classifier(
        model, data.test, data.class_names
    )
    return report.accuracy


teacher.compile(
    optimizer=optimizer(),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
# The dataset reshuffles itself every epoch.
teacher.fit(data.train.batch(32), epochs=args.epochs, shuffle=False)
results = {"teacher (6 layers)": accuracy(teacher)}

baseline = students["labels only"]
baseline.compile(
    optimizer=optimizer(),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
baseline.fit(data.train.batch(32), epochs=args.epochs, shuffle=False)
results["student, labels only"] = accuracy(baseline)

distiller = kft.distillation.Distiller(
    teacher,
    students["distilled"],
    temperature=args.temperature,
    alpha=args.alpha,
)
distiller.compile(optimizer=optimizer(), metrics=["accuracy"])
distiller.fit(
    data.train.batch(32).map(distiller.preprocessor),
    epochs=args.epochs,
    shuffle=False,
)
results["student, distilled"] = accuracy(distiller.student)

if args.unlabelled:
    test_texts = set(data.splits["test"].texts)
    pool = kft.data.tweet_sentiment(
        classes=3,
        seed=args.seed + 1,
        train_size=args.unlabelled,
        validation_size=0,
        test_size=0,
    ).splits["train"]
    texts = [text for text in pool.texts if text not in test_texts]
    print(f"{len(texts)} unlabelled tweets")
    distiller = kft.distillation.Distiller(
        teacher,
        students["distilled, unlabelled"],
        temperature=args.temperature,
    )
    distiller.compile(optimizer=optimizer())
    # Batches of text only: the distiller trains on the teacher's soft
    # labels alone.
    unlabelled = (
        tf.data.Dataset.from_tensor_slices(texts)
        .shuffle(len(texts), seed=args.seed)
        .batch(32)
        .map(distiller.preprocessor)
    )
    distiller.fit(unlabelled, epochs=args.epochs, shuffle=False)
    results["student, distilled from unlabelled tweets"] = accuracy(
        distiller.student
    )

print(f"labelled tweets: {args.labels}, seed: {args.seed}")
for name, value in results.items():
    print(f"{name}: test accuracy {value:.3f}")
distiller.student.save("distilled_student.keras")
