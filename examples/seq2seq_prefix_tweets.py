"""Prefix tuning of a BART encoder-decoder on real tweets: restore the
casing of lowercased tweets, a translation-style sequence-to-sequence task.

The source is a tweet lowercased, the target the tweet as written.
`kfinetune.data.seq2seq` makes the rows, `kfinetune.peft.PrefixConfig`
trains learned keys and values in every attention layer (encoder
self-attention, decoder self- and cross-attention), and `generate()` writes
the restored tweets, scored with chrF and exact match.

No pretrained generator installs here, so the model is a small randomly
initialised keras-hub `BartSeq2SeqLM` (2 layers, hidden size 64) over a
byte-level tokenizer: prefixes on a random model cannot restore anything,
and what this script prints shows that the pipeline runs, not what prefix
tuning achieves. With network, one line changes (see `model = ...` below)
and the same code tunes `bart_base_en`. benchmarks/generation.py measures
the methods on a small BART pretrained on the tweets first.

    python examples/seq2seq_prefix_tweets.py
"""

import keras
import keras_hub

import kfinetune as kft

SEQUENCE_LENGTH = 64
EPOCHS = 3


def byte_tokenizer():
    """A BART tokenizer over the 256 bytes (GPT-2's byte symbols), and the
    one merge keras-hub's byte-pair tokenizers need."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    symbols = [chr(b) for b in printable]
    symbols += [chr(256 + i) for i in range(256 - len(printable))]
    vocabulary = {"<s>": 0, "<pad>": 1, "</s>": 2, "<mask>": 3}
    for symbol in [*symbols, "Ġt"]:
        vocabulary[symbol] = len(vocabulary)
    return keras_hub.models.BartTokenizer(vocabulary, ["Ġ t"])


def shorten(text, limit=SEQUENCE_LENGTH - 4):
    """The words of `text` that fit in `limit` bytes."""
    while len(text.encode()) > limit:
        text = text.rsplit(" ", 1)[0] if " " in text else text[:limit]
    return text


data = kft.data.tweet_sentiment(
    classes=3, seed=0, train_size=3000, validation_size=200, test_size=200
)
splits = {
    name: [(shorten(t).lower(), shorten(t)) for t in split.texts]
    for name, split in data.splits.items()
}
tokenizer = byte_tokenizer()
preprocessor = keras_hub.models.BartSeq2SeqLMPreprocessor(
    tokenizer,
    encoder_sequence_length=SEQUENCE_LENGTH,
    decoder_sequence_length=SEQUENCE_LENGTH,
)
keras.utils.set_random_seed(0)
# With network: model = kft.presets.seq2seq_lm("bart_base_en",
#                                              sequence_length=64)
model = keras_hub.models.BartSeq2SeqLM(
    keras_hub.models.BartBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        max_sequence_length=SEQUENCE_LENGTH,
    ),
    preprocessor=preprocessor,
)
rows = {
    name: kft.data.seq2seq(
        pairs, preprocessor, SEQUENCE_LENGTH, SEQUENCE_LENGTH
    )
    for name, pairs in splits.items()
}
print(rows["train"].source_truncation, rows["train"].target_truncation)

model = kft.peft.apply(model, kft.peft.PrefixConfig(length=8, hidden=64))
kft.peft.summary(model)

# The rows are token ids already: the preprocessor comes back for
# `generate`, which reads and writes text.
model.preprocessor = None
train = rows["train"].dataset().shuffle(3000, seed=0).batch(32)
schedule = kft.optimizers.schedules.WarmupLinearDecay(
    3e-3, warmup_steps=10, total_steps=EPOCHS * len(train)
)
model.compile(
    optimizer=keras.optimizers.AdamW(schedule),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    sampler="greedy",
)
model.fit(
    train,
    validation_data=rows["validation"].dataset().batch(64),
    epochs=EPOCHS,
    shuffle=False,
    verbose=2,
)
print(
    kft.evaluation.evaluate_language_model(
        model, rows["test"].dataset().batch(64)
    )
)

model.preprocessor = preprocessor
sources, targets = zip(*splits["test"][:64], strict=True)
# `evaluate_generator` takes the keras-hub model: the PEFTModel's base.
report = kft.evaluation.evaluate_generator(
    model.base, list(sources), list(targets), max_length=SEQUENCE_LENGTH
)
exact = sum(h == t for h, t in zip(report.hypotheses, targets, strict=True))
print(f"chrF2 {report.chrf:.1f}, exact match {exact} of {len(targets)}")
for source, restored, target in list(
    zip(sources, report.hypotheses, targets, strict=True)
)[:3]:
    print(f"{source!r}\n  -> {restored!r}\n  as written: {target!r}")

# Fold the reparameterisation MLP into plain prefixes for inference.
kft.peft.merge(model)
print(model.generate([sources[0]], max_length=SEQUENCE_LENGTH))
