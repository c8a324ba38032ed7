import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import active
from kfinetune import data
from kfinetune import layers
from kfinetune import testing
from kfinetune.active import strategies

POSITIVE = "good great love loved best happy fun".split()
NEGATIVE = "bad awful hate hated worst sad boring".split()
NEUTRAL = "the a movie film day night this that it was is".split()


def _labelled_texts(size, seed):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(size):
        label = int(rng.integers(2))
        words = list(rng.choice(NEUTRAL, 4))
        words.insert(
            int(rng.integers(5)), rng.choice((NEGATIVE, POSITIVE)[label])
        )
        texts.append(" ".join(words))
        labels.append(label)
    return data.LabelledTexts(texts, labels, ("negative", "positive"))


POOL = _labelled_texts(48, seed=0)
TEXTS = list(POOL.texts)
# Monte-Carlo dropout passes: an option of "bald" alone.
PASSES = {s: ({"passes": 3} if s == "bald" else {}) for s in active.STRATEGIES}


def _classifier(dropout=0.1, compile_kwargs=None, num_layers=2):
    model = testing.small_bert_classifier(
        sequence_length=16, dropout=dropout, num_layers=num_layers
    )
    testing.compile_and_build(
        model,
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **(compile_kwargs or {}),
    )
    return model


@pytest.fixture(scope="module")
def model():
    return _classifier()


def _seed_states(model):
    weights = {id(v) for v in model.weights}
    return [np.array(v) for v in model.variables if id(v) not in weights]


def test_scores_of_known_probabilities():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(
        strategies.least_confidence(probabilities), [0.1, 0.6]
    )
    np.testing.assert_allclose(strategies.margin(probabilities), [0.2, 1.0])
    np.testing.assert_allclose(
        strategies.entropy(probabilities),
        [
            -0.9 * np.log(0.9) - 0.1 * np.log(0.1),
            -0.8 * np.log(0.4) - 0.2 * np.log(0.2),
        ],
    )
    # Two confident passes that disagree: all of the entropy is BALD's.
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(strategies.bald(disagree), [np.log(2)])
    # Two passes that agree on 50/50: entropy but no disagreement.
    agree = np.full((2, 1, 2), 0.5)
    np.testing.assert_allclose(strategies.bald(agree), [0.0], atol=1e-9)


def test_binary_uncertainty_strategies_rank_identically():
    positive = np.random.default_rng(0).random(100)
    probabilities = np.stack([1 - positive, positive], axis=-1)
    orders = [
        np.argsort(-score(probabilities), kind="stable")
        for score in strategies.UNCERTAINTY_SCORES.values()
    ]
    np.testing.assert_array_equal(orders[0], orders[1])
    np.testing.assert_array_equal(orders[0], orders[2])


def test_kcenter_greedy_picks_farthest_points_first():
    points = np.array([[0.0], [0.1], [5.0], [10.0], [10.2]])
    indices, scores = active.kcenter_greedy(points, 3, centers=[0])
    np.testing.assert_array_equal(indices, [4, 2, 3])
    np.testing.assert_allclose(scores, [10.2, 5.0, 0.2])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 5}, r"`n` must be an integer in \[1, 3\]. Received: n=5"),
        ({"centers": [4]}, r"indices of the 4 points. Received: centers=\[4\]"),
        ({"candidates": [0.5]}, r"Received: candidates=\[0.5\]"),
        ({"embeddings": np.zeros(4)}, r"shape \(points, dimensions\)"),
    ],
)
def test_bad_kcenter_arguments_raise(kwargs, message):
    arguments = {"embeddings": np.eye(4), "n": 2, "centers": [0], **kwargs}
    with pytest.raises(ValueError, match=message):
        active.kcenter_greedy(**arguments)


def test_kcenter_greedy_first_pick_is_seeded_without_centers():
    points = np.random.default_rng(0).normal(size=(30, 4))
    first, first_scores = active.kcenter_greedy(points, 5, seed=3)
    again, _ = active.kcenter_greedy(points, 5, seed=3)
    np.testing.assert_array_equal(first, again)
    assert np.isinf(first_scores[0])
    assert len(set(first)) == 5
    # Distances to the nearest center only shrink as centers are added.
    assert np.all(np.diff(first_scores[1:]) <= 0)


