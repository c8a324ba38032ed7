"""Few-shot fine-tuning of the bundled MiniLM on 16 tweets per class, with
and without augmentation: EDA edits drawn from MiniLM's own embedding
neighbours, then mixup on the pooled output. One seed: a single run shows
the setup, not a significant difference (see `benchmarks/augmentation.py`
for means over seeds).

python examples/augment_tweets.py [--k 16] [--epochs 20] [--test 1000]
"""

import argparse

import keras

import kfinetune as kft

parser = argparse.ArgumentParser()
parser.add_argument("--k", type=int, default=16)
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--test", type=int, default=1000)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

data = kft.data.tweet_sentiment(
    classes=2, seed=args.seed, validation_size=0, test_size=args.test
)
few = kft.data.few_shot(data, k=args.k, seed=args.seed)
preprocessor = kft.presets.text_classifier_preprocessor(sequence_length=64)
test = few.test.batch(64).map(preprocessor)


def classifier():
    # The same head initialisation for every arm.
    keras.utils.set_random_seed(args.seed)
    model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
    # The preprocessor runs in the tf.data pipeline instead (token edits
    # and mixup need the token ids there).
    model.preprocessor = None
    return model


def train_and_test(model, train, loss=None):
    model.compile(
        optimizer=keras.optimizers.AdamW(5e-5),
        loss=loss
        or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(train, epochs=args.epochs, shuffle=False, verbose=0)
    report = kft.evaluation.evaluate_classifier(model, test, data.class_names)
    return report.accuracy


texts = few.splits["train"]
plain = few.train.batch(16).map(preprocessor)
results = {"no augmentation": train_and_test(classifier(), plain)}

# Synonyms: nearest neighbours in MiniLM's token embeddings, for the words
# of the training tweets only (fast).
model = classifier()
words = {word for text in texts.texts for word in text.lower().split()}
synonyms = kft.data.augment.embedding_synonyms(
    model.backbone, preprocessor.tokenizer, k=5, words=words
)
for word in ("good", "happy", "love", "bad"):
    if word in synonyms:
        print(f"{word}: {', '.join(synonyms[word])}")

# Each epoch: the originals plus one fresh augmented copy of each.
augmented = few.train.map(
    kft.data.augment.synonym_replacement(synonyms, rate=0.1, seed=args.seed)
).map(kft.data.augment.random_swap(rate=0.1, seed=args.seed))
for text, _ in augmented.take(3).as_numpy_iterator():
    print("augmented:", text.decode())
eda = (
    few.train.concatenate(augmented)
    .shuffle(2 * len(texts), seed=args.seed)
    .batch(16)
    .map(preprocessor)
)
results["synonyms + swap"] = train_and_test(model, eda)

# Mixup on the pooled output, in front of the classifier's own head.
base = classifier()
backbone = base.backbone
mixup = kft.layers.Mixup(alpha=0.2, seed=args.seed, name="mixup")
pooled = backbone(backbone.input)["pooled_output"]
logits = base.output_dense(base.output_dropout(mixup(pooled)))
mixed = keras.Model(backbone.input, logits)
loss = kft.layers.MixupLoss(
    keras.losses.SparseCategoricalCrossentropy(from_logits=True), mixup
)
results["mixup"] = train_and_test(mixed, plain, loss)

for name, accuracy in results.items():
    print(f"{name}: test accuracy {accuracy:.3f}")
