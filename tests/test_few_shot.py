import contextlib
import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import data as data_lib
from kfinetune import recipes
from kfinetune import testing

# `few_shot_curve` clears the Keras session, a `gc.collect()`, every run.

POSITIVE = ("good", "great", "love", "happy", "best", "fun")
NEGATIVE = ("bad", "awful", "hate", "sad", "worst", "boring")
NEUTRAL = ("the", "a", "is", "was", "this", "that", "it", "today")


def labelled_texts(per_class=(30, 20, 12)):
    """Distinct texts over the small BERT's vocabulary, a word of the class
    (negative, positive, neutral) in each."""
    rng = np.random.default_rng(0)
    markers = (NEGATIVE, POSITIVE, NEUTRAL)
    texts, labels = [], []
    for label, count in enumerate(per_class):
        for index in range(count):
            words = [rng.choice(markers[label]), *rng.choice(NEUTRAL, 3)]
            texts.append(" ".join(words) + f" {index}")
            labels.append(label)
    names = ("negative", "positive", "neutral")[: len(per_class)]
    return data_lib.LabelledTexts(texts, labels, names)


def binary_data():
    return labelled_texts((60, 60)).split(validation=10, test=20, seed=0)


def as_set(texts):
    return set(texts.texts.tolist())


# === few_shot ===


def test_few_shot_draws_k_of_every_class_from_the_texts():
    texts = labelled_texts()
    sample = data_lib.few_shot(texts, k=5, seed=0)
    assert sample.class_counts() == {
        "negative": 5,
        "positive": 5,
        "neutral": 5,
    }
    assert as_set(sample) <= as_set(texts)
    for text, label in zip(sample.texts, sample.labels, strict=True):
        assert texts.labels[texts.texts.tolist().index(text)] == label


def test_few_shot_is_deterministic_for_a_seed():
    texts = labelled_texts()
    first = data_lib.few_shot(texts, k=4, seed=3)
    again = data_lib.few_shot(texts, k=4, seed=3)
    other = data_lib.few_shot(texts, k=4, seed=4)
    assert first.texts.tolist() == again.texts.tolist()
    assert as_set(first) != as_set(other)


def test_few_shot_samples_are_nested_across_k():
    texts = labelled_texts()
    for seed in range(3):
        samples = [data_lib.few_shot(texts, k, seed) for k in (2, 4, 8, 12)]
        for smaller, larger in zip(samples, samples[1:], strict=False):
            assert as_set(smaller) < as_set(larger)


def test_few_shot_of_splits_keeps_validation_and_test_disjoint():
    data = binary_data()
    few = data_lib.few_shot(data, k=3, seed=1)
    assert isinstance(few, data_lib.TextClassificationData)
    assert few.splits["train"].class_counts() == {"negative": 3, "positive": 3}
    assert as_set(few.splits["train"]) <= as_set(data.splits["train"])
    for name in ("validation", "test"):
        assert few.splits[name] is data.splits[name]
        assert not as_set(few.splits["train"]) & as_set(data.splits[name])
    assert few.seed == 1


def test_few_shot_of_a_dataset_ignores_its_order():
    data = binary_data()
    texts = data.splits["train"]
    reversed_texts = texts.subset(np.arange(len(texts))[::-1])
    samples = [
        data_lib.few_shot(dataset, k=4, seed=0)
        for dataset in (
            data.train,
            reversed_texts.as_dataset(shuffle=False),
            data.train.batch(7),
        )
    ]
    assert samples[0].element_spec == (
        tf.TensorSpec((), tf.string),
        tf.TensorSpec((), tf.int32),
    )
    pairs = [
        {(t.decode(), int(y)) for t, y in s.as_numpy_iterator()}
        for s in samples
    ]
    assert pairs[0] == pairs[1] == pairs[2]
    assert len(pairs[0]) == 8
    assert {t for t, _ in pairs[0]} <= as_set(texts)


