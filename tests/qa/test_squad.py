import json

import pytest

from kfinetune import data

CONTEXT = "the movie was good and the night was fun"


def write(tmp_path, document, name="squad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def squad(qas, context=CONTEXT):
    return {
        "version": "v2.0",
        "data": [
            {"title": "t", "paragraphs": [{"context": context, "qas": qas}]}
        ],
    }


def test_from_squad_reads_v1_1(tmp_path):
    path = write(
        tmp_path,
        squad(
            [
                {
                    "id": "q1",
                    "question": "what was good",
                    "answers": [
                        {"text": "the movie", "answer_start": 0},
                        {"text": "movie", "answer_start": 4},
                    ],
                }
            ]
        ),
    )
    [example] = data.from_squad(path)
    assert example == data.QAExample(
        id="q1",
        question="what was good",
        context=CONTEXT,
        answers=("the movie", "movie"),
        answer_starts=(0, 4),
        is_impossible=False,
    )


def test_from_squad_reads_v2_0_unanswerable(tmp_path):
    path = write(
        tmp_path,
        squad(
            [
                {
                    "id": "q1",
                    "question": "what was fun",
                    "is_impossible": False,
                    "answers": [{"text": "the night", "answer_start": 23}],
                },
                {
                    "id": "q2",
                    "question": "what was bad",
                    "is_impossible": True,
                    "answers": [],
                    "plausible_answers": [{"text": "movie", "answer_start": 4}],
                },
            ]
        ),
    )
    first, second = data.from_squad(path)
    assert first.answers == ("the night",) and not first.is_impossible
    assert second.is_impossible
    assert second.answers == () and second.answer_starts == ()


def test_from_squad_answer_outside_context_names_id(tmp_path):
    path = write(
        tmp_path,
        squad(
            [
                {
                    "id": "q7",
                    "question": "what",
                    "answers": [{"text": "fun day", "answer_start": 36}],
                }
            ]
        ),
    )
    with pytest.raises(
        ValueError,
        match=r"(?s)squad\.json.*"
        r"data\[0\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\]"
        r".*'q7'.*Received: 36",
    ):
        data.from_squad(path)


def test_from_squad_answer_text_mismatch_names_id(tmp_path):
    path = write(
        tmp_path,
        squad(
            [
                {
                    "id": "q8",
                    "question": "what",
                    "answers": [{"text": "movie", "answer_start": 0}],
                }
            ]
        ),
    )
    with pytest.raises(ValueError, match="'q8'.*Received: 'movie'"):
        data.from_squad(path)


@pytest.mark.parametrize(
    "qa, match",
    [
        ({"question": "x", "answers": []}, r"qas\[0\].*`id` field"),
        ({"id": 3, "question": "x", "answers": []}, r"qas\[0\]\.id.*3"),
        ({"id": "q", "question": "x", "answers": []}, r"'q' has no answers"),
        (
            {"id": "q", "question": "x", "is_impossible": "yes", "answers": []},
            r"is_impossible.*a boolean.*'yes'",
        ),
        (
            {
                "id": "q",
                "question": "x",
                "is_impossible": True,
                "answers": [{"text": "the", "answer_start": 0}],
            },
            r"'q' is marked `is_impossible`",
        ),
        (
            {
                "id": "q",
                "question": "x",
                "answers": [{"text": "the", "answer_start": "0"}],
            },
            r"answers\[0\]\.answer_start.*an integer.*'0'",
        ),
    ],
)
def test_from_squad_malformed_question(tmp_path, qa, match):
    path = write(tmp_path, squad([qa]))
    with pytest.raises(ValueError, match=match):
        data.from_squad(path)


def test_from_squad_duplicate_id(tmp_path):
    qa = {"id": "q", "question": "x", "is_impossible": True, "answers": []}
    path = write(tmp_path, squad([qa, qa]))
    with pytest.raises(ValueError, match=r"qas\[1\]\.id.*duplicate.*'q'"):
        data.from_squad(path)


def test_from_squad_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON.*line 1"):
        data.from_squad(path)


def test_from_squad_missing_data(tmp_path):
    path = write(tmp_path, {"version": "1.1"})
    with pytest.raises(ValueError, match="top level.*`data` field"):
        data.from_squad(path)


def test_from_squad_unknown_encoding(tmp_path):
    path = write(tmp_path, squad([]))
    with pytest.raises(ValueError, match="Received: encoding='nope'"):
        data.from_squad(path, encoding="nope")
