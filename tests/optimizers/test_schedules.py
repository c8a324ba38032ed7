import math

import keras
import numpy as np
import pytest

from kfinetune import testing
from kfinetune.optimizers import schedules


def values(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_warmup_linear_decay():
    s = schedules.WarmupLinearDecay(1.0, warmup_steps=10, total_steps=110)
    np.testing.assert_allclose(
        values(s, [0, 5, 10, 60, 110, 200]), [0, 0.5, 1, 0.5, 0, 0], atol=1e-6
    )
    s = schedules.WarmupLinearDecay(
        2.0, warmup_steps=0, total_steps=10, end_learning_rate=1.0
    )
    np.testing.assert_allclose(values(s, [0, 5, 10]), [2, 1.5, 1], atol=1e-6)


def test_warmup_cosine_decay():
    s = schedules.WarmupCosineDecay(
        1.0, warmup_steps=10, total_steps=110, final_fraction=0.1
    )
    mid = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))
    np.testing.assert_allclose(
        values(s, [0, 5, 10, 60, 110, 500]),
        [0, 0.5, 1, mid, 0.1, 0.1],
        atol=1e-6,
    )


def test_slanted_triangular_matches_ulmfit():
    s = schedules.SlantedTriangular(0.01, total_steps=1000, cut_frac=0.1)
    low = 0.01 / 32
    np.testing.assert_allclose(
        values(s, [0, 100, 550, 1000]),
        [low, 0.01, 0.01 * (1 + 0.5 * 31) / 32, low],
        rtol=1e-5,
    )
    assert values(s, [50])[0] == pytest.approx(0.01 * (1 + 0.5 * 31) / 32)


def test_one_cycle_matches_pytorch_defaults():
    s = schedules.OneCycle(1.0, total_steps=100, pct_start=0.25)
    start, end = 1 / 25, 1 / 25 / 1e4
    np.testing.assert_allclose(
        values(s, [0, 25, 100]), [start, 1.0, end], rtol=1e-4, atol=1e-7
    )
    rising = values(s, range(0, 26))
    assert np.all(np.diff(rising) > 0)
    falling = values(s, range(25, 101))
    assert np.all(np.diff(falling) < 0)


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.WarmupLinearDecay(1e-3, 10, 100, 1e-5),
        schedules.WarmupCosineDecay(1e-3, 10, 100, 0.1),
        schedules.SlantedTriangular(1e-3, 100, 0.2, 16),
        schedules.OneCycle(1e-3, 100, 0.3, 10.0, 100.0),
    ],
)
def test_config_round_trip_and_training_under_xla(schedule):
    revived = testing.assert_config_round_trip(schedule)
    np.testing.assert_allclose(
        values(revived, [0, 7, 50, 99]), values(schedule, [0, 7, 50, 99])
    )
    x = testing.small_bert_inputs(batch_size=8)
    y = (np.arange(8) % 2).astype("int32")
    losses, _ = testing.fit_and_predict(
        testing.small_bert_classifier,
        x,
        y,
        steps=3,
        jit_compile=True,
        optimizer=lambda: keras.optimizers.AdamW(schedule),
    )
    assert np.all(np.isfinite(losses))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: schedules.WarmupLinearDecay(1e-3, 100, 100), "warmup_steps"),
        (lambda: schedules.WarmupLinearDecay(1e-3, 200, 100), "never end"),
        (lambda: schedules.WarmupLinearDecay(0, 1, 10), "peak_learning_rate=0"),
        (lambda: schedules.WarmupLinearDecay(1e-3, -1, 10), "warmup_steps=-1"),
        (lambda: schedules.WarmupLinearDecay(1e-3, 1, 10, 1.0), "end_learning"),
        (lambda: schedules.WarmupCosineDecay(1e-3, 10, 5), "never end"),
        (
            lambda: schedules.WarmupCosineDecay(1e-3, 1, 5, 1.5),
            "final_fraction",
        ),
        (lambda: schedules.SlantedTriangular(1e-3, 0), "total_steps=0"),
        (lambda: schedules.SlantedTriangular(1e-3, 100, 1.5), "cut_frac=1.5"),
        (lambda: schedules.SlantedTriangular(1e-3, 100, ratio=0.5), "ratio"),
        (lambda: schedules.SlantedTriangular(1e-3, 5, 0.1), "one step"),
        (lambda: schedules.OneCycle(1e-3, 100, pct_start=0), "pct_start=0"),
        (lambda: schedules.OneCycle(1e-3, 100, div_factor=-1), "div_factor"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
