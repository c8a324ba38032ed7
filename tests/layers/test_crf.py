import itertools

import keras
import numpy as np
import pytest

import kfinetune
from kfinetune import layers
from kfinetune import peft
from kfinetune import testing

NUM_LABELS = 5


def random_crf(num_labels, seed):
    rng = np.random.default_rng(seed)
    crf = layers.CRF(num_labels)
    crf.build((None, None, num_labels))
    for weight in crf.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return crf


def path_scores(crf, emissions):
    """The score of every tag path of one unpadded sequence."""
    transitions, start, end = (
        keras.ops.convert_to_numpy(w)
        for w in (crf.transitions, crf.start, crf.end)
    )
    time, num_labels = emissions.shape
    scores = {}
    for path in itertools.product(range(num_labels), repeat=time):
        scores[path] = (
            start[path[0]]
            + end[path[-1]]
            + sum(emissions[t, path[t]] for t in range(time))
            + sum(transitions[path[t - 1], path[t]] for t in range(1, time))
        )
    return scores


def log_sum_exp(values):
    values = np.asarray(values, "float64")
    top = values.max()
    return top + np.log(np.exp(values - top).sum())


CASES = [(t, n) for t in (1, 2, 3, 5) for n in (2, 3, 4)]


@pytest.mark.parametrize("time,num_labels", CASES)
def test_log_partition_and_viterbi_match_brute_force(time, num_labels):
    crf = random_crf(num_labels, seed=time * 10 + num_labels)
    rng = np.random.default_rng(time)
    emissions = rng.normal(size=(3, time, num_labels)).astype("float32")
    log_z = keras.ops.convert_to_numpy(crf.log_partition(emissions))
    tags = keras.ops.convert_to_numpy(crf.decode(emissions))
    gold = rng.integers(0, num_labels, (3, time))
    likelihood = keras.ops.convert_to_numpy(crf.log_likelihood(emissions, gold))
    for row in range(3):
        scores = path_scores(crf, emissions[row])
        expected = log_sum_exp(list(scores.values()))
        np.testing.assert_allclose(log_z[row], expected, atol=1e-5, rtol=0)
        assert tuple(tags[row]) == max(scores, key=scores.get)
        np.testing.assert_allclose(
            likelihood[row],
            scores[tuple(gold[row])] - expected,
            atol=1e-5,
            rtol=0,
        )


@pytest.mark.parametrize("padding", [1, 3])
def test_padding_changes_nothing(padding):
    crf = random_crf(4, seed=1)
    rng = np.random.default_rng(2)
    emissions = rng.normal(size=(2, 4, 4)).astype("float32")
    gold = rng.integers(0, 4, (2, 4))
    # Arbitrary potentials and tags at the padding.
    padded = np.concatenate(
        [emissions, 100 * rng.normal(size=(2, padding, 4))], axis=1
    ).astype("float32")
    padded_gold = np.concatenate(
        [gold, rng.integers(0, 4, (2, padding))], axis=1
    )
    mask = np.concatenate(
        [np.ones((2, 4)), np.zeros((2, padding))], axis=1
    ).astype("int32")
    # A mask of all ones is the same as no mask.
    np.testing.assert_allclose(
        crf.log_partition(emissions, np.ones((2, 4))),
        crf.log_partition(emissions),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        crf.log_partition(padded, mask),
        crf.log_partition(emissions),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        crf.log_likelihood(padded, padded_gold, mask),
        crf.log_likelihood(emissions, gold),
        atol=1e-5,
    )
    tags = keras.ops.convert_to_numpy(crf.decode(padded, mask))
    np.testing.assert_array_equal(tags[:, :4], crf.decode(emissions))
    np.testing.assert_array_equal(tags[:, 4:], 0)


