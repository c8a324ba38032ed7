import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import data
from kfinetune import multitask
from kfinetune import peft
from kfinetune import testing

SEQUENCE_LENGTH = 16
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _heads():
    return {
        "sentiment": multitask.Classification(2, dropout=0.0),
        "tags": multitask.TokenClassification(3, dropout=0.0),
        "score": multitask.Regression(dropout=0.0),
    }


def _build(backbone=None):
    backbone = backbone or testing.small_bert_backbone()
    return multitask.build(backbone, heads=_heads())


def _compile(model, jit_compile=False, learning_rate=0.1):
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss={"sentiment": SPARSE, "tags": SPARSE, "score": "mse"},
        loss_weights={"sentiment": 1.0, "tags": 0.5, "score": 2.0},
        weighted_metrics={
            "sentiment": ["accuracy"],
            "tags": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            "score": ["mae"],
        },
        jit_compile=jit_compile,
    )


def _datasets(size=8):
    rng = np.random.default_rng(0)
    xs = [
        testing.small_bert_inputs(size, SEQUENCE_LENGTH, seed=s)
        for s in range(3)
    ]
    tags = rng.integers(0, 3, (size, SEQUENCE_LENGTH)).astype("int32")
    return {
        "sentiment": tf.data.Dataset.from_tensor_slices(
            (xs[0], rng.integers(0, 2, size).astype("int32"))
        ),
        # Per-token weights: padding counts in neither loss nor metrics.
        "tags": tf.data.Dataset.from_tensor_slices(
            (xs[1], tags, xs[1]["padding_mask"].astype("float32"))
        ),
        "score": tf.data.Dataset.from_tensor_slices(
            (xs[2], rng.normal(size=size).astype("float32"))
        ),
    }


def _train(size=8, seed=0):
    return data.mix(_datasets(size), seed=seed).batch(4, drop_remainder=True)


def test_build_makes_one_output_per_task_over_the_shared_backbone():
    model = _build()
    outputs = model.predict(testing.small_bert_inputs(4), verbose=0)
    assert outputs["sentiment"].shape == (4, 2)
    assert outputs["tags"].shape == (4, SEQUENCE_LENGTH, 3)
    assert outputs["score"].shape == (4, 1)
    shorthand = multitask.build(testing.small_bert_backbone(), {"topic": 5})
    assert shorthand.get_layer("topic").units == 5


def test_fit_on_a_mix_logs_per_task_losses_and_metrics():
    keras.utils.set_random_seed(0)
    model = _build()
    _compile(model)
    train = _train()
    multitask.check(model, train)
    history = model.fit(train, epochs=2, verbose=0)
    expected = {
        "loss",
        "sentiment_loss",
        "sentiment_accuracy",
        "tags_loss",
        "tags_accuracy",
        "score_loss",
        "score_mae",
    }
    assert expected <= set(history.history)
    assert all(np.isfinite(v).all() for v in history.history.values())


def test_per_task_metrics_count_only_the_tasks_own_examples():
    model = _build()
    _compile(model)
    mixed = data.mix(_datasets(), seed=0)
    logs = model.evaluate(mixed.batch(4), return_dict=True, verbose=0)
    x, y, w = (
        keras.tree.map_structure(np.asarray, part)
        for part in next(iter(mixed.batch(100)))
    )
    predicted = model.predict(x, verbose=0)
    own = w["sentiment"] > 0
    labels = np.argmax(predicted["sentiment"], -1)
    assert logs["sentiment_accuracy"] == pytest.approx(
        np.mean(labels[own] == y["sentiment"][own])
    )
    tokens = w["tags"] > 0
    tags = np.argmax(predicted["tags"], -1)
    assert logs["tags_accuracy"] == pytest.approx(
        np.mean(tags[tokens] == y["tags"][tokens])
    )
    own = w["score"] > 0
    error = predicted["score"][own, 0] - y["score"][own]
    assert logs["score_mae"] == pytest.approx(np.mean(np.abs(error)))


def test_a_batch_without_a_task_leaves_its_head_unchanged():
    backbone = testing.small_bert_backbone()
    model = _build(backbone)
    _compile(model)
    only_sentiment = data.mix(_datasets(), seed=0).filter(
        lambda x, y, w: w["sentiment"] > 0
    )
    before = {
        name: [w.numpy() for w in model.get_layer(name).weights]
        for name in ("sentiment", "tags", "score")
    }
    embeddings = backbone.weights[0].numpy()
    model.fit(only_sentiment.batch(4).take(1), verbose=0)
    for name in ("tags", "score"):
        after = model.get_layer(name).weights
        for old, new in zip(before[name], after, strict=True):
            np.testing.assert_array_equal(new.numpy(), old)
    changed = model.get_layer("sentiment").weights[0].numpy()
    assert not np.allclose(changed, before["sentiment"][0])
    assert not np.allclose(backbone.weights[0].numpy(), embeddings)