@pytest.mark.parametrize("strategy", active.STRATEGIES)
def test_query_never_returns_labelled_items(model, strategy):
    labelled = list(range(0, 48, 2))
    result = active.query(
        model,
        TEXTS,
        10,
        strategy=strategy,
        labelled=labelled,
        **PASSES[strategy],
    )
    assert result.strategy == strategy
    assert len(result) == 10 == len(set(result.indices.tolist()))
    assert not set(result.indices.tolist()) & set(labelled)
    assert result.indices.dtype == np.int64
    assert result.scores.shape == (10,)
    if strategy != "kcenter":
        assert np.all(np.diff(result.scores) <= 0)
    # Asking for every unlabelled item is allowed.
    everything = active.query(
        model,
        TEXTS,
        24,
        strategy=strategy,
        labelled=labelled,
        **PASSES[strategy],
    )
    assert sorted(everything.indices.tolist()) == list(range(1, 48, 2))


def test_entropy_scores_are_those_of_the_predictions(model):
    result = active.query(model, TEXTS, 48, strategy="entropy")
    logits = model.predict(np.array(TEXTS), verbose=0).astype(np.float64)
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = strategies.entropy(probabilities)
    np.testing.assert_allclose(
        result.scores, expected[result.indices], atol=1e-5
    )
    assert result.indices[0] == np.argmax(expected)


@pytest.mark.parametrize("strategy", ["random", "bald", "kcenter"])
def test_query_is_deterministic_for_a_seed(model, strategy):
    options = PASSES[strategy]
    first = active.query(model, TEXTS, 8, strategy=strategy, seed=1, **options)
    again = active.query(model, TEXTS, 8, strategy=strategy, seed=1, **options)
    other = active.query(model, TEXTS, 8, strategy=strategy, seed=2, **options)
    np.testing.assert_array_equal(first.indices, again.indices)
    np.testing.assert_array_equal(first.scores, again.scores)
    if strategy == "kcenter":
        # Only the random first center depends on the seed.
        assert first.indices[0] != other.indices[0]
    else:
        assert not np.array_equal(first.scores, other.scores)


def test_bald_restores_the_models_dropout_state(model):
    before = _seed_states(model)
    active.query(model, TEXTS, 4, strategy="bald", passes=2, seed=5)
    for old, new in zip(before, _seed_states(model), strict=True):
        np.testing.assert_array_equal(old, new)


def test_every_pool_form_gives_the_same_query(model):
    expected = active.query(model, TEXTS, 6, strategy="margin")
    pools = [
        POOL,
        tf.data.Dataset.from_tensor_slices(TEXTS),
        tf.data.Dataset.from_tensor_slices(TEXTS).batch(5),
    ]
    for pool in pools:
        result = active.query(model, pool, 6, strategy="margin")
        np.testing.assert_array_equal(result.indices, expected.indices)
        np.testing.assert_allclose(result.scores, expected.scores, atol=1e-6)


def test_generic_model_on_arrays_with_embed_and_probabilities():
    keras.utils.set_random_seed(0)
    inputs = np.random.default_rng(0).normal(size=(40, 6)).astype("float32")
    encoder = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    model = keras.Sequential(
        [encoder, keras.layers.Dropout(0.3), keras.layers.Dense(3, "softmax")]
    )
    for strategy in ("least_confidence", "bald"):
        result = active.query(
            model,
            inputs,
            5,
            strategy=strategy,
            from_logits=False,
            **PASSES[strategy],
        )
        assert len(set(result.indices.tolist())) == 5
    result = active.query(
        model,
        inputs,
        5,
        strategy="kcenter",
        embed=encoder.predict,
        labelled=[0],
    )
    expected, _ = active.kcenter_greedy(encoder.predict(inputs), 5, centers=[0])
    np.testing.assert_array_equal(result.indices, expected)
    # A dict of arrays is a pool too: one item per row.
    x = keras.Input((6,), name="x")
    pair = keras.Model({"x": x}, model(x))
    by_dict = active.query(
        pair, {"x": inputs}, 5, strategy="entropy", from_logits=False
    )
    by_array = active.query(
        model, inputs, 5, strategy="entropy", from_logits=False
    )
    np.testing.assert_array_equal(by_dict.indices, by_array.indices)


