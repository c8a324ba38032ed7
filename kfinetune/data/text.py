"""Small text-cleaning helpers shared by the data loaders."""

import re

REPLACEMENT_CHARACTER = "\ufffd"

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


def strip_replacement_characters(text):
    """Removes every U+FFFD replacement character from a string.

    Decoding with `errors="replace"` turns each undecodable byte into
    U+FFFD; a model gains nothing from them, so the loaders drop them.

    Args:
        text: a string.

    Returns:
        `text` without U+FFFD characters.

    Example:

    ```python
    kfinetune.data.text.strip_replacement_characters("caf\\ufffd ok")
    # "caf ok"
    ```
    """
    return text.replace(REPLACEMENT_CHARACTER, "")


def strip_urls(text):
    """Replaces every `http://`, `https://` or `www.` URL with a space.

    A space rather than nothing keeps the words either side of the URL
    apart; `collapse_whitespace` removes the extra space afterwards.

    Args:
        text: a string.

    Returns:
        `text` with its URLs replaced by spaces.

    Example:

    ```python
    kfinetune.data.text.strip_urls("see https://t.co/x now")
    # "see   now"
    ```
    """
    return _URL.sub(" ", text)


def collapse_whitespace(text):
    """Collapses runs of whitespace into one space and strips both ends.

    Args:
        text: a string.

    Returns:
        `text` with single spaces between words and none at either end.

    Example:

    ```python
    kfinetune.data.text.collapse_whitespace("  so\\n\\tgood  ")
    # "so good"
    ```
    """
    return " ".join(text.split())
