"""Argument checks shared by the layers and configs of prefix and prompt
tuning: each raises `ValueError` naming the argument and the value."""


def positive_integer(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def non_negative_integer(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative integer. "
            f"Received: {name}={value!r}"
        )