def test_query_under_xla_picks_what_the_plain_graph_picks():
    # Both models are built from seed 0: the same weights.
    model = _classifier(compile_kwargs={"jit_compile": True}, num_layers=1)
    plain = _classifier(num_layers=1)
    result = active.query(model, TEXTS, 5, strategy="least_confidence")
    expected = active.query(plain, TEXTS, 5, strategy="least_confidence")
    assert len(set(result.indices.tolist())) == 5
    np.testing.assert_array_equal(result.indices, expected.indices)
    np.testing.assert_allclose(result.scores, expected.scores, atol=1e-5)
    assert len(set(np.round(expected.scores, 4))) > 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 49}, r"48 items, 0 of them labelled, so 48 can be .* n=49"),
        (
            {"n": 40, "labelled": range(10)},
            r"48 items, 10 of them labelled, so 38 can be .* n=40",
        ),
        ({"n": 0}, r"`n` must be a positive integer. Received: n=0"),
        ({"strategy": "uncertainty"}, r"strategy='uncertainty'"),
        ({"labelled": [3, 48]}, r"outside the pool of 48 items, e.g. 48"),
        ({"labelled": [0.5]}, r"integer pool indices"),
        ({"strategy": "bald", "passes": 1}, r"Received: passes=1"),
        ({"passes": 3}, r"strategy='entropy' makes none. Received: passes=3"),
        ({"from_logits": "yes"}, r"Received: from_logits='yes'"),
        ({"strategy": "kcenter", "embed": "x"}, r"Received: embed='x'"),
        (
            {"strategy": "margin", "embed": len},
            r"strategy='margin' uses none. Received: embed=<built-in",
        ),
        ({"verbose": "auto"}, r"Received: verbose='auto'"),
    ],
)
def test_bad_query_arguments_raise(model, kwargs, message):
    arguments = {"n": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        active.query(model, TEXTS, **arguments)


@pytest.mark.parametrize(
    "pool, message",
    [
        ([], r"at least one item"),
        (["fine", 3], r"pool\[1\] is a int"),
        ("one text", r"Received: pool='one text'"),
        (
            tf.data.Dataset.from_tensor_slices((TEXTS, POOL.labels)),
            r"strings only \(not `\(text, label\)` pairs\)",
        ),
        ({"x": np.zeros(3), "y": np.zeros(4)}, r"lengths \{'x': 3, 'y': 4\}"),
    ],
)
def test_bad_pools_raise(model, pool, message):
    with pytest.raises(ValueError, match=message):
        active.query(model, pool, 1)


def test_errors_after_prediction_name_the_problem(model):
    with pytest.raises(ValueError, match="Received: from_logits=False"):
        active.query(model, TEXTS, 2, from_logits=False)
    without_dropout = _classifier(dropout=0.0)
    with pytest.raises(ValueError, match="every Monte-Carlo dropout pass"):
        active.query(without_dropout, TEXTS, 2, strategy="bald", passes=2)
    generic = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"family.*NoneType as.*embed=None"):
        active.query(generic, np.zeros((4, 3)), 2, strategy="kcenter")
    with pytest.raises(ValueError, match=r"shape \(4, dimensions\).*\(3, 2\)"):
        active.query(
            generic,
            np.zeros((4, 3)),
            2,
            strategy="kcenter",
            embed=lambda items: np.zeros((3, 2)),
        )


