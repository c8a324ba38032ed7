"""Tagging @mentions and #hashtags in the bundled tweets with a CRF head.

No tagged corpus is installed here, so this builds an honest toy task from
real text: every whitespace-separated word of a tweet that starts with `@`
is a MENTION entity, every word that starts with `#` a HASHTAG, everything
else `O` (BIO scheme). The rule is visible in the text, so the task is easy;
the point is the whole pipeline: word pieces, a MiniLM backbone, a `CRF`
trained by `model.fit`, Viterbi tags from `model.predict`, and entity F1.

Every word piece is tagged (the first piece of an entity word `B-`, the
others `I-`, [CLS] and [SEP] `O`); predictions are mapped back to words by
the tag of each word's first piece.

python examples/crf_tagging.py
"""

import keras
import keras_hub
import numpy as np

import kfinetune as kft

TAGS = ["O", "B-MENTION", "I-MENTION", "B-HASHTAG", "I-HASHTAG"]
SEQUENCE_LENGTH = 64


def word_tag(word):
    if len(word) > 1 and word[0] == "@":
        return "MENTION"
    if len(word) > 1 and word[0] == "#":
        return "HASHTAG"
    return None


def encode(texts, tokenizer):
    """Token ids, padding mask and piece tags; the word tags and the first
    piece of every word, to map predictions back to words."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    rows = len(texts)
    token_ids = np.zeros((rows, SEQUENCE_LENGTH), "int32")
    tags = np.zeros((rows, SEQUENCE_LENGTH), "int32")
    word_tags, first_pieces = [], []
    for row, text in enumerate(texts):
        words = text.split()
        ids, piece_tags, starts, kept = [cls], [0], [], []
        for word, pieces in zip(words, tokenizer(words), strict=True):
            # Leave room for [SEP]; a word cut off is dropped whole.
            if len(ids) + len(pieces) > SEQUENCE_LENGTH - 1 or not pieces:
                break
            entity = word_tag(word)
            starts.append(len(ids))
            kept.append(f"B-{entity}" if entity else "O")
            ids += pieces
            inside = TAGS.index(f"I-{entity}") if entity else 0
            first = TAGS.index(f"B-{entity}") if entity else 0
            piece_tags += [first] + [inside] * (len(pieces) - 1)
        ids.append(sep)
        piece_tags.append(0)
        token_ids[row, : len(ids)] = ids
        tags[row, : len(ids)] = piece_tags
        word_tags.append(kept)
        first_pieces.append(starts)
    x = {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": (token_ids > 0).astype("int32"),
    }
    return x, tags, word_tags, first_pieces


def texts_of(dataset):
    return [text.decode() for text, _ in dataset.as_numpy_iterator()]


keras.utils.set_random_seed(0)
data = kft.data.tweet_sentiment(
    classes=3, seed=0, train_size=600, validation_size=10, test_size=300
)
preset = str(kft.presets.minilm_path())
tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
x_train, y_train, _, _ = encode(texts_of(data.train), tokenizer)
x_test, _, test_words, test_starts = encode(texts_of(data.test), tokenizer)

backbone = keras_hub.models.BertBackbone.from_preset(preset)
inputs = backbone.input
hidden = backbone(inputs)["sequence_output"]
emissions = keras.layers.Dense(len(TAGS), name="emissions")(hidden)
tags = kft.layers.CRF(len(TAGS), name="crf")(
    emissions, mask=inputs["padding_mask"]
)
model = keras.Model(inputs, tags)
model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=kft.layers.CRFLoss())
model.fit(x_train, y_train, batch_size=16, epochs=1)

predicted = model.predict(x_test, batch_size=32, verbose=0)
predicted_words = [
    [TAGS[predicted[row, start]] for start in starts]
    for row, starts in enumerate(test_starts)
]
report = kft.evaluation.sequence_labelling_report(test_words, predicted_words)
print(report)
print(f"entity F1 (micro): {report.micro_f1:.3f}")
