"""Config files: a run's settings as TOML (written and read) or YAML (read).

A run writes its settings to `config.toml`; `--config FILE` reads them back
(flags given as well override the file), so a run repeats exactly.
"""

import json
import math
import pathlib
import tomllib

from kfinetune.cli import errors

CONFIG_NAME = "config.toml"
PROG = "python -m kfinetune"
# Settings a config file does not hold: where the run's outputs go, and
# the file itself.
NOT_IN_CONFIG = ("output_dir", "config", "resume")


def read_config(path, actions):
    """Reads a TOML or YAML config file into `{setting: value}`.

    Keys are the flag names without `--` (`learning-rate`; `learning_rate`
    works too). Values are checked as the flags' values are.

    Raises:
        UsageError: the file is missing or unreadable, or a key or value is
            not one the flags take.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise errors.UsageError(
            "--config must be a .toml, .yaml or .yml file. "
            f"Received: --config={str(path)!r}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise errors.UsageError(
            f"cannot read the config file ({error.strerror}). "
            f"Received: --config={str(path)!r}"
        ) from None
    try:
        if suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raw = _load_yaml(text, path)
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise errors.UsageError(
            f"{str(path)!r} is not valid {suffix[1:].upper()}: {error}. "
            f"Received: --config={str(path)!r}"
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise errors.UsageError(
            f"{str(path)!r} must hold keys and values, one per setting. "
            f"Received: {type(raw).__name__}"
        )
    settings = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in actions or name in NOT_IN_CONFIG:
            known = ", ".join(sorted(k.replace("_", "-") for k in actions))
            raise errors.UsageError(
                f"{str(path)!r} has an unknown setting {key!r} (settings: "
                f"{known}). Received: {key}={value!r}"
            )
        settings[name] = _config_value(path, name, value, actions[name])
    return settings


def _load_yaml(text, path):
    try:
        import yaml
    except ImportError:
        raise errors.UsageError(
            "reading a YAML config needs PyYAML (pip install pyyaml); "
            f"TOML needs nothing. Received: --config={str(path)!r}"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(" ".join(str(error).split())) from None


def _config_value(path, name, value, action):
    def bad(expected):
        return errors.UsageError(
            f"{str(path)!r}: {name.replace('_', '-')} must be {expected}. "
            f"Received: {name.replace('_', '-')}={value!r}"
        )

    if action.nargs == "+":
        if isinstance(value, str):
            value = [value]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) for v in value)
        ):
            raise bad("a list of strings")
        return value
    if action.nargs == 0:  # --flag / --no-flag
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        raise bad(_type_name(action.type))
    kind = action.type or str
    if isinstance(value, str) and kind is not str:
        try:
            value = kind(value)
        except ValueError:
            raise bad(_type_name(kind)) from None
    elif kind is int and not isinstance(value, int):
        raise bad("an integer")
    elif kind is float and isinstance(value, (int, float)):
        value = float(value)
    elif kind is str and not isinstance(value, str):
        raise bad("a string")
    if action.choices is not None and value not in action.choices:
        raise bad("one of " + ", ".join(str(c) for c in action.choices))
    return value


def _type_name(kind):
    return {int: "an integer", float: "a number"}.get(kind, "a string")


def toml_value(value):
    """One value in TOML: a string, boolean, number or list of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML needs a finite number. Received: {value}")
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes (\" \\ \n \t \uXXXX ...) are TOML's too.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise ValueError(
        f"Cannot write {type(value).__name__} to TOML. Received: {value!r}"
    )


def write_config(path, settings):
    """Writes the settings of a run as a flat TOML file that
    `--config` reads back to the same settings."""
    lines = [
        "# The settings of this run. Repeat it with",
        f"#   {PROG} train --config {CONFIG_NAME} --output-dir NEW_DIR",
        "# (flags given as well override these).",
    ]
    for name, value in settings.items():
        if name in NOT_IN_CONFIG or value is None:
            continue
        lines.append(f"{name.replace('_', '-')} = {toml_value(value)}")
    pathlib.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
