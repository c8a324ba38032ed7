"""`kfinetune.checks`: each check names the argument and the value."""

import pytest

from kfinetune import checks


@pytest.mark.parametrize(
    "check, args",
    [
        (checks.positive_integer, (3,)),
        (checks.non_negative_integer, (0,)),
        (checks.positive_number, (0.5,)),
        (checks.at_least, (1, 1)),
        (checks.in_range, (0.0, 0, 1)),
        (checks.in_range, (1, 0, 1, False, True)),
        (checks.one_of, ("a", ("a", "b"))),
        (checks.boolean, (False,)),
        (checks.text_encoding, ("latin-1",)),
    ],
)
def test_valid_values_pass(check, args):
    check("x", *args)


@pytest.mark.parametrize(
    "check, args, kwargs, message",
    [
        (checks.positive_integer, (0,), {}, "a positive integer.*x=0"),
        (checks.text_encoding, ("nope",), {}, "encoding. Received: x='nope'"),
        (checks.text_encoding, (None,), {}, "Received: x=None"),
        (checks.positive_integer, (True,), {}, "x=True"),
        (checks.positive_integer, (2.0,), {}, "x=2.0"),
        (checks.non_negative_integer, (-1,), {}, "non-negative integer"),
        (checks.positive_number, (0,), {}, "positive. Received: x=0"),
        (checks.positive_number, ("1",), {}, "x='1'"),
        (checks.at_least, (0.5, 1), {}, "at least 1. Received: x=0.5"),
        (
            checks.at_least,
            (2.5, 2),
            {"integer": True},
            "an integer of at least 2. Received: x=2.5",
        ),
        (checks.in_range, (1.0, 0, 1), {}, r"in \[0, 1\). Received: x=1.0"),
        (checks.in_range, (0, 0, 1), {"low_closed": False}, r"in \(0, 1\)"),
        (
            checks.in_range,
            (1.5, 1, 3),
            {"integer": True},
            r"an integer in \[1, 3\). Received: x=1.5",
        ),
        (checks.one_of, ("c", ("a", "b")), {}, r"one of \['a', 'b'\]"),
        (checks.one_of, (["a"], {"a": 1}), {}, r"x=\['a'\]"),
        (checks.boolean, (1,), {}, "True or False. Received: x=1"),
    ],
)
def test_invalid_values_raise_naming_the_argument(check, args, kwargs, message):
    with pytest.raises(ValueError, match=f"`x` must be .*{message}"):
        check("x", *args, **kwargs)
