import keras
import numpy as np
import tensorflow as tf

from kfinetune import data
from kfinetune import testing

# Nine texts of nine different lengths, in no order.
TEXTS = [
    "good",
    "the film was really great",
    "bad day",
    "i loved this movie so much today",
    "the worst night ever in my whole life",
    "a very sad film",
    "so boring i left after ten minutes of it",
    "i hate it",
    "we had fun",
]


def _texts():
    labels = np.arange(len(TEXTS), dtype="int32") % 2
    return tf.data.Dataset.from_tensor_slices((TEXTS, labels))


def _order(dataset):
    return [x.decode() for x, *_ in dataset.as_numpy_iterator()]


def _words(texts):
    return [len(t.split()) for t in texts]


def test_baby_steps_stages_add_the_next_third_shuffled_within_stage():
    staged = data.curriculum(_texts(), stages=3, seed=0)
    order = _order(staged)
    assert staged.cardinality() == 3 + 6 + 9 == len(order)
    easiest = sorted(TEXTS, key=lambda t: len(t.split()))
    stages = [order[:3], order[3:9], order[9:]]
    for stage, members in enumerate(stages):
        assert sorted(members) == sorted(easiest[: 3 * (stage + 1)])
    assert max(_words(stages[0])) <= min(_words(easiest[3:]))
    for x, y in staged.as_numpy_iterator():
        assert y == TEXTS.index(x.decode()) % 2


def test_non_cumulative_stages_are_one_pass_from_easy_to_hard():
    staged = data.curriculum(_texts(), stages=3, cumulative=False)
    order = _order(staged)
    assert sorted(order) == sorted(TEXTS)
    lengths = _words(order)
    assert max(lengths[:3]) <= min(lengths[3:6])
    assert max(lengths[3:6]) <= min(lengths[6:])


def test_same_seed_same_order_and_reshuffled_every_pass():
    first = data.curriculum(_texts(), stages=1, seed=3)
    again = data.curriculum(_texts(), stages=1, seed=3)
    other = data.curriculum(_texts(), stages=1, seed=4)
    passes = [_order(first) for _ in range(3)]
    assert passes == [_order(again) for _ in range(3)]
    assert passes[0] != _order(other)
    assert passes[0] != passes[1] or passes[1] != passes[2]


def test_epochs_per_stage_repeat_each_stage():
    staged = data.curriculum(_texts(), stages=3, epochs_per_stage=2)
    order = _order(staged)
    assert len(order) == 2 * (3 + 6 + 9)
    assert sorted(order[:3]) == sorted(order[3:6])


def test_function_and_array_difficulties():
    by_label = data.curriculum(
        _texts(), lambda x, y: float(y), stages=2, cumulative=False
    )
    assert [y for _, y in by_label.as_numpy_iterator()][:4] == [0] * 4
    scores = -np.arange(9)
    reverse = data.curriculum(_texts(), scores, stages=9, cumulative=False)
    assert _order(reverse) == TEXTS[::-1]


def test_length_of_token_dicts_and_token_ids():
    x = testing.small_bert_inputs(6)
    y = np.zeros(6, "int32")
    staged = data.curriculum(
        tf.data.Dataset.from_tensor_slices((x, y)), stages=6, cumulative=False
    )
    lengths = [e[0]["padding_mask"].sum() for e in staged.as_numpy_iterator()]
    assert lengths == sorted(x["padding_mask"].sum(1))
    ids = tf.data.Dataset.from_tensor_slices((x["token_ids"], y))
    staged = data.curriculum(ids, stages=6, cumulative=False)
    counts = [np.count_nonzero(e[0]) for e in staged.as_numpy_iterator()]
    assert counts == sorted(counts)


def test_teacher_loss_orders_by_the_teachers_per_example_loss():
    teacher = testing.small_bert_classifier(sequence_length=8)
    dataset = _texts()
    logits = teacher.predict(np.array(TEXTS), verbose=0)
    labels = np.arange(9) % 2
    losses = keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True
    ).numpy()
    staged = data.curriculum(dataset, teacher, stages=9, cumulative=False)
    assert _order(staged) == [TEXTS[i] for i in np.argsort(losses)]
    weighted = tf.data.Dataset.from_tensor_slices(
        (TEXTS, labels.astype("int32"), np.ones(9, "float32"))
    )

    def confidence(y, y_pred):
        return -keras.losses.sparse_categorical_crossentropy(
            y, y_pred, from_logits=True
        )

    staged = data.curriculum(
        weighted, teacher, stages=9, cumulative=False, loss=confidence
    )
    assert _order(staged) == [TEXTS[i] for i in np.argsort(-losses)]


def test_plain_fit_trains_on_a_curriculum():
    def trained(batches):
        model = testing.small_bert_classifier(sequence_length=8)
        testing.compile_and_build(
            model,
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        if isinstance(batches, tf.data.Dataset):
            history = model.fit(batches, epochs=1, verbose=0)
            assert history.params["steps"] == 5
        else:
            for x, y in batches:
                model.train_on_batch(np.array(x), np.array(y))
        return model.get_weights()

    # The first pass of a staged dataset with the same seed gives the same
    # order (see above): the baby-steps stages of 3, 6 and 9 texts.
    order = _order(data.curriculum(_texts(), stages=3, seed=0))
    easiest = sorted(TEXTS, key=lambda t: len(t.split()))
    assert sorted(order[:3]) == sorted(easiest[:3])
    assert sorted(order[3:9]) == sorted(easiest[:6])
    assert sorted(order[9:]) == sorted(TEXTS)
    labels = [TEXTS.index(text) % 2 for text in order]
    by_hand = [
        (order[i : i + 4], labels[i : i + 4]) for i in range(0, len(order), 4)
    ]
    # One epoch of `fit` on the batched curriculum takes the 18 texts in
    # that order, 4 at a time: the same weights as training batch by batch.
    by_fit = trained(data.curriculum(_texts(), stages=3, seed=0).batch(4))
    for a, b in zip(by_fit, trained(by_hand), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # The order matters: the same batches from hard to easy end elsewhere.
    backwards = trained(by_hand[::-1])
    assert any(
        not np.allclose(a, b, atol=1e-4)
        for a, b in zip(by_fit, backwards, strict=True)
    )
