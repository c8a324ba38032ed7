import collections

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import presets
from kfinetune import testing
from kfinetune.data import augment

TEXTS = [
    "I really loved this movie today!",
    "so bad",
    "one",
    "",
    "The film was great, not boring at all",
    "what a day it was and the night was even better",
]
LABELS = [1, 0, 1, 0, 1, 1]
SYNONYMS = {
    "loved": ["adored", "liked"],
    "movie": ["film"],
    "great": ["awesome", "fine"],
    "bad": ["awful"],
    "boring": ["dull"],
    "day": ["morning"],
    "night": ["evening"],
}


def pairs():
    return tf.data.Dataset.from_tensor_slices((TEXTS, LABELS))


def texts_of(dataset):
    return [t.decode() for t, _ in dataset.as_numpy_iterator()]


def labels_of(dataset):
    return [int(label) for _, label in dataset.as_numpy_iterator()]


def text_augmentations(rate=0.3, seed=0):
    return {
        "random_deletion": augment.random_deletion(rate, seed),
        "random_swap": augment.random_swap(rate, seed),
        "synonym_replacement": augment.synonym_replacement(
            SYNONYMS, rate, seed
        ),
        "random_insertion": augment.random_insertion(SYNONYMS, rate, seed),
    }


@pytest.mark.parametrize("name", sorted(text_augmentations()))
def test_same_seed_same_stream_new_epoch_new_draws(name):
    first = pairs().map(text_augmentations()[name])
    again = pairs().map(text_augmentations()[name])
    epochs = [texts_of(first) for _ in range(4)]
    assert [texts_of(again) for _ in range(4)] == epochs
    # Later epochs draw again: some text changes from one epoch to another.
    assert len({tuple(epoch) for epoch in epochs}) > 1
    other_seed = pairs().map(text_augmentations(seed=1)[name])
    assert [texts_of(other_seed) for _ in range(4)] != epochs


@pytest.mark.parametrize("name", sorted(text_augmentations()))
def test_labels_never_change_and_rate_zero_is_identity(name):
    augmented = pairs().map(text_augmentations()[name])
    assert labels_of(augmented) == LABELS
    unchanged = pairs().map(text_augmentations(rate=0)[name])
    assert texts_of(unchanged) == TEXTS


@pytest.mark.parametrize("name", sorted(text_augmentations()))
def test_plain_texts_and_batches(name):
    aug = text_augmentations()[name]
    plain = tf.data.Dataset.from_tensor_slices(TEXTS).map(aug)
    assert len([t for t in plain.as_numpy_iterator()]) == len(TEXTS)
    (batch,) = pairs().batch(len(TEXTS)).map(aug).as_numpy_iterator()
    assert batch[0].shape == (len(TEXTS),)
    assert batch[1].tolist() == LABELS


def test_random_deletion_keeps_words_in_order_and_never_empties():
    everything = texts_of(pairs().map(augment.random_deletion(1.0, seed=0)))
    for text, out in zip(TEXTS, everything, strict=True):
        assert len(out.split()) == min(1, len(text.split()))
        assert set(out.split()) <= set(text.split())
    for _ in range(3):
        some = texts_of(pairs().map(augment.random_deletion(0.5, seed=2)))
        for text, out in zip(TEXTS, some, strict=True):
            words = iter(text.split())
            # A subsequence: every kept word appears later than the one
            # before it.
            assert all(word in words for word in out.split())


def test_random_swap_keeps_the_words():
    swap = augment.random_swap(0.3, seed=0)
    for _ in range(3):
        for text, out in zip(TEXTS, texts_of(pairs().map(swap)), strict=True):
            assert sorted(out.split()) == sorted(text.split())
    assert texts_of(pairs().map(swap))[2] == "one"