def test_keras_round_trip_and_saved_model_export(tmp_path):
    model = _build()
    _compile(model)
    model.fit(_train(), verbose=0)
    x = testing.small_bert_inputs(4)
    reloaded = testing.assert_keras_round_trip(model, x, str(tmp_path))
    assert sorted(reloaded.output) == ["score", "sentiment", "tags"]
    testing.assert_saved_model_round_trip(
        model, x, str(tmp_path / "saved_model")
    )


def test_jit_compile_matches_eager_training():
    def run(jit_compile):
        model = _build()
        _compile(model, jit_compile=jit_compile)
        history = model.fit(_train(size=12), verbose=0)
        return history.history["loss"], model.predict(
            testing.small_bert_inputs(4), verbose=0
        )

    eager, xla = run(False), run(True)
    np.testing.assert_allclose(xla[0], eager[0], atol=1e-4, rtol=1e-4)
    testing.assert_outputs_close(xla[1], eager[1], atol=1e-4)


TASKS = ("sentiment", "tags", "score")


def _lora(task_heads):
    return peft.LoRAConfig(
        rank=2, targets=r".*/(query|value)", trainable=list(task_heads)
    )


def test_peft_defaults_keep_every_task_head_trainable():
    # No `trainable=`: the heads are outside the keras-hub backbone, so
    # `peft.apply` keeps them training by default.
    model = peft.apply(_build(), peft.LoRAConfig(rank=2))
    assert sorted(model.adapters["default"].trainable) == sorted(TASKS)
    assert sorted(peft.task_heads(model.base)) == sorted(TASKS)
    base_paths = {
        v.path.split("/")[0]
        for v in model.trainable_weights
        if "lora_" not in v.path
    }
    assert base_paths == set(TASKS)
    _compile(model)
    before = {task: model.base.get_layer(task).get_weights() for task in TASKS}
    model.fit(_train(), epochs=2, verbose=0)
    for task in TASKS:
        after = model.base.get_layer(task).get_weights()
        assert not np.allclose(after[0], before[task][0]), task
    # `trainable=[]` freezes them.
    frozen = peft.apply(_build(), peft.LoRAConfig(rank=2, trainable=[]))
    assert all("lora_" in v.path for v in frozen.trainable_weights)


def test_lora_over_the_shared_backbone_trains_on_a_mix(tmp_path):
    backbone = testing.small_bert_backbone()
    model = peft.apply(_build(backbone), _lora(TASKS))
    _compile(model)
    frozen = backbone.weights[0].numpy()
    before = {v.path: v.numpy() for v in model.trainable_weights}
    assert {p.split("/")[0] for p in before} >= set(TASKS)
    train = _train()
    multitask.check(model, train)
    model.fit(train, epochs=2, verbose=0)
    for variable in model.trainable_weights:
        changed = not np.allclose(variable.numpy(), before[variable.path])
        assert changed, variable.path
    np.testing.assert_array_equal(backbone.weights[0].numpy(), frozen)
    x = testing.small_bert_inputs(4)
    testing.assert_keras_round_trip(model, x, str(tmp_path))
    testing.assert_saved_model_round_trip(
        model, x, str(tmp_path / "saved_model")
    )


def test_a_named_adapter_per_task_trains_with_its_head():
    model = _build()
    for task in TASKS:
        model = peft.apply(model, _lora([task]), name=task)
    _compile(model)
    peft.set_active(model, "tags")
    paths = {v.path for v in model.trainable_weights}
    assert {p.split("/")[0] for p in paths} == {
        "tags",
        "transformer_layer_0",
        "transformer_layer_1",
    }
    assert all("lora_tags" in p for p in paths if not p.startswith("tags/"))
    sentiment = model.base.get_layer("sentiment").weights[0].numpy()
    tags = model.base.get_layer("tags").weights[0].numpy()
    model.fit(_train(), verbose=0)
    np.testing.assert_array_equal(
        model.base.get_layer("sentiment").weights[0].numpy(), sentiment
    )
    assert not np.allclose(
        model.base.get_layer("tags").weights[0].numpy(), tags
    )
    peft.set_active(model, list(TASKS))
    heads = {v.path.split("/")[0] for v in model.trainable_weights}
    assert heads >= set(TASKS)


def test_evaluate_reports_each_task():
    model = _build()
    datasets = _datasets()
    results = multitask.evaluate(
        model, datasets, class_names={"sentiment": ["neg", "pos"]}
    )
    assert set(results) == {"sentiment", "tags", "score"}
    x, y = next(iter(datasets["sentiment"].batch(8)))
    predicted = np.argmax(model.predict(x, verbose=0)["sentiment"], -1)
    accuracy = np.mean(predicted == y.numpy())
    assert results["sentiment"]["accuracy"] == pytest.approx(accuracy)
    assert set(results["sentiment"]["per_class"]) == {"neg", "pos"}
    x, tags, weights = next(iter(datasets["tags"].batch(8)))
    predicted = np.argmax(model.predict(x, verbose=0)["tags"], -1)
    mask = weights.numpy() > 0
    assert results["tags"]["tokens"] == mask.sum()
    assert results["tags"]["token_accuracy"] == pytest.approx(
        np.mean(predicted[mask] == tags.numpy()[mask])
    )
    assert set(results["score"]) == {"mse", "mae", "pearson", "examples"}


