"""Argument checks shared by every constructor and function.

Each check raises a `ValueError` that names the argument, says what it must
be, and ends with `Received: name=value`, before anything is changed.

Example:

```python
def __init__(self, rank, dropout=0.0):
    checks.positive_integer("rank", rank)
    checks.in_range("dropout", dropout, 0, 1)
```
"""

import codecs
import numbers


def _fail(name, requirement, value):
    raise ValueError(
        f"`{name}` must be {requirement}. Received: {name}={value!r}"
    )


def _is_integer(value):
    # `numbers.Integral` takes NumPy integers too.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_integer(name, value):
    """Checks that `value` is an integer greater than 0 (not a bool)."""
    if not _is_integer(value) or value <= 0:
        _fail(name, "a positive integer", value)


def non_negative_integer(name, value):
    """Checks that `value` is an integer of at least 0 (not a bool)."""
    if not _is_integer(value) or value < 0:
        _fail(name, "a non-negative integer", value)


def positive_number(name, value):
    """Checks that `value` is a number greater than 0 (not a bool)."""
    if not _is_number(value) or value <= 0:
        _fail(name, "positive", value)


def at_least(name, value, low, integer=False):
    """Checks that `value` is a number (an integer when `integer`) of at
    least `low`."""
    valid = _is_integer(value) if integer else _is_number(value)
    if not valid or value < low:
        kind = "an integer of at least" if integer else "at least"
        _fail(name, f"{kind} {low}", value)


def in_range(
    name, value, low, high, low_closed=True, high_closed=False, integer=False
):
    """Checks that `value` is a number between `low` and `high`.

    Args:
        name: the argument's name.
        value: the value received.
        low: the lower bound.
        high: the upper bound.
        low_closed: whether `low` itself is allowed. Defaults to `True`.
        high_closed: whether `high` itself is allowed. Defaults to `False`
            (so the defaults check `[low, high)`, e.g. a dropout rate).
        integer: also require an integer. Defaults to `False`.
    """
    valid = _is_integer(value) if integer else _is_number(value)
    if valid:
        above = value >= low if low_closed else value > low
        below = value <= high if high_closed else value < high
        valid = above and below
    if not valid:
        interval = (
            f"{'[' if low_closed else '('}{low}, {high}"
            f"{']' if high_closed else ')'}"
        )
        kind = "an integer in" if integer else "in"
        _fail(name, f"{kind} {interval}", value)


def one_of(name, value, choices):
    """Checks that `value` is one of `choices`."""
    try:
        valid = value in choices
    except TypeError:
        # An unhashable value cannot be a key of a dict of choices.
        valid = False
    if not valid:
        _fail(name, f"one of {list(choices)}", value)


def boolean(name, value):
    """Checks that `value` is `True` or `False`."""
    if not isinstance(value, bool):
        _fail(name, "True or False", value)


def text_encoding(name, value):
    """Checks that `value` names a text encoding Python knows."""
    try:
        codecs.lookup(value)
    except (LookupError, TypeError):
        _fail(name, "a known text encoding", value)


def unique_weight_paths(variables, purpose):
    """Checks that no two of `variables` share a path.

    A model holding two copies of a layer (a teacher and a student, two
    towers) has weights with equal paths, so values keyed by path would mix
    them up.

    Args:
        variables: the weights to key by path.
        purpose: what the paths key, for the message, e.g. `"group
            weights"`.

    Returns:
        The list of the paths, in the order of `variables`.

    Raises:
        ValueError: if two weights share a path.
    """
    paths = [v.path for v in variables]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise ValueError(
            f"Weight paths must be unique to {purpose} by path, but the "
            "model holds two copies of some layers (e.g. a teacher and a "
            "student). Rename one copy. "
            f"Received: duplicates={duplicates[:5]}"
        )
    return paths
