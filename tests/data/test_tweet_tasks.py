"""The tagging and question answering tasks made from the bundled tweets."""

import pytest

from kfinetune import data
from kfinetune.data import tweet_tags


def test_case_spans_tag_what_the_author_capitalised_mid_sentence():
    words = "@united Flew to JFK with Southwest Airlines . I LOVE it".split()
    sentences, tags = tweet_tags.case_spans([" ".join(words)])
    assert sentences == [[w.lower() for w in words]]
    # The first word after the mention starts the sentence; so does the
    # word after ".". "I" is never a span.
    assert tags == [
        ["O", "O", "O", "B-ACRONYM", "O", "B-NAME", "I-NAME", "O", "O"]
        + ["B-ACRONYM", "O"]
    ]
    # Shouting tweets are left out.
    assert tweet_tags.case_spans(["WHY IS MY FLIGHT LATE again"]) == ([], [])


def test_punctuation_marks_tag_the_mark_after_each_word():
    sentences, tags = tweet_tags.punctuation_marks(
        ["Late again, really?! thanks ..."]
    )
    assert sentences == [["late", "again", "really", "thanks"]]
    assert tags == [["O", "B-COMMA", "B-QUESTION", "B-PERIOD"]]


@pytest.mark.parametrize("task", ["case", "punctuation"])
def test_tweet_tagging_splits(task):
    splits = data.tweet_tagging(
        task, seed=1, train_size=200, validation_size=50, test_size=100
    )
    tag_names = tweet_tags.TASKS[task][0]
    for name, size in (("train", 200), ("validation", 50), ("test", 100)):
        split = splits[name]
        assert split.tag_names == tag_names
        # Shouting tweets are left out: a few fewer than drawn.
        assert 0.9 * size <= len(split.sentences) <= size
        for words, tags in zip(split.sentences, split.tags, strict=True):
            assert len(words) == len(tags)
            assert all(word == word.lower() for word in words)
            data.check_tags(tags, "IOB2")
    train = set(splits["train"].sentences)
    assert not train & set(splits["test"].sentences)
    again = data.tweet_tagging(
        task, seed=1, train_size=200, validation_size=50, test_size=100
    )
    assert again == splits


def test_tweet_questions_answers_are_spans_of_their_contexts():
    splits = data.tweet_questions(
        seed=0, train_size=20, validation_size=5, test_size=10
    )
    assert {name: len(split) for name, split in splits.items()} == {
        "train": 20,
        "validation": 5,
        "test": 10,
    }
    for examples in splits.values():
        for n, example in enumerate(examples):
            assert example.is_impossible == (n % 5 == 0)
            asked = example.question.split()[2]
            if example.is_impossible:
                assert example.answers == ()
                assert f"{asked} wrote:" not in example.context
                continue
            (answer,), (start,) = example.answers, example.answer_starts
            assert example.context[start : start + len(answer)] == answer
            assert answer.startswith("@")
            # The answer is in the tweet of the person asked about.
            tweet = example.context.split(f"{asked} wrote: ")[1]
            assert tweet.startswith(answer) or f" {answer}" in tweet
    train = {e.context for e in splits["train"]}
    assert not train & {e.context for e in splits["test"]}
    assert (
        data.tweet_questions(
            seed=0, train_size=20, validation_size=5, test_size=10
        )
        == splits
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: data.tweet_tagging("ner"), "task"),
        (lambda: data.tweet_tagging(train_size=0), "train_size"),
        (lambda: data.tweet_questions(train_size=0), "train_size"),
        (lambda: data.tweet_questions(test_size=-1), "test_size"),
        (lambda: data.tweet_questions(seed=-1), "seed"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=f"Received: {message}="):
        call()