def test_synonym_replacement_draws_from_the_table_and_keeps_punctuation():
    replace = augment.synonym_replacement(SYNONYMS, rate=1.0, seed=0)
    texts = ["Loved the movie!!", "(great) and bad.", "nothing here"]
    for _ in range(3):
        outputs = [
            t.decode()
            for t in tf.data.Dataset.from_tensor_slices(texts)
            .map(replace)
            .as_numpy_iterator()
        ]
        first, second, third = (out.split() for out in outputs)
        assert first[0] in SYNONYMS["loved"]
        assert first[1] == "the"
        assert first[2].endswith("!!")
        assert first[2][:-2] == "film"
        assert second[0][0] == "(" and second[0][-1] == ")"
        assert second[0][1:-1] in SYNONYMS["great"]
        assert second[2] == "awful."
        assert outputs[2] == "nothing here"


def test_synonym_replacement_count_follows_eda():
    replace = augment.synonym_replacement(SYNONYMS, rate=0.2, seed=0)
    text = "loved movie great bad boring day night and and and"
    (out,) = [
        t.decode()
        for t in tf.data.Dataset.from_tensors(text)
        .map(replace)
        .as_numpy_iterator()
    ]
    changed = sum(
        a != b for a, b in zip(text.split(), out.split(), strict=True)
    )
    # max(1, floor(0.2 * 10)) words have a synonym drawn; "great" has two.
    assert 1 <= changed <= 2
    assert out.split()[7:] == ["and"] * 3


