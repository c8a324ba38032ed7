import keras
import pytest

from kfinetune import callbacks
from kfinetune import data
from kfinetune import evaluation
from kfinetune import layers
from kfinetune import presets
from kfinetune import testing

SEQUENCE_LENGTH = 10
# Words of the small random BERT's vocabulary ("good-day" and "fun!" split
# into several pieces).
SENTENCES = data.TaggedSentences(
    sentences=(
        ("i", "love", "the", "good-day"),
        ("we", "hate", "a", "night", "movie"),
        ("they", "loved", "fun!"),
        ("you", "really", "hate", "the", "film", "today"),
    ),
    tags=(
        ("B-PER", "O", "O", "B-LOC"),
        ("B-PER", "O", "O", "B-LOC", "I-LOC"),
        ("B-PER", "O", "B-LOC"),
        ("B-PER", "O", "O", "O", "B-LOC", "I-LOC"),
    ),
    tag_names=("O", "B-LOC", "B-PER", "I-LOC"),
)


@pytest.mark.parametrize("crf", [False, True], ids=["softmax", "crf"])
def test_early_stopping_and_history_read_val_entity_f1(crf):
    keras.utils.set_random_seed(0)
    tokenizer = testing.small_bert_preprocessor()
    model = presets.token_classifier(
        4,
        sequence_length=SEQUENCE_LENGTH,
        crf=crf,
        backbone=testing.small_bert_backbone(),
        dropout=0.0,
    )
    aligned = SENTENCES.align(tokenizer, SEQUENCE_LENGTH)
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-2),
        loss=layers.CRFLoss()
        if crf
        else keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    f1 = callbacks.EntityF1(SENTENCES, tokenizer, SEQUENCE_LENGTH)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_entity_f1", mode="max", patience=2
    )
    history = model.fit(
        aligned.dataset(sample_weights=not crf, word_mask=crf)
        .repeat(5)
        .batch(4),
        epochs=8,
        callbacks=[f1, stop],
        verbose=0,
    )
    values = history.history["val_entity_f1"]
    assert len(values) == len(history.history["loss"])
    assert all(0.0 <= value <= 1.0 for value in values)
    # The last value is the model's entity F1 as it is now, by hand.
    words = aligned.to_words(testing.predict(model, aligned.inputs_for(model)))
    report = evaluation.sequence_labelling_report(SENTENCES.tags, words)
    assert values[-1] == report.micro_f1 == f1.report().micro_f1
    # EarlyStopping watched it: its best is the best F1 of the run.
    assert stop.best == max(values)
    # The tiny training set is learnt: the F1 rises above its start.
    assert max(values) > values[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sentences": [["i"]]}, r"TaggedSentences.*Received: sentences=\["),
        ({"scheme": "IOB1"}, r"scheme.*Received: scheme='IOB1'"),
        ({"batch_size": 0}, r"Received: batch_size=0"),
        ({"name": ""}, r"Received: name=''"),
        (
            {
                "sentences": data.TaggedSentences(
                    (("i", "love"),), (("S-PER", "O"),), ("O", "S-PER")
                )
            },
            r"S-PER",
        ),
    ],
)
def test_bad_arguments_are_refused_when_built(kwargs, message):
    arguments = {
        "sentences": SENTENCES,
        "tokenizer": testing.small_bert_preprocessor(),
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        callbacks.EntityF1(**arguments)