def test_sequences_of_different_lengths_in_one_batch():
    crf = random_crf(3, seed=3)
    rng = np.random.default_rng(3)
    emissions = rng.normal(size=(3, 5, 3)).astype("float32")
    lengths = [5, 2, 1]
    mask = (np.arange(5)[None] < np.array(lengths)[:, None]).astype("int32")
    log_z = keras.ops.convert_to_numpy(crf.log_partition(emissions, mask))
    tags = keras.ops.convert_to_numpy(crf.decode(emissions, mask))
    for row, length in enumerate(lengths):
        scores = path_scores(crf, emissions[row, :length])
        expected = log_sum_exp(list(scores.values()))
        np.testing.assert_allclose(log_z[row], expected, atol=1e-5, rtol=0)
        assert tuple(tags[row, :length]) == max(scores, key=scores.get)


def test_loss_is_negative_log_likelihood_and_decodes_in_inference():
    crf = random_crf(3, seed=4)
    rng = np.random.default_rng(4)
    emissions = rng.normal(size=(2, 4, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], "int32")
    gold = np.array([[0, 1, 2, 1], [2, 2, -1, -1]])
    packed = crf(emissions, mask=mask, training=True)
    loss = layers.CRFLoss(reduction=None)(gold, packed)
    expected = -keras.ops.convert_to_numpy(
        crf.log_likelihood(emissions, gold, mask)
    )
    np.testing.assert_allclose(loss, expected, atol=1e-5)
    tags = crf(emissions, mask=mask)
    np.testing.assert_array_equal(tags, crf.decode(emissions, mask))
    # On decoded tags (what `evaluate` sees) the loss is the error rate on
    # the tokens whose gold tag is not negative.
    error = layers.CRFLoss(reduction=None)(
        np.array([[0, 0, 0, 0], [1, 1, -1, -1]]),
        np.array([[0, 0, 1, 1], [1, 0, 0, 0]]),
    )
    np.testing.assert_allclose(error, [0.5, 0.5])


@pytest.mark.parametrize("num_labels", [1, 0, 2.0, True, "3"])
def test_rejects_bad_num_labels(num_labels):
    with pytest.raises(ValueError, match="num_labels="):
        layers.CRF(num_labels)


@pytest.mark.parametrize("shape", [(None, 3), (None, 4, 3), (None, 2, 4, 4)])
def test_rejects_bad_input_shape(shape):
    with pytest.raises(ValueError, match=r"input_shape=\(None"):
        layers.CRF(4).build(shape)


def test_loss_rejects_bad_shapes():
    crf = random_crf(3, seed=0)
    packed = crf(np.zeros((2, 4, 3), "float32"), training=True)
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 4, 1\)"):
        layers.CRFLoss()(np.zeros((2, 4, 1)), packed)


def tagger(seed=0):
    backbone = testing.small_bert_backbone(seed=seed)
    inputs = backbone.input
    hidden = backbone(inputs)["sequence_output"]
    emissions = keras.layers.Dense(NUM_LABELS, name="emissions")(hidden)
    tags = layers.CRF(NUM_LABELS, name="crf")(
        emissions, mask=inputs["padding_mask"]
    )
    return keras.Model(inputs, tags)


def tagging_data(sequence_length=16):
    x = testing.small_bert_inputs(batch_size=8, sequence_length=sequence_length)
    # Tags that depend on the token: learnable in a few steps.
    y = np.where(x["padding_mask"] > 0, x["token_ids"] % NUM_LABELS, -1)
    return x, y.astype("int32")


def adam():
    return keras.optimizers.Adam(3e-3)


def test_whole_cycle(tmp_path):
    x, y = tagging_data()
    model = tagger()
    testing.compile_and_build(model, optimizer=adam(), loss=layers.CRFLoss())
    history = model.fit(x, y, batch_size=8, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    tags = model.predict(x, verbose=0)
    assert tags.shape == (8, 16) and tags.dtype == np.int32
    np.testing.assert_array_equal(tags[x["padding_mask"] == 0], 0)
    # On decoded tags `evaluate` reports each sentence's tag error rate,
    # averaged. Rows 0-3 are scored against tags that are all wrong, so the
    # rate is known to be far from 0 whatever the training reached.
    valid = y >= 0
    scored = np.where(valid, y, -1)
    scored[:4] = np.where(valid[:4], (tags[:4] + 1) % NUM_LABELS, -1)
    errors = ((tags != scored) & valid).sum(axis=1) / valid.sum(axis=1)
    assert errors[:4].tolist() == [1.0] * 4
    np.testing.assert_allclose(
        model.evaluate(x, scored, verbose=0), errors.mean(), atol=1e-6
    )
    reloaded = testing.assert_keras_round_trip(model, x, str(tmp_path), atol=0)
    assert isinstance(reloaded.get_layer("crf"), layers.CRF)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), tags)
    testing.assert_saved_model_round_trip(
        model, x, str(tmp_path / "export"), atol=0
    )


