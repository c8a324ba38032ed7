"""Tagging @mentions and #hashtags in the bundled tweets with a CRF head.

No tagged corpus is installed here, so this builds an honest toy task from
real text: every whitespace-separated word of a tweet that starts with `@`
is a MENTION entity, every word that starts with `#` a HASHTAG, everything
else `O` (BIO scheme). The rule is visible in the text, so the task is easy;
the point is the whole pipeline: word tags aligned to word pieces
(`kfinetune.data.align_tags`), `kfinetune.presets.token_classifier` with a
word-level `CRF` (IOB2's impossible transitions forbidden) trained by
`model.fit`, its negative log-likelihood as `val_loss`, Viterbi tags from
`model.predict` mapped back to words, and entity F1.

python examples/crf_tagging.py
"""

import keras
import keras_hub

import kfinetune as kft

TAGS = ("O", "B-HASHTAG", "B-MENTION", "I-HASHTAG", "I-MENTION")
SEQUENCE_LENGTH = 64


def word_tag(word):
    if len(word) > 1 and word[0] == "@":
        return "B-MENTION"
    if len(word) > 1 and word[0] == "#":
        return "B-HASHTAG"
    return "O"


def tagged(dataset):
    sentences = [text.decode().split() for text, _ in dataset]
    sentences = [words for words in sentences if words]
    return sentences, [[word_tag(w) for w in words] for words in sentences]


keras.utils.set_random_seed(0)
data = kft.data.tweet_sentiment(
    classes=3, seed=0, train_size=600, validation_size=10, test_size=300
)
preset = str(kft.presets.minilm_path())
tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
train = kft.data.align_tags(
    *tagged(data.train.as_numpy_iterator()), tokenizer, TAGS, SEQUENCE_LENGTH
)
test_words, test_tags = tagged(data.test.as_numpy_iterator())
test = kft.data.align_tags(
    test_words, test_tags, tokenizer, TAGS, SEQUENCE_LENGTH
)

model = kft.presets.token_classifier(
    len(TAGS),
    sequence_length=SEQUENCE_LENGTH,
    crf=True,
    preset=preset,
    constraints=kft.data.tag_constraints(TAGS, "IOB2"),
)
model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=kft.layers.CRFLoss())
# The CRF's chain runs over words: it takes the word mask, and reads the
# labels of each word's first piece.
model.fit(
    train.dataset(sample_weights=False, word_mask=True).batch(16),
    validation_data=test.dataset(sample_weights=False, word_mask=True).batch(
        32
    ),
    epochs=1,
)

predicted = test.to_words(
    model.predict(test.word_inputs, batch_size=32, verbose=0)
)
report = kft.evaluation.sequence_labelling_report(test_tags, predicted)
print(report)
print(f"entity F1 (micro): {report.micro_f1:.3f}")