def test_few_shot_refuses_a_class_with_fewer_than_k():
    texts = labelled_texts((30, 20, 12))
    with pytest.raises(ValueError, match=r"neutral.*12.*Received: k=13"):
        data_lib.few_shot(texts, k=13, seed=0)
    dataset = tf.data.Dataset.from_tensor_slices((["a", "b", "c"], [0, 0, 2]))
    # Class 1 lies between the labels that occur and has no examples.
    with pytest.raises(ValueError, match=r"'1': 0.*Received: k=1"):
        data_lib.few_shot(dataset, k=1, seed=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "Received: k=0"),
        ({"k": 2.0}, "Received: k=2.0"),
        ({"k": True}, "Received: k=True"),
        ({"k": 2, "seed": -1}, "Received: seed=-1"),
        ({"k": 2, "dataset": ["a", "b"]}, r"Received: dataset=\['a', 'b'\]"),
        (
            {"k": 2, "dataset": tf.data.Dataset.range(4)},
            "element_spec",
        ),
        (
            {
                "k": 1,
                "dataset": tf.data.Dataset.from_tensors(("a", 0)).repeat(),
            },
            "must be finite",
        ),
        (
            {
                "k": 1,
                "dataset": tf.data.Dataset.from_tensors(("a", 0)).take(0),
            },
            "at least one example",
        ),
        (
            {
                "k": 1,
                "dataset": tf.data.Dataset.from_tensors(("a", -1)),
            },
            "Received: a label of -1",
        ),
    ],
)
def test_few_shot_refuses_bad_arguments(kwargs, message):
    kwargs = {"dataset": labelled_texts(), "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        data_lib.few_shot(**kwargs)


# === FewShotMethod ===


def test_methods_configure_what_trains():
    def trainable(model):
        return sum(int(np.prod(v.shape)) for v in model.trainable_weights)

    full = testing.small_bert_classifier()
    everything = trainable(full)
    assert recipes.FewShotMethod.full()(full) is full
    probe = recipes.FewShotMethod.linear_probe()(
        testing.small_bert_classifier()
    )
    assert not probe.backbone.trainable
    head = trainable(probe)
    assert 0 < head < everything
    lora = recipes.FewShotMethod.lora(rank=2)(testing.small_bert_classifier())
    assert head < trainable(lora) < everything
    assert any("lora" in v.path for v in lora.trainable_weights)
    keras.utils.set_random_seed(0)
    prompt = recipes.FewShotMethod.prompt(length=3)(
        testing.small_bert_classifier()
    )
    assert any("prompt" in v.path for v in prompt.trainable_weights)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"learning_rate": 0}, "Received: learning_rate=0"),
        ({"learning_rate": 1e-3, "configure": "lora"}, "configure='lora'"),
        ({"learning_rate": 1e-3, "note": 3}, "Received: note=3"),
    ],
)
def test_method_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        recipes.FewShotMethod(**kwargs)


def test_linear_probe_needs_a_backbone():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="has none"):
        recipes.FewShotMethod.linear_probe()(model)


# === few_shot_curve ===

FULL = recipes.FewShotMethod(learning_rate=1e-3)


class Recorder:
    """A `build` that keeps every model it builds."""

    def __init__(self):
        self.models = []

    def __call__(self):
        model = testing.small_bert_classifier(sequence_length=8)
        self.models.append(model)
        return model


@pytest.fixture(scope="module")
def curve_run():
    build = Recorder()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        curve = recipes.few_shot_curve(
            build,
            binary_data(),
            ks=(4, 1),
            seeds=[0],
            methods={"full": FULL},
            steps=3,
            batch_size=4,
            jit_compile=True,
        )
    return curve, build, output.getvalue()


def test_curve_runs_every_method_k_and_seed(curve_run):
    curve, build, output = curve_run
    assert [(r["method"], r["k"], r["seed"]) for r in curve.runs] == [
        ("full", 1, 0),
        ("full", 4, 0),
    ]
    assert len(build.models) == 2
    # Batch size 4, but two examples only at k=1.
    assert [r["train_examples"] for r in curve.runs] == [2, 8]
    assert [r["batch_size"] for r in curve.runs] == [2, 4]
    for run in curve.runs:
        assert 0 <= run["macro_f1"] <= 1
        # Scored on the 20 test examples.
        assert run["accuracy"] * 20 == pytest.approx(
            round(run["accuracy"] * 20)
        )
    lines = output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("full k=1 seed=0: test accuracy ")


