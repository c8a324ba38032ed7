import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import export
from kfinetune import testing

TEXTS = np.array(["good movie", "awful boring day", "i love it", "not fun"])


def test_exported_model_reads_raw_text(tmp_path):
    model = testing.small_bert_classifier(sequence_length=16)
    expected = testing.predict(model, TEXTS)
    export.export_text_classifier(
        model, tmp_path / "sm", class_names=["neg", "pos"], verbose=False
    )
    reloaded = export.load_text_classifier(tmp_path / "sm")
    served = reloaded.serve(tf.constant(TEXTS))
    testing.assert_outputs_close(served["outputs"], expected)
    ids = np.argmax(expected, -1)
    np.testing.assert_array_equal(served["class_ids"], ids)
    names = np.array([b"neg", b"pos"])[ids]
    np.testing.assert_array_equal(served["labels"].numpy(), names)
    signature = reloaded.signatures["serving_default"]
    assert signature.structured_input_signature[1]
    out = signature(tf.constant(TEXTS))
    testing.assert_outputs_close(out["outputs"], expected)


def test_export_without_class_names_has_no_labels(tmp_path):
    model = testing.small_bert_classifier(sequence_length=16)
    export.export_text_classifier(model, tmp_path / "sm", verbose=False)
    # Keep the loaded object alive: its functions do not own the variables.
    reloaded = export.load_text_classifier(tmp_path / "sm")
    served = reloaded.serve(tf.constant(TEXTS))
    assert set(served) == {"outputs", "class_ids"}


def test_model_without_preprocessor_is_refused(tmp_path):
    model = testing.small_bert_classifier()
    with pytest.raises(ValueError, match="preprocessor=None"):
        export.export_text_classifier(model, tmp_path / "sm")
    assert not (tmp_path / "sm").exists()


def test_class_names_must_match_outputs(tmp_path):
    model = testing.small_bert_classifier(num_classes=3, sequence_length=16)
    with pytest.raises(ValueError, match=r"class_names=\['a', 'b'\]"):
        export.export_text_classifier(model, tmp_path / "sm", ["a", "b"])
    assert not (tmp_path / "sm").exists()


TAGS = ("O", "B-LOC", "B-PER", "I-LOC")
# Words of the small random BERT's vocabulary; "good-day" and "fun!" split
# into several pieces, "\x07" into none.
SENTENCES = [
    "i love the good-day",
    "we hate a night movie",
    "",
    "you really hate the film today \x07 fun!",
    " ".join(["they loved fun! the good-day movie"] * 4),  # three windows
]


@pytest.mark.parametrize("crf", [False, True], ids=["softmax", "crf"])
def test_exported_tagger_tags_every_word_of_raw_text(crf, tmp_path):
    from kfinetune import data
    from kfinetune import presets

    sequence_length = 12
    tokenizer = testing.small_bert_preprocessor().tokenizer
    model = presets.token_classifier(
        len(TAGS),
        sequence_length=sequence_length,
        crf=crf,
        backbone=testing.small_bert_backbone(),
    )
    if crf:
        # Random transitions: the chain matters to the decoded tags.
        rng = np.random.default_rng(0)
        for weight in model.get_layer("crf").weights:
            weight.assign(rng.normal(size=weight.shape))
    words = [text.split() for text in SENTENCES]
    # The export's windows do not overlap: as align_tags with overlap=0.
    aligned = data.align_tags(
        words, None, tokenizer, TAGS, sequence_length, overlap=0
    )
    assert max(aligned.sentence_index) < len(aligned.sentence_index) - 2
    expected = aligned.to_words(
        testing.predict(model, aligned.inputs_for(model))
    )

    # A tokenizer never called (`align_tags` called the other), as
    # `python -m kfinetune export` loads it: the exporter builds it, since
    # `keras.export.ExportArchive` refuses an unbuilt layer.
    fresh = testing.small_bert_preprocessor().tokenizer
    assert not fresh.built
    export.export_tagger(model, fresh, TAGS, tmp_path / "tagger", verbose=False)
    # Keep the loaded object: its variables die with it.
    tagger = export.load_text_classifier(tmp_path / "tagger")
    served = tagger.serve(tf.constant(SENTENCES))
    num_words = served["num_words"].numpy().tolist()
    assert num_words == [len(w) for w in words]
    for row, (sentence, tags) in enumerate(zip(words, expected, strict=True)):
        count = num_words[row]
        served_words = [
            w.decode() for w in served["words"][row, :count].numpy()
        ]
        assert served_words == sentence
        assert [t.decode() for t in served["tags"][row, :count].numpy()] == tags
        ids = served["tag_ids"][row].numpy()
        assert [TAGS[i] for i in ids[:count]] == tags
        assert (ids[count:] == -1).all()


def test_export_tagger_checks_its_arguments(tmp_path):
    from kfinetune import presets

    tokenizer = testing.small_bert_preprocessor()
    model = presets.token_classifier(
        3, sequence_length=8, backbone=testing.small_bert_backbone()
    )
    with pytest.raises(ValueError, match=r"one name per model output \(3\)"):
        export.export_tagger(model, tokenizer, ["O", "B-X"], tmp_path)
    with pytest.raises(ValueError, match="Received: sequence_length=16"):
        export.export_tagger(
            model, tokenizer, ["O", "B-X", "I-X"], tmp_path, sequence_length=16
        )
    classifier = testing.small_bert_classifier(sequence_length=8)
    with pytest.raises(ValueError, match="inputs of a fixed length"):
        export.export_tagger(classifier, tokenizer, ["O", "B-X"], tmp_path)
    with pytest.raises(ValueError, match="must take a dict of `token_ids`"):
        export.export_tagger(
            keras.Model(
                inputs := keras.Input((8,)), keras.layers.Dense(3)(inputs)
            ),
            tokenizer,
            ["O", "B-X", "I-X"],
            tmp_path,
        )
    assert not any(tmp_path.iterdir())
