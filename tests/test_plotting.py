import pytest
from matplotlib.image import imread

from kfinetune import plotting


def test_save_curves_writes_a_png_with_every_curve(tmp_path):
    path = plotting.save_curves(
        tmp_path / "plots" / "curve.png",
        [8, 16, 32],
        {
            "LoRA": ([0.6, 0.7, 0.8], [0.05, 0.03, 0.02]),
            "full": ([0.55, 0.72, 0.85], None),
        },
        xlabel="examples per class",
        ylabel="test accuracy",
        title="few-shot",
        logx=True,
    )
    image = imread(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.shape[0] > 100 and image.shape[1] > 100
    # Not a blank canvas: lines and bands were drawn.
    assert image[..., :3].std() > 0.05


def test_save_curves_refuses_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match=r"curves\['a'\] with 2 means"):
        plotting.save_curves(
            tmp_path / "c.png",
            [1, 2, 3],
            {"a": ([1, 2], None)},
            xlabel="x",
            ylabel="y",
        )
    with pytest.raises(ValueError, match="at least one curve"):
        plotting.save_curves(
            tmp_path / "c.png", [1], {}, xlabel="x", ylabel="y"
        )
    assert not (tmp_path / "c.png").exists()


def test_save_bars_draws_one_bar_per_series_and_group(tmp_path):
    path = plotting.save_bars(
        tmp_path / "bars.png",
        ["NAME", "ACRONYM", "all"],
        {"precision": [0.6, 0.7, 0.65], "F1": [0.5, 0.0, 0.4]},
        ylabel="score",
        title="entities",
        top=1.0,
    )
    image = imread(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image[..., :3].std() > 0.05


def test_save_bars_refuses_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match=r"bars\['F1'\] with 1 values"):
        plotting.save_bars(
            tmp_path / "b.png", ["a", "b"], {"F1": [1.0]}, ylabel="y"
        )
    with pytest.raises(ValueError, match="must not be empty"):
        plotting.save_bars(tmp_path / "b.png", [], {}, ylabel="y")
    assert not (tmp_path / "b.png").exists()