def test_random_insertion_inserts_synonyms_around_the_original_words():
    insert = augment.random_insertion(SYNONYMS, rate=0.5, seed=0)
    synonyms = {word for row in SYNONYMS.values() for word in row}
    for _ in range(3):
        outputs = texts_of(pairs().map(insert))
        for text, out in zip(TEXTS, outputs, strict=True):
            words = text.split()
            has_synonyms = any(w.lower().strip("!,") in SYNONYMS for w in words)
            added = max(1, len(words) // 2) if has_synonyms else 0
            assert len(out.split()) == len(words) + added
            remaining = collections.Counter(out.split())
            remaining.subtract(words)
            extra = [w for w, c in remaining.items() for _ in range(c)]
            assert set(extra) <= synonyms


@pytest.mark.parametrize("rate", [-0.1, 1.5, True, "0.1", None])
@pytest.mark.parametrize(
    "build",
    [
        augment.random_deletion,
        augment.random_swap,
        lambda rate: augment.synonym_replacement(SYNONYMS, rate),
        lambda rate: augment.random_insertion(SYNONYMS, rate),
        lambda rate: augment.token_masking(
            testing.small_bert_preprocessor().tokenizer, rate
        ),
        lambda rate: augment.span_cutoff(
            testing.small_bert_preprocessor().tokenizer, rate
        ),
    ],
)
def test_rate_outside_zero_one_is_an_error_naming_it(build, rate):
    with pytest.raises(ValueError, match=rf"Received: rate={rate!r}"):
        build(rate)


def test_bad_arguments_are_errors_naming_them():
    with pytest.raises(ValueError, match="Received: seed=-1"):
        augment.random_swap(0.1, seed=-1)
    with pytest.raises(ValueError, match="Received: synonyms="):
        augment.synonym_replacement(["good", "great"], 0.1)
    with pytest.raises(ValueError, match="must hold at least one word"):
        augment.random_insertion({}, 0.1)
    with pytest.raises(ValueError, match="non-empty sequence"):
        augment.SynonymTable({"good": []})
    with pytest.raises(ValueError, match="without whitespace"):
        augment.SynonymTable({"good": ["very good"]})
    with pytest.raises(ValueError, match="once lowercased"):
        augment.SynonymTable({"Good": ["fine"], "good": ["great"]})
    with pytest.raises(ValueError, match="Received: tokenizer="):
        augment.token_masking(object(), 0.1)
    with pytest.raises(ValueError, match="Received: function="):
        augment.from_function("upper")


def test_wrong_inputs_fail_when_mapped_before_anything_trains():
    numbers = tf.data.Dataset.from_tensor_slices(([1, 2], [0, 1]))
    with pytest.raises(ValueError, match="augments texts"):
        numbers.map(augment.random_swap(0.1, seed=0))
    preprocessor = testing.small_bert_preprocessor()
    tokenizer = preprocessor.tokenizer
    with pytest.raises(ValueError, match="Map it after the preprocessor"):
        pairs().map(augment.token_masking(tokenizer, 0.1, seed=0))
    with pytest.raises(ValueError, match="augments texts"):
        pairs().map(preprocessor).map(augment.random_deletion(0.1, seed=0))


@pytest.fixture(scope="module")
def features():
    preprocessor = testing.small_bert_preprocessor(sequence_length=16)
    texts = [
        "the movie was good",
        "bad bad bad day and night and it was awful",
        "i loved it",
    ]
    dataset = tf.data.Dataset.from_tensor_slices((texts, [1, 0, 1]))
    return preprocessor, dataset.map(preprocessor)


def feature_rows(dataset):
    return [
        (x["token_ids"], x["padding_mask"], y)
        for x, y in dataset.as_numpy_iterator()
    ]


def test_token_masking_masks_only_word_pieces(features):
    preprocessor, dataset = features
    tokenizer = preprocessor.tokenizer
    original = feature_rows(dataset)
    special = set(tokenizer.special_token_ids)
    mask = augment.token_masking(tokenizer, rate=0.5, seed=0)
    epochs = [feature_rows(dataset.map(mask)) for _ in range(2)]
    replay = augment.token_masking(tokenizer, rate=0.5, seed=0)
    for epoch in epochs:
        again = feature_rows(dataset.map(replay))
        for (ids, _, _), (ids2, _, _) in zip(epoch, again, strict=True):
            np.testing.assert_array_equal(ids, ids2)
        for (ids, pad, y), (ids0, pad0, y0) in zip(
            epoch, original, strict=True
        ):
            np.testing.assert_array_equal(pad, pad0)
            assert y == y0
            changed = ids != ids0
            assert (ids[changed] == tokenizer.mask_token_id).all()
            assert not np.isin(ids0[changed], list(special)).any()
            assert pad0[changed].all()
    masked = sum(
        int((ids == tokenizer.mask_token_id).sum())
        for epoch in epochs
        for ids, _, _ in epoch
    )
    assert masked > 0


def test_span_cutoff_cuts_one_contiguous_span(features):
    preprocessor, dataset = features
    tokenizer = preprocessor.tokenizer
    original = feature_rows(dataset)
    cutoff = augment.span_cutoff(tokenizer, rate=0.3, seed=0)
    for _ in range(3):
        rows = feature_rows(dataset.map(cutoff))
        for (ids, pad, y), (ids0, pad0, y0) in zip(rows, original, strict=True):
            assert y == y0
            cut = np.flatnonzero(pad0.astype(bool) & ~pad.astype(bool))
            # [CLS] + words + [SEP]: the words are positions 1..n.
            words = int(pad0.sum()) - 2
            assert len(cut) == max(1, round(0.3 * words))
            assert (np.diff(cut) == 1).all()
            assert cut.min() >= 1 and cut.max() <= words
            assert (ids[cut] == tokenizer.pad_token_id).all()
            keep = np.ones_like(pad0, bool)
            keep[cut] = False
            np.testing.assert_array_equal(ids[keep], ids0[keep])
    (batch,) = dataset.batch(3).map(cutoff).as_numpy_iterator()
    assert batch[0]["token_ids"].shape == (3, 16)


def test_from_function_applies_python_code_to_texts():
    upper = augment.from_function(str.upper)
    assert texts_of(pairs().map(upper)) == [t.upper() for t in TEXTS]
    assert labels_of(pairs().map(upper)) == LABELS
    (batch,) = pairs().batch(6).map(upper).as_numpy_iterator()
    assert [t.decode() for t in batch[0]] == [t.upper() for t in TEXTS]
    broken = pairs().map(augment.from_function(len))
    with pytest.raises(tf.errors.InvalidArgumentError, match="return a str"):
        texts_of(broken)


def test_augmented_pipeline_trains_a_model():
    # The augmentations run in tf.data, whatever the model compiles to.
    keras.utils.set_random_seed(0)
    preprocessor = testing.small_bert_preprocessor(sequence_length=16)
    model = testing.small_bert_classifier()
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = [w.numpy().copy() for w in model.trainable_weights]
    train = (
        pairs()
        .map(augment.random_swap(0.2, seed=0))
        .map(augment.synonym_replacement(SYNONYMS, 0.2, seed=0))
        .batch(3)
        .map(preprocessor)
        .map(augment.token_masking(preprocessor.tokenizer, 0.2, seed=0))
        .map(augment.span_cutoff(preprocessor.tokenizer, 0.2, seed=0))
    )
    history = model.fit(train, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = model.trainable_weights
    assert any(
        not np.allclose(b, a.numpy())
        for b, a in zip(before, after, strict=True)
    )


def test_embedding_synonyms_are_cosine_neighbours_among_whole_words():
    backbone = testing.small_bert_backbone()
    tokenizer = testing.small_bert_preprocessor().tokenizer
    table = augment.embedding_synonyms(backbone, tokenizer, k=3)
    vocabulary = tokenizer.get_vocabulary()
    candidates = [
        token
        for token in vocabulary
        if token.isalpha()
        and len(token) >= 3
        and token not in augment.STOP_WORDS
        and not token.startswith("[")
    ]
    assert sorted(table.synonyms) == sorted(candidates)
    vectors = backbone.token_embedding.embeddings.numpy()
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    index = {token: i for i, token in enumerate(vocabulary)}
    for word, neighbours in table.synonyms.items():
        scores = {
            other: float(vectors[index[word]] @ vectors[index[other]])
            for other in candidates
            if other != word
        }
        expected = sorted(scores, key=scores.get, reverse=True)[:3]
        assert list(neighbours) == expected
        np.testing.assert_allclose(
            table.similarities[word], [scores[n] for n in expected], atol=1e-5
        )
    # A task brings its backbone and its preprocessor's tokenizer.
    task = testing.small_bert_classifier(sequence_length=16)
    from_task = augment.embedding_synonyms(task, k=3)
    assert from_task.synonyms == table.synonyms
    some = augment.embedding_synonyms(backbone, tokenizer, k=2, words=["Good"])
    assert list(some.synonyms) == ["good"]
    assert some["GOOD"] == table["good"][:2]


def test_embedding_synonyms_errors():
    backbone = testing.small_bert_backbone()
    tokenizer = testing.small_bert_preprocessor().tokenizer
    with pytest.raises(ValueError, match="Received: k=0"):
        augment.embedding_synonyms(backbone, tokenizer, k=0)
    with pytest.raises(ValueError, match="Received: tokenizer=None"):
        augment.embedding_synonyms(backbone)
    with pytest.raises(ValueError, match="Received: model="):
        augment.embedding_synonyms(keras.layers.Dense(2), tokenizer)
    wrong = keras_hub.models.BertTokenizer(
        vocabulary=list(testing.VOCABULARY) + ["extra"]
    )
    with pytest.raises(ValueError, match="own tokenizer"):
        augment.embedding_synonyms(backbone, wrong)


def test_minilm_neighbours_are_whole_words():
    path = str(presets.minilm_path())
    backbone = keras_hub.models.BertBackbone.from_preset(path)
    tokenizer = keras_hub.models.BertTokenizer.from_preset(path)
    table = augment.embedding_synonyms(
        backbone, tokenizer, k=5, words=["happy", "good", "the", "##ing"]
    )
    assert sorted(table.synonyms) == ["good", "happy"]
    for neighbours in table.synonyms.values():
        assert len(neighbours) == 5
        for word in neighbours:
            assert word.isalpha() and word.isascii() and len(word) >= 3
            assert word not in augment.STOP_WORDS