def test_jit_compile_fit_matches_eager():
    # A short sequence: the CRF's loop over time is unrolled for XLA.
    x, y = tagging_data(sequence_length=8)
    testing.assert_jit_compile_consistent(
        tagger, x, y, steps=3, loss=layers.CRFLoss(), optimizer=adam
    )


def test_fit_with_lora_applied():
    x, y = tagging_data()
    base = tagger()
    crf = base.get_layer("crf")
    transitions = keras.ops.convert_to_numpy(crf.transitions)
    model = peft.apply(
        base,
        peft.LoRAConfig(
            rank=2,
            targets=r".*(query|value)",
            trainable=["emissions", "crf"],
        ),
    )
    assert any("lora" in w.path for w in model.trainable_weights)
    testing.compile_and_build(model, optimizer=adam(), loss=layers.CRFLoss())
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert not np.allclose(crf.transitions, transitions)
    assert model.predict(x, verbose=0).shape == (8, 16)


def test_trains_under_mixed_bfloat16():
    x, y = tagging_data(sequence_length=8)
    with testing.dtype_policy("mixed_bfloat16"):
        model = tagger()
        testing.compile_and_build(
            model, optimizer=adam(), loss=layers.CRFLoss()
        )
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
        tags = model.predict(x, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert model.get_layer("crf").transitions.dtype == "float32"
    assert tags.dtype == np.int32


def chain_case(seed=3):
    """Emissions, padding mask and chain mask of two sequences, whose chains
    skip the first position ([CLS]) and continuation positions."""
    rng = np.random.default_rng(seed)
    emissions = rng.normal(size=(2, 7, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0]])
    chain = np.array([[0, 1, 0, 0, 1, 0, 0], [0, 1, 1, 0, 0, 0, 0]])
    return emissions, mask, chain


def test_chain_mask_links_the_chain_positions_only():
    crf = random_crf(3, seed=4)
    emissions, mask, chain = chain_case()
    tags = np.array([[0, 2, 1, 1, 1, 0, -1], [0, 1, 2, 0, -1, -1, -1]])
    packed = crf(emissions, mask=mask, chain_mask=chain, training=True)
    loss = keras.ops.convert_to_numpy(
        layers.CRFLoss(reduction=None)(tags, packed)
    )
    # By hand: the chain is positions (1, 4) and (1, 2).
    chains = [[1, 4], [1, 2]]
    for row, positions in enumerate(chains):
        expected = -crf.log_likelihood(
            emissions[row, positions][None], tags[row, positions][None]
        )
        np.testing.assert_allclose(loss[row], expected[0], atol=1e-5)
    # Tags and emissions off the chain change nothing.
    other = np.where(chain == 0, (tags + 1) % 3, tags)
    noise = np.where(chain[..., None] == 0, 50.0, 0.0).astype("float32")
    packed = crf(emissions + noise, mask=mask, chain_mask=chain, training=True)
    np.testing.assert_allclose(
        layers.CRFLoss(reduction=None)(other, packed), loss, atol=1e-5
    )

    decoded = keras.ops.convert_to_numpy(
        crf(emissions, mask=mask, chain_mask=chain)
    )
    for row, positions in enumerate(chains):
        best = keras.ops.convert_to_numpy(
            crf.decode(emissions[row, positions][None])
        )[0]
        # Each position repeats the tag of the chain position before it;
        # [CLS] (before the chain) and padding get 0.
        first, second = best
        stop = int(mask[row].sum())
        expected = [0] + [first] * (positions[1] - 1)
        expected += [second] * (stop - positions[1])
        expected += [0] * (7 - stop)
        assert decoded[row].tolist() == expected


