import numpy as np
import pytest
import tensorflow as tf

from kfinetune import data


def _task(size, label, weights=False):
    x = {"token_ids": np.full((size, 4), label, "int32")}
    y = np.full((size,), label, "int32")
    if weights:
        return tf.data.Dataset.from_tensor_slices(
            (x, np.full((size, 3), label, "int32"), np.ones((size, 3)))
        )
    return tf.data.Dataset.from_tensor_slices((x, y))


def _task_counts(dataset, tasks):
    counts = np.zeros(len(tasks))
    for _, _, weights in dataset.batch(2000).as_numpy_iterator():
        counts += [
            weights[t].reshape(len(weights[t]), -1)[:, 0].sum() for t in tasks
        ]
    return counts


def test_mix_carries_own_targets_and_zero_weights_for_other_tasks():
    mixed = data.mix(
        {"a": _task(5, 1), "tags": _task(5, 2, weights=True)}, seed=0
    )
    assert mixed.cardinality() == 10
    seen = set()
    for x, y, w in mixed.as_numpy_iterator():
        task = "a" if x["token_ids"][0] == 1 else "tags"
        seen.add(task)
        if task == "a":
            assert (y["a"], w["a"]) == (1, 1.0)
            np.testing.assert_array_equal(y["tags"], [0, 0, 0])
            np.testing.assert_array_equal(w["tags"], [0.0, 0.0, 0.0])
        else:
            assert (y["a"], w["a"]) == (0, 0.0)
            np.testing.assert_array_equal(y["tags"], [2, 2, 2])
            np.testing.assert_array_equal(w["tags"], [1.0, 1.0, 1.0])
    assert seen == {"a", "tags"}


@pytest.mark.parametrize(
    "sampling, expected",
    [
        ("proportional", [0.1, 0.3, 0.6]),
        ("uniform", [1 / 3, 1 / 3, 1 / 3]),
        (2.0, np.sqrt([1, 3, 6]) / np.sqrt([1, 3, 6]).sum()),
        (1.0, [0.1, 0.3, 0.6]),
    ],
)
def test_mix_samples_tasks_in_the_requested_proportions(sampling, expected):
    datasets = {"a": _task(10, 1), "b": _task(30, 2), "c": _task(60, 3)}
    mixed = data.mix(datasets, sampling=sampling, seed=1, size=20000)
    counts = _task_counts(mixed, ["a", "b", "c"])
    assert counts.sum() == 20000
    # The standard error of each proportion is below 0.004 for 20,000 draws.
    np.testing.assert_allclose(counts / counts.sum(), expected, atol=0.015)


def test_mix_is_deterministic_for_a_seed():
    def draw(seed):
        datasets = {"a": _task(20, 1), "b": _task(20, 2)}
        mixed = data.mix(datasets, seed=seed)
        return [int(x["token_ids"][0]) for x, _, _ in mixed.as_numpy_iterator()]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_mix_accepts_an_infinite_dataset_with_uniform_sampling_and_size():
    datasets = {"a": _task(4, 1).repeat(), "b": _task(4, 2)}
    mixed = data.mix(datasets, sampling="uniform", seed=0, size=7)
    assert len(list(mixed)) == 7


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"datasets": {}}, "non-empty dict"),
        ({"datasets": {"a": [1, 2]}}, r"Received: datasets\['a'\]"),
        ({"sampling": "balanced"}, "sampling='balanced'"),
        ({"sampling": 0.0}, "sampling=0.0"),
        ({"sampling": -1}, "sampling=-1"),
        ({"sampling": True}, "sampling=True"),
        ({"sampling": float("inf")}, "sampling=inf"),
        ({"size": 0}, "size=0"),
    ],
)
def test_mix_rejects_bad_arguments(kwargs, message):
    kwargs = {"datasets": {"a": _task(4, 1), "b": _task(4, 2)}, **kwargs}
    with pytest.raises(ValueError, match=message):
        data.mix(**kwargs)


def test_mix_rejects_datasets_whose_size_is_needed_but_unknown():
    unknown = _task(4, 1).filter(lambda x, y: True)
    with pytest.raises(ValueError, match=r"a.cardinality\(\)=UNKNOWN"):
        data.mix({"a": unknown, "b": _task(4, 2)})
    with pytest.raises(ValueError, match=r"a.cardinality\(\)=INFINITE"):
        data.mix({"a": _task(4, 1).repeat(), "b": _task(4, 2)}, size=8)
    with pytest.raises(ValueError, match=r"a.cardinality\(\)=0"):
        data.mix({"a": _task(4, 1).take(0), "b": _task(4, 2)})


def test_mix_rejects_different_inputs_and_targets_of_unknown_shape():
    other = tf.data.Dataset.from_tensor_slices(
        ({"ids": np.zeros((4, 4), "int32")}, np.zeros(4, "int32"))
    )
    with pytest.raises(ValueError, match="task 'b' differs from task 'a'"):
        data.mix({"a": _task(4, 1), "b": other})
    ragged = _task(4, 1).map(lambda x, y: (x, tf.fill([y], y)))
    with pytest.raises(ValueError, match="task 'b'.*fixed shape"):
        data.mix({"a": _task(4, 1), "b": ragged})
    batched = _task(4, 1).batch(2)
    with pytest.raises(ValueError, match="fixed shape"):
        data.mix({"a": _task(4, 1), "b": batched})
