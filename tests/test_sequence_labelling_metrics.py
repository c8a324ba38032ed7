import numpy as np
import pytest

from kfinetune import evaluation


def test_bio_spans_as_seqeval_strict_reads_them():
    tags = ["B-PER", "I-PER", "I-LOC", "I-LOC", "B-LOC", "B-LOC", "O", "I-X"]
    # A stray `I-` (no `B-` before it) starts nothing in strict mode.
    assert evaluation.extract_entities(tags) == [
        ("PER", 0, 2),
        ("LOC", 4, 5),
        ("LOC", 5, 6),
    ]


def test_iobes_spans_need_an_end():
    tags = ["S-PER", "B-LOC", "I-LOC", "E-LOC", "B-ORG", "I-ORG", "O"]
    tags += ["B-PER", "E-LOC", "B-X", "E-X", "E-X"]
    assert evaluation.extract_entities(tags, scheme="IOBES") == [
        ("PER", 0, 1),
        ("LOC", 1, 4),
        ("X", 9, 11),
    ]


def test_report_by_hand():
    y_true = [
        ["B-PER", "I-PER", "O", "B-LOC"],
        ["B-ORG", "O", "B-PER"],
    ]
    y_pred = [
        ["B-PER", "I-PER", "O", "B-ORG"],
        ["B-ORG", "O", "B-PER"],
    ]
    report = evaluation.sequence_labelling_report(y_true, y_pred)
    assert report.entity_types == ("LOC", "ORG", "PER")
    assert report.support == (1, 1, 2)
    assert report.precision == (0.0, 0.5, 1.0)
    assert report.recall == (0.0, 1.0, 1.0)
    np.testing.assert_allclose(report.f1, (0.0, 2 / 3, 1.0))
    # 3 of 4 true entities found, 3 of 4 predicted ones right.
    assert report.micro_precision == report.micro_recall == 0.75
    assert report.micro_f1 == pytest.approx(0.75)
    assert report.macro_f1 == pytest.approx((0 + 2 / 3 + 1) / 3)
    assert report.macro_precision == pytest.approx(0.5)
    assert report.token_accuracy == pytest.approx(6 / 7)
    assert report.as_dict()["per_type"]["ORG"]["precision"] == 0.5
    text = str(report)
    assert "micro avg" in text and "token accuracy" in text


def test_report_plots_its_scores(tmp_path):
    report = evaluation.sequence_labelling_report(
        [["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]]
    )
    path = report.plot_scores(tmp_path / "entities.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_boundary_mismatch_is_a_miss():
    report = evaluation.sequence_labelling_report(
        [["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "O"]]
    )
    assert report.micro_f1 == 0.0
    assert report.token_accuracy == pytest.approx(2 / 3)


def random_tags(rng, scheme, sentences, length):
    prefixes = ["B", "I"] if scheme == "BIO" else ["B", "I", "E", "S"]
    vocabulary = ["O"] * 3 + [
        f"{p}-{t}" for p in prefixes for t in ("PER", "LOC", "ORG")
    ]
    return [
        list(rng.choice(vocabulary, int(rng.integers(1, length + 1))))
        for _ in range(sentences)
    ]


def corrupt(rng, sentences, scheme):
    """Predictions: the true tags with about a third of them redrawn."""
    noise = random_tags(rng, scheme, len(sentences), 1)
    pool = [tag for sentence in noise for tag in sentence] + ["O"]
    return [
        [tag if rng.random() > 0.3 else str(rng.choice(pool)) for tag in s]
        for s in sentences
    ]


@pytest.mark.parametrize("scheme", ["BIO", "IOBES"])
@pytest.mark.parametrize("seed", range(5))
def test_matches_seqeval_strict(scheme, seed):
    metrics = pytest.importorskip("seqeval.metrics")
    seqeval_scheme = pytest.importorskip("seqeval.scheme")
    rng = np.random.default_rng(seed)
    y_true = random_tags(rng, scheme, 40, 12)
    y_pred = corrupt(rng, y_true, scheme)
    report = evaluation.sequence_labelling_report(y_true, y_pred, scheme)
    expected = metrics.classification_report(
        y_true,
        y_pred,
        mode="strict",
        scheme=getattr(seqeval_scheme, "IOB2" if scheme == "BIO" else scheme),
        output_dict=True,
        zero_division=0,
    )
    per_type = report.as_dict()["per_type"]
    for name, values in per_type.items():
        for key in ("precision", "recall", "f1"):
            other = "f1-score" if key == "f1" else key
            assert values[key] == pytest.approx(expected[name][other])
        assert values["support"] == expected[name]["support"]
    for average in ("micro", "macro"):
        for key in ("precision", "recall", "f1"):
            assert getattr(report, f"{average}_{key}") == pytest.approx(
                expected[f"{average} avg"]["f1-score" if key == "f1" else key]
            )
    assert set(per_type) == set(expected) - {
        "micro avg",
        "macro avg",
        "weighted avg",
    }
    assert report.token_accuracy == pytest.approx(
        metrics.accuracy_score(y_true, y_pred)
    )


@pytest.mark.parametrize(
    "tag,scheme",
    [("E-PER", "BIO"), ("B-", "BIO"), ("PER", "BIO"), ("X-PER", "IOBES")],
)
def test_rejects_unknown_tags(tag, scheme):
    with pytest.raises(
        ValueError, match=rf"sentence 1, token 2.*y_pred\[1\]\[2\]='{tag}'"
    ):
        evaluation.sequence_labelling_report(
            [["O"], ["O", "O", "O"]], [["O"], ["O", "O", tag]], scheme
        )


def test_rejects_length_mismatches():
    with pytest.raises(
        ValueError, match="len\\(y_true\\)=2, len\\(y_pred\\)=1"
    ):
        evaluation.sequence_labelling_report([["O"], ["O"]], [["O"]])
    with pytest.raises(
        ValueError,
        match=r"Sentence 1 .*len\(y_true\[1\]\)=2, len\(y_pred\[1\]\)=3",
    ):
        evaluation.sequence_labelling_report(
            [["O"], ["O", "O"]], [["O"], ["O", "O", "O"]]
        )
    with pytest.raises(ValueError, match="Nothing to evaluate"):
        evaluation.sequence_labelling_report([], [])


def test_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="scheme='IOB1'"):
        evaluation.sequence_labelling_report([["O"]], [["O"]], "IOB1")
    with pytest.raises(ValueError, match="scheme='BILOU'"):
        evaluation.extract_entities(["O"], scheme="BILOU")
