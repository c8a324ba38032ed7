import pytest

from kfinetune import data
from kfinetune import qa


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The  Eiffel-Tower!", "eiffeltower"),
        ("An apple, a day.", "apple day"),
        ("Theater THE anthem", "theater anthem"),
        ("  ", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert qa.normalize_answer(text) == expected


def test_exact_match_is_max_over_gold_answers():
    assert qa.exact_match("The movie!", ["a film", "movie"]) == 1.0
    assert qa.exact_match("movies", ["movie"]) == 0.0


def test_f1_score_hand_computed():
    # [good, movie] vs [movie]: precision 1/2, recall 1, F1 2/3.
    assert qa.f1_score("a good movie", ["the movie"]) == pytest.approx(2 / 3)
    # Overlap counts repeats as often as both hold them: 1 good + 1 movie.
    assert qa.f1_score("good good movie", ["good movie movie"]) == (
        pytest.approx(2 / 3)
    )
    assert qa.f1_score("movie", ["night", "the movie"]) == 1.0
    assert qa.f1_score("night", ["movie"]) == 0.0


def test_unanswerable_matches_only_the_empty_prediction():
    assert qa.exact_match("", []) == 1.0
    assert qa.f1_score("", []) == 1.0
    assert qa.exact_match("movie", []) == 0.0
    assert qa.f1_score("movie", []) == 0.0
    assert qa.f1_score("", ["movie"]) == 0.0
    # Gold answers that normalise to nothing count as unanswerable.
    assert qa.exact_match("", ["the"]) == 1.0


def test_squad_scores_in_percent_and_missing_prediction_scores_zero():
    examples = [
        data.QAExample("a", "q", "the movie", ("the movie",), (0,)),
        data.QAExample("b", "q", "a good movie", ("movie",), (7,)),
        data.QAExample("c", "q", "no", (), (), is_impossible=True),
    ]
    scores = qa.squad_scores({"a": "movie", "b": "good movie"}, examples)
    assert scores["count"] == 3
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)


def test_squad_scores_empty_examples():
    with pytest.raises(ValueError, match="Received: examples=\\[\\]"):
        qa.squad_scores({}, [])


def test_squad_scores_by_kind_scores_answerable_and_unanswerable_apart(
    tmp_path,
):
    examples = [
        data.QAExample("a", "q", "the movie", ("the movie",), (0,)),
        data.QAExample("b", "q", "a good movie", ("movie",), (7,)),
        data.QAExample("c", "q", "no", (), (), is_impossible=True),
        data.QAExample("d", "q", "no", (), (), is_impossible=True),
    ]
    answers = {"a": "movie", "b": "good movie", "c": "", "d": "no"}
    scores = qa.squad_scores_by_kind(answers, examples)
    assert scores["all"] == qa.squad_scores(answers, examples)
    assert scores["answerable"] == {
        "exact_match": pytest.approx(50.0),
        "f1": pytest.approx(100 * (1 + 2 / 3) / 2),
        "count": 2,
    }
    assert scores["unanswerable"] == {
        "exact_match": 50.0,
        "f1": 50.0,
        "count": 2,
    }
    # Only the kinds a split holds.
    assert set(qa.squad_scores_by_kind(answers, examples[:2])) == {
        "all",
        "answerable",
    }
    path = qa.plot_scores(scores, tmp_path / "qa.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="Received: scores={}"):
        qa.plot_scores({}, tmp_path / "none.png")