def test_check_names_a_task_without_a_head_and_a_head_without_data():
    model = multitask.build(
        testing.small_bert_backbone(), {"sentiment": 2, "topic": 2}
    )
    sentiment = _datasets()["sentiment"]
    extra = data.mix(
        {"sentiment": sentiment, "topic": sentiment, "spam": sentiment}
    )
    with pytest.raises(ValueError, match="no head of that name.*task='spam'"):
        multitask.check(model, extra)
    missing = data.mix({"sentiment": sentiment})
    with pytest.raises(ValueError, match="no targets in the data.*'topic'"):
        multitask.check(model, missing)
    with pytest.raises(ValueError, match="dict of targets"):
        multitask.check(model, sentiment)
    with pytest.raises(ValueError, match="no head for task 'spam'"):
        multitask.evaluate(model, {"spam": sentiment})


@pytest.mark.parametrize(
    "heads, message",
    [
        ({}, "non-empty dict"),
        ({"sentiment": 1}, r"Received: heads\['sentiment'\]=1"),
        ({"sentiment": "two"}, r"Received: heads\['sentiment'\]='two'"),
        ({"2nd": 2}, "Received: task='2nd'"),
        ({"a": 2, "a_dropout": 2}, "Received: task='a_dropout'"),
        ({"a": 2, "a_mean": 2}, "Received: task='a_mean'"),
    ],
)
def test_build_rejects_bad_heads(heads, message):
    with pytest.raises(ValueError, match=message):
        multitask.build(testing.small_bert_backbone(), heads)


def test_build_rejects_a_task_named_like_the_backbone():
    backbone = testing.small_bert_backbone()
    with pytest.raises(ValueError, match=f"Received: task='{backbone.name}'"):
        multitask.build(backbone, {backbone.name: 2})


def test_build_rejects_a_task_model_and_names_its_backbone():
    classifier = testing.small_bert_classifier()
    with pytest.raises(ValueError, match=r"Pass its `.backbone`"):
        multitask.build(classifier, {"sentiment": 2})


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: multitask.Classification(1), "num_classes=1"),
        (lambda: multitask.TokenClassification(0), "num_labels=0"),
        (lambda: multitask.Regression(dropout=1.0), "dropout=1.0"),
    ],
)
def test_head_specs_validate_their_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_mean_pooling_head_reads_the_mean_over_the_padding_mask(tmp_path):
    backbone = testing.small_bert_backbone()
    model = multitask.build(
        backbone,
        {"score": multitask.Regression(dropout=0.0, pooling="mean")},
    )
    x = testing.small_bert_inputs(4, SEQUENCE_LENGTH, seed=1)
    mask = x["padding_mask"].astype("float32")[..., None]
    sequence = backbone.predict(x, verbose=0)["sequence_output"]
    mean = (sequence * mask).sum(1) / mask.sum(1)
    head = model.get_layer("score")
    expected = mean @ keras.ops.convert_to_numpy(head.kernel) + (
        keras.ops.convert_to_numpy(head.bias)
    )
    predicted = model.predict(x, verbose=0)["score"]
    np.testing.assert_allclose(predicted, expected, atol=1e-5)
    # Padding tokens do not count: changing them changes nothing.
    padded = dict(x, token_ids=np.where(x["padding_mask"], x["token_ids"], 7))
    np.testing.assert_allclose(
        model.predict(padded, verbose=0)["score"], predicted, atol=1e-5
    )
    model.save(tmp_path / "mean.keras")
    reloaded = keras.models.load_model(tmp_path / "mean.keras")
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0)["score"], predicted, atol=1e-5
    )


def test_a_backbone_of_another_family_is_refused_naming_the_supported():
    x = keras.Input((SEQUENCE_LENGTH, 8), name="features")
    backbone = keras_hub.models.Backbone(
        inputs=x, outputs={"sequence_output": keras.layers.Dense(8)(x)}
    )
    with pytest.raises(ValueError, match=r"RoBERTa \(RobertaBackbone\)"):
        multitask.build(
            backbone, {"s": multitask.Classification(pooling="mean")}
        )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: multitask.Classification(2, pooling="max"), "pooling='max'"),
        (lambda: multitask.Regression(pooling="cls"), "pooling='cls'"),
    ],
)
def test_sentence_heads_validate_their_pooling(make, message):
    with pytest.raises(ValueError, match=message):
        make()