def test_decode_potentials_gives_the_inference_tags():
    from kfinetune.layers import crf as crf_module

    crf = random_crf(3, seed=5)
    emissions, mask, chain = chain_case(seed=6)
    for chain_mask in (None, chain):
        packed = crf(emissions, mask=mask, chain_mask=chain_mask, training=True)
        np.testing.assert_array_equal(
            crf_module.decode_potentials(packed),
            crf(emissions, mask=mask, chain_mask=chain_mask),
        )


CONSTRAINED_TAGS = ("O", "B-X", "I-X")


def constrained_crf(seed):
    constraints = kfinetune.data.tag_constraints(CONSTRAINED_TAGS, "IOB2")
    crf = layers.CRF(3, constraints=constraints)
    crf.build((None, None, 3))
    rng = np.random.default_rng(seed)
    for weight in crf.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return crf, constraints


def test_constraints_remove_forbidden_paths_from_likelihood_and_decoding():
    crf, constraints = constrained_crf(seed=7)
    allowed = np.asarray(constraints["transitions"])
    rng = np.random.default_rng(8)
    # Emissions that favour I-X everywhere, the forbidden start included.
    emissions = rng.normal(size=(4, 4, 3)).astype("float32")
    emissions[..., 2] += 3.0
    log_z = keras.ops.convert_to_numpy(crf.log_partition(emissions))
    tags = keras.ops.convert_to_numpy(crf.decode(emissions))
    for row in range(4):
        scores = {
            path: score
            for path, score in path_scores(crf, emissions[row]).items()
            if constraints["start"][path[0]]
            and all(allowed[a, b] for a, b in itertools.pairwise(path))
        }
        np.testing.assert_allclose(
            log_z[row], log_sum_exp(list(scores.values())), atol=1e-4
        )
        assert tuple(tags[row]) == max(scores, key=scores.get)
        assert tags[row][0] != 2


def test_constraints_survive_the_config_and_are_checked():
    crf, constraints = constrained_crf(seed=9)
    revived = layers.CRF.from_config(crf.get_config())
    assert revived.constraints == constraints
    with pytest.raises(ValueError, match="keys 'transitions', 'start'"):
        layers.CRF(3, constraints={"transitions": constraints["transitions"]})
    with pytest.raises(ValueError, match=r"constraints\['start'\].*\(3,\)"):
        layers.CRF(3, constraints={**constraints, "start": [True, False]})
    with pytest.raises(ValueError, match="at least one start"):
        layers.CRF(3, constraints={**constraints, "start": [False] * 3})


def test_a_mask_with_holes_links_the_unmasked_positions():
    crf = random_crf(3, seed=10)
    rng = np.random.default_rng(11)
    emissions = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.array([[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 0, 0]])
    tags = rng.integers(0, 3, (2, 6))
    log_z = keras.ops.convert_to_numpy(crf.log_partition(emissions, mask))
    likelihood = keras.ops.convert_to_numpy(
        crf.log_likelihood(emissions, tags, mask)
    )
    decoded = keras.ops.convert_to_numpy(crf.decode(emissions, mask))
    packed = crf(emissions, mask=mask, training=True)
    loss = keras.ops.convert_to_numpy(
        layers.CRFLoss(reduction=None)(tags, packed)
    )
    for row in range(2):
        kept = np.flatnonzero(mask[row])
        scores = path_scores(crf, emissions[row, kept])
        expected = log_sum_exp(list(scores.values()))
        np.testing.assert_allclose(log_z[row], expected, atol=1e-5)
        gold = scores[tuple(tags[row, kept])] - expected
        np.testing.assert_allclose(likelihood[row], gold, atol=1e-5)
        np.testing.assert_allclose(loss[row], -gold, atol=1e-5)
        best = max(scores, key=scores.get)
        assert tuple(decoded[row, kept]) == best
        assert not decoded[row, mask[row] == 0].any()
    np.testing.assert_array_equal(crf(emissions, mask=mask), decoded)