@pytest.mark.parametrize(
    "make_layer",
    [keras.layers.BatchNormalization, lambda: layers.Mixup(seed=0)],
    ids=["batchnorm", "mixup"],
)
def test_bald_refuses_layers_that_training_would_switch_on(make_layer):
    keras.utils.set_random_seed(0)
    inputs = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    layer = make_layer()
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(4),
            layer,
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3),
        ]
    )
    before = [v.numpy().copy() for v in model.variables]
    name = type(layer).__name__
    with pytest.raises(
        ValueError, match=rf"also change what {name} layers do.*{layer.path!r}"
    ):
        active.query(model, inputs, 2, strategy="bald")
    # Refused before anything ran: moving statistics, Mixup's last draw
    # and the dropout seed are where they were.
    for old, new in zip(before, model.variables, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    # The other strategies predict with `training=False`, where both layers
    # are inert.
    assert len(active.query(model, inputs, 2, strategy="entropy")) == 2


def _one_layer_classifier():
    return _classifier(num_layers=1)


def _simulate(strategy="entropy", budgets=(8, 16), **kwargs):
    if "train" not in kwargs:
        kwargs = {"epochs": 2, "batch_size": 8, **kwargs}
    return active.simulate(
        _one_layer_classifier,
        POOL,
        _labelled_texts(32, seed=1),
        budgets=budgets,
        strategy=strategy,
        verbose=0,
        **PASSES[strategy],
        **kwargs,
    )


def test_simulate_is_reproducible_and_plots(tmp_path, capsys):
    path = tmp_path / "curve.png"
    first = _simulate(strategy="bald", plot=path, seed=3)
    again = _simulate(strategy="bald", seed=3)
    assert first.budgets == (8, 16)
    assert first.accuracy == again.accuracy
    assert first.macro_f1 == again.macro_f1
    np.testing.assert_array_equal(first.labelled, again.labelled)
    assert len(set(first.labelled.tolist())) == 16
    # The seed set is a random draw of the first budget.
    np.testing.assert_array_equal(
        first.labelled[:8],
        np.random.default_rng(3).choice(len(POOL), 8, replace=False),
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out == ""


def test_simulate_warm_start_builds_once_and_prints_rounds(capsys):
    built = []

    def build():
        built.append(_one_layer_classifier())
        return built[-1]

    curve = active.simulate(
        build,
        POOL,
        _labelled_texts(32, seed=1).as_dataset(shuffle=False),
        budgets=[8, 16],
        strategy="kcenter",
        warm_start=True,
        epochs=1,
        batch_size=8,
    )
    assert len(built) == 1
    assert len(curve.accuracy) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("kcenter seed 0 round 2/2: 16 labels, test")


def test_simulate_trains_on_every_label_so_far_with_round_seeds():
    seen = []

    def train(model, labelled, seed):
        seen.append((len(labelled), seed))

    _simulate(strategy="random", budgets=(8, 16, 24), train=train, seed=4)
    assert seen == [(8, 4), (16, 5), (24, 6)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"budgets": (8, 8)}, r"strictly increasing .* budgets=\(8, 8\)"),
        ({"budgets": []}, r"budgets=\[\]"),
        ({"budgets": (8, 49)}, r"pool's 48 items. Received: budgets=\(8, 49\)"),
        ({"strategy": "bold"}, r"strategy='bold'"),
        ({"warm_start": 1}, r"warm_start=1"),
        ({"pool": TEXTS}, r"`pool` must be a non-empty"),
        (
            {"test": data.LabelledTexts(["x"], [0], ("a", "b"))},
            r"pool's classes \('negative', 'positive'\)",
        ),
        ({"test": TEXTS}, r"`test` must be a `LabelledTexts`"),
        ({"build": "bert"}, r"build='bert'"),
        ({"train": 3}, r"train=3"),
        ({"passes": 5}, r"strategy='entropy' makes none. Received: passes=5"),
        ({"strategy": "bald", "passes": 1}, r"Received: passes=1"),
        ({"embed": len}, r"strategy='entropy' uses none"),
        (
            {"train": lambda model, labelled, seed: None, "epochs": 3},
            r"a `train` function replaces.*Received: epochs=3 with train=",
        ),
        (
            {"train": lambda model, labelled, seed: None, "batch_size": 4},
            r"Received: batch_size=4 with train=",
        ),
    ],
)
def test_bad_simulate_arguments_raise_before_building(kwargs, message):
    built = []
    arguments = {
        "build": lambda: built.append(1),
        "pool": POOL,
        "test": POOL,
        "budgets": (8, 16),
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        active.simulate(**arguments)
    assert not built


def test_build_returning_no_model_raises():
    with pytest.raises(ValueError, match="`build` must return a Keras model"):
        active.simulate(lambda: None, POOL, POOL, budgets=[8], verbose=0)


def _curve(strategy, seed, accuracy, budgets=(10, 20)):
    return active.LearningCurve(
        strategy=strategy,
        seed=seed,
        budgets=budgets,
        accuracy=accuracy,
        macro_f1=accuracy,
        labelled=np.arange(budgets[-1]),
        seconds=(1.0,) * len(budgets),
    )


def test_save_learning_curves_averages_seeds(tmp_path):
    curves = [
        _curve("random", 0, (0.6, 0.7)),
        _curve("random", 1, (0.62, 0.74)),
        _curve("entropy", 0, (0.6, 0.8)),
    ]
    path = active.save_learning_curves(tmp_path / "c.png", curves)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="same `budgets`"):
        active.save_learning_curves(
            tmp_path / "d.png", [*curves, _curve("random", 2, (0.5,), (10,))]
        )
    with pytest.raises(ValueError, match="metric='loss'"):
        active.save_learning_curves(tmp_path / "e.png", curves, metric="loss")
    with pytest.raises(ValueError, match="non-empty list"):
        active.save_learning_curves(tmp_path / "f.png", [])