def test_curve_runs_are_reproducible(curve_run):
    curve, build, _ = curve_run
    again = Recorder()
    repeat = recipes.few_shot_curve(
        again,
        binary_data(),
        ks=(4,),
        seeds=[0],
        methods={"full": FULL},
        steps=3,
        batch_size=4,
        jit_compile=True,
        verbose=0,
    )
    before = testing.small_bert_classifier(sequence_length=8)
    trained = build.models[1].get_weights()
    for ours, theirs in zip(
        trained, again.models[0].get_weights(), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    assert any(
        not np.array_equal(w, s)
        for w, s in zip(trained, before.get_weights(), strict=True)
    )
    assert repeat.runs[0]["accuracy"] == curve.runs[1]["accuracy"]


def test_curve_table_json_and_plot(curve_run, tmp_path):
    curve = curve_run[0]
    table = str(curve)
    assert "| method" in table and "k=1" in table and "k=4" in table
    full = curve.scores("full", 4)[0]
    assert f"{full:.3f} ± 0.000" in table
    assert curve.summary()["full"][1]["accuracy"] == (
        curve.scores("full", 1)[0],
        0.0,
    )
    restored = recipes.FewShotCurve.from_dict(
        json.loads(json.dumps(curve.to_dict()))
    )
    assert restored.table("macro_f1") == curve.table("macro_f1")
    assert restored.settings["steps"] == 3
    assert restored.methods["full"]["learning_rate"] == 1e-3
    path = curve.plot(tmp_path / "img" / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curve_summarises_seeds_with_the_sample_std():
    runs = [
        {"method": "m", "k": 8, "seed": s, "accuracy": a, "macro_f1": a}
        for s, a in enumerate([0.6, 0.7, 0.8])
    ]
    curve = recipes.FewShotCurve(runs, {"m": {}})
    mean, std = curve.summary()["m"][8]["accuracy"]
    assert mean == pytest.approx(0.7)
    assert std == pytest.approx(0.1)
    assert "0.700 ± 0.100" in curve.table()


@pytest.mark.parametrize(
    "runs, message",
    [
        ([{"method": "m", "k": 1, "seed": 0}], "accuracy"),
        (
            [{"method": "x", "k": 1, "seed": 0, "accuracy": 1, "macro_f1": 1}],
            "does not list",
        ),
        (
            [{"method": "m", "k": 1, "seed": 0, "accuracy": 1, "macro_f1": 1}]
            * 2,
            "only once",
        ),
    ],
)
def test_curve_result_refuses_bad_runs(runs, message):
    with pytest.raises(ValueError, match=message):
        recipes.FewShotCurve(runs, {"m": {}})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"build": "bert"}, "Received: build='bert'"),
        ({"data": labelled_texts()}, "TextClassificationData"),
        ({"ks": 8}, "Received: ks=8"),
        ({"ks": [4, 0]}, r"Received: ks=\[4, 0\]"),
        ({"ks": [4, 4]}, r"Received: ks=\[4, 4\]"),
        ({"seeds": 0}, "Received: seeds=0"),
        ({"seeds": [0, -1]}, r"Received: seeds=\[0, -1\]"),
        ({"methods": {}}, "Received: methods={}"),
        ({"methods": {"full": 1e-3}}, r"Received: methods\['full'\]=0.001"),
        ({"steps": 0}, "Received: steps=0"),
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"verbose": 2}, "Received: verbose=2"),
        # The train split has 50 examples of each class.
        ({"ks": [8, 51]}, "Received: k=51"),
    ],
)
def test_curve_refuses_bad_arguments_before_building(kwargs, message):
    build = Recorder()
    kwargs = {"build": build, "data": binary_data(), **kwargs}
    with pytest.raises(ValueError, match=message):
        recipes.few_shot_curve(**kwargs)
    assert not build.models
