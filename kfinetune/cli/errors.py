"""The command line's user errors: one line, exit code 2."""


class UsageError(ValueError):
    """A bad option, option value, column or file: exit code 2."""


def flag(name):
    """`learning_rate` -> `--learning-rate`."""
    return "--" + name.replace("_", "-")


def refuse(name, value, reason):
    """Raises a `UsageError` that names the flag and the value received."""
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    raise UsageError(f"{flag(name)} {reason}. Received: {flag(name)}={value}")
