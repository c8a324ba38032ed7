"""`from_csv` and `from_jsonl`: labelled texts from local files."""

import csv
import io
import json
import numbers
import pathlib
import re

import numpy as np

from kfinetune import checks
from kfinetune.data import text as text_lib
from kfinetune.data.labelled_texts import LabelledTexts
from kfinetune.data.labelled_texts import infer_class_names

ERRORS = ("strict", "replace", "ignore")

# `surrogateescape` decodes each undecodable byte to one of these.
ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")

JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}

ERRORS_HINT = (
    'Pass `errors="replace"` to replace undecodable bytes (the replacement '
    'characters are then removed), `errors="ignore"` to drop them, or the '
    "file's real `encoding`."
)


def _check_options(encoding, errors, classes):
    checks.one_of("errors", errors, ERRORS)
    checks.text_encoding("encoding", encoding)
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)):
        raise ValueError(
            "`classes` must be a list of class names, not a single string. "
            f"Received: classes={classes!r}"
        )
    names = tuple(str(name) for name in classes)
    if len(names) < 2:
        raise ValueError(
            "`classes` must name at least 2 classes. "
            f"Received: classes={classes!r}"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"`classes` must not repeat a name; {duplicates} appear more "
            f"than once. Received: classes={classes!r}"
        )
    return names


def read_text(path, encoding, errors):
    """The text of the file at `path`, decoded with `encoding`; with
    `errors="strict"` an undecodable byte is an error naming its line and
    column (the readers of this package share this)."""
    try:
        raw = pathlib.Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No such file: '{path}'. Received: path={str(path)!r}"
        ) from None
    # `surrogateescape` keeps every undecodable byte, so the strict check
    # can name the row and column it sits in once the file is parsed.
    try:
        content = raw.decode(
            encoding, "surrogateescape" if errors == "strict" else errors
        )
    except UnicodeDecodeError as error:
        # `surrogateescape` cannot keep bytes below 128, which some
        # encodings (UTF-16, UTF-32) reject: only the file offset is known.
        bad = error.object[error.start : error.end]
        raise ValueError(
            f"'{path}' has bytes that are not valid {encoding} at byte "
            f"{error.start}. {ERRORS_HINT} Received: {bad!r}"
        ) from None
    if errors == "replace":
        content = text_lib.strip_replacement_characters(content)
    # Excel writes a byte-order mark that would prefix the first column name.
    content = content.removeprefix("\ufeff")
    if not content.strip():
        raise ValueError(f"'{path}' is empty. Received: path={str(path)!r}")
    return content


def _check_unicode(value, where, column, encoding, from_bytes):
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        escaped = ESCAPED_BYTES.match(value, error.start)
        if from_bytes and escaped:
            raw = escaped.group().encode("utf-8", "surrogateescape")
            before = value[max(0, error.start - 30) : error.start]
            place = f"after {before!r}" if before else "at its start"
            raise ValueError(
                f"{where}: column {column!r} has bytes that are not valid "
                f"{encoding}, {place}. {ERRORS_HINT} Received: {raw!r}"
            ) from None
        raise ValueError(
            f"{where}: column {column!r} has an unpaired surrogate, which is "
            "not valid Unicode text. "
            f"Received: {value[error.start : error.end]!r}"
        ) from None


def _text_columns(text_column):
    """`text_column` as a tuple: one column name, or two for sentence pairs.

    Raises:
        ValueError: if `text_column` is neither a string nor a tuple or list
            of two different strings.
    """
    if isinstance(text_column, str):
        return (text_column,)
    if (
        isinstance(text_column, (tuple, list))
        and len(text_column) == 2
        and all(isinstance(name, str) for name in text_column)
        and text_column[0] != text_column[1]
    ):
        return tuple(text_column)
    raise ValueError(
        "`text_column` must be a column name, or a tuple of two different "
        "column names for sentence pairs. "
        f"Received: text_column={text_column!r}"
    )


def _check_multi_label_options(multi_label, label_separator):
    checks.boolean("multi_label", multi_label)
    if label_separator is None:
        return "|" if multi_label else None
    if not multi_label:
        raise ValueError(
            "`label_separator` splits a cell into several labels; pass "
            "`multi_label=True` with it. "
            f"Received: label_separator={label_separator!r}"
        )
    if not isinstance(label_separator, str) or not label_separator:
        raise ValueError(
            "`label_separator` must be a non-empty string. "
            f"Received: label_separator={label_separator!r}"
        )
    return label_separator


def _check_text(where, column, text, encoding, from_bytes):
    if not isinstance(text, str):
        raise ValueError(
            f"{where}: column {column!r} must be a string. "
            f"Received: {column}={text!r}"
        )
    _check_unicode(text, where, column, encoding, from_bytes)
    if not text.strip():
        raise ValueError(
            f"{where}: column {column!r} is empty. Received: {column}={text!r}"
        )
    return text


def _is_label(value):
    """Labels are strings or integers, compared as strings."""
    return not isinstance(value, bool) and isinstance(
        value, (str, numbers.Integral)
    )


def _single_label(where, column, label, encoding, from_bytes):
    if not _is_label(label):
        raise ValueError(
            f"{where}: column {column!r} must be a string or an integer. "
            f"Received: {column}={label!r}"
        )
    label = str(label)
    _check_unicode(label, where, column, encoding, from_bytes)
    if not label.strip():
        raise ValueError(
            f"{where}: column {column!r} is empty. Received: {column}={label!r}"
        )
    return label


def _label_names(where, column, label, separator, encoding, from_bytes):
    """A multi-label row's class names: a JSON list (`separator` is
    `None`) or a CSV cell of names joined by `separator`."""
    if separator is None:
        if not isinstance(label, list):
            raise ValueError(
                f"{where}: column {column!r} must be a list of labels for "
                "multi-label texts (`[]` for none). "
                f"Received: {column}={label!r}"
            )
        names = label
    else:
        names = label.split(separator) if label else []
        for name in names:
            # "a | b" with `label_separator="|"` would make classes "a "
            # and " b": say so rather than infer them.
            if name.strip() and name != name.strip():
                raise ValueError(
                    f"{where}: column {column!r} has a label with spaces "
                    f"around it, {name!r}; join the labels with "
                    f"label_separator={separator!r} alone, or pass the "
                    f"separator with its spaces. Received: {column}={label!r}"
                )
    for name in names:
        if not _is_label(name) or not str(name).strip():
            raise ValueError(
                f"{where}: column {column!r} must hold labels that are "
                "non-empty strings or integers. Received: "
                f"{column}={label!r}"
            )
        _check_unicode(str(name), where, column, encoding, from_bytes)
    names = [str(name) for name in names]
    if len(set(names)) != len(names):
        raise ValueError(
            f"{where}: column {column!r} repeats a label. "
            f"Received: {column}={label!r}"
        )
    return names


def _labelled_texts(
    path,
    records,
    text_column,
    label_column,
    classes,
    encoding,
    multi_label=False,
    separator=None,
):
    """Checks the records `(where, texts, label, from_bytes)` and returns
    the `LabelledTexts`; a multi-label row's labels are a JSON list
    (`separator=None`) or a CSV cell joined by `separator`."""
    columns = _text_columns(text_column)
    texts, labels = [], []
    for where, values, label, from_bytes in records:
        values = tuple(
            _check_text(where, column, value, encoding, from_bytes)
            for column, value in zip(columns, values, strict=True)
        )
        if multi_label:
            names = _label_names(
                where, label_column, label, separator, encoding, from_bytes
            )
        else:
            label = _single_label(
                where, label_column, label, encoding, from_bytes
            )
            names = [label]
        for name in names:
            if classes is not None and name not in classes:
                raise ValueError(
                    f"{where}: column {label_column!r} has a label that is "
                    f"not one of the declared classes {list(classes)}. "
                    f"Received: {label_column}={label!r}"
                )
        texts.append(values if len(values) == 2 else values[0])
        labels.append(names)
    class_names = classes or infer_class_names(
        name for names in labels for name in names
    )
    if not class_names:
        raise ValueError(
            f"No row of '{path}' has a label, so there are no classes to "
            "learn. Pass `classes` if the labels are elsewhere. "
            f"Received: label_column={label_column!r}"
        )
    index = {name: i for i, name in enumerate(class_names)}
    if multi_label:
        targets = np.zeros((len(labels), len(class_names)), np.int32)
        for row, names in enumerate(labels):
            targets[row, [index[name] for name in names]] = 1
    else:
        targets = [index[names[0]] for names in labels]
    return LabelledTexts(texts, targets, class_names, source=str(path))


def _missing_column(path, name, text_column, column, available):
    given = text_column if name == "text_column" else column
    return ValueError(
        f"'{path}' has no column {column!r}. Available columns: "
        f"{list(available)}. Received: {name}={given!r}"
    )


def _csv_rows(path, content, delimiter):
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    line = 1
    try:
        for row in reader:
            # csv yields `[]` for a blank line.
            if row:
                yield line, row
            line = reader.line_num + 1
    except csv.Error as error:
        raise ValueError(
            f"'{path}' is not valid CSV at line {reader.line_num}: {error}. "
            f"Received: delimiter={delimiter!r}"
        ) from None


def from_csv(
    path,
    text_column,
    label_column,
    classes=None,
    *,
    delimiter=",",
    encoding="utf-8",
    errors="strict",
    multi_label=False,
    label_separator=None,
):
    """Reads labelled texts (or sentence pairs) from a CSV file with a
    header line.

    Blank lines are skipped. Errors name the file, the column, the row
    (counting data rows from 1) and its line in the file (the header is
    line 1 when the file starts with it).

    Sentence pairs: `text_column=("premise", "hypothesis")` reads two
    columns, and the texts are `(premise, hypothesis)` pairs.

    Multi-label (`multi_label=True`): the label cell holds the row's class
    names joined by `label_separator` (`"|"` by default), e.g.
    `sports|politics`; an empty cell is a text with none of the classes.
    One column whatever the number of classes, as in JSON Lines, where the
    label is a list; a file with a 0/1 column per class converts in one
    line (see the Data guide).

    Args:
        path: the CSV file.
        text_column: the header name of the text column, or a tuple of two
            names for sentence pairs.
        label_column: the header name of the label column.
        classes: the class names, in label order; every label must be one
            of them. `None` infers them: the sorted unique labels, sorted
            numerically when every label is an integer. Defaults to `None`.
        delimiter: the one-character field separator. Defaults to `","`.
        encoding: the file's text encoding. Defaults to `"utf-8"`.
        errors: what to do with bytes that are not valid `encoding`:
            `"strict"` raises, `"replace"` replaces them with U+FFFD and then
            removes those, `"ignore"` drops them. Defaults to `"strict"`.
        multi_label: whether a row may have several classes (or none).
            Defaults to `False`.
        label_separator: with `multi_label=True`, the string between the
            class names of a label cell. Defaults to `None`: `"|"`.

    Returns:
        A `LabelledTexts` whose `source` is `str(path)`.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if an argument is invalid, the file is empty or has no
            rows, a column is missing, a row has too few or too many values,
            a text or label is empty, a label is not in `classes`, a
            multi-label cell repeats a label or has one with spaces around
            it, no row has a label, or (with `errors="strict"`) a value has
            undecodable bytes.

    Example:

    ```python
    texts = kfinetune.data.from_csv(
        "reviews.csv", "review", "stars", classes=["1", "2", "3", "4", "5"])
    data = texts.split(validation=0.1, test=0.1)

    nli = kfinetune.data.from_csv(
        "snli.csv", ("premise", "hypothesis"), "label")
    topics = kfinetune.data.from_csv(
        "news.csv", "headline", "topics", multi_label=True)  # sports|politics
    ```
    """
    classes = _check_options(encoding, errors, classes)
    columns = _text_columns(text_column)
    separator = _check_multi_label_options(multi_label, label_separator)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(
            "`delimiter` must be a single character. "
            f"Received: delimiter={delimiter!r}"
        )
    content = read_text(path, encoding, errors)
    rows = _csv_rows(path, content, delimiter)
    _, header = next(rows)
    wanted = [("text_column", column) for column in columns]
    wanted.append(("label_column", label_column))
    for name, column in wanted:
        if column not in header:
            raise _missing_column(path, name, text_column, column, header)
    text_indices = [header.index(column) for column in columns]
    label_index = header.index(label_column)
    rows = list(rows)
    if not rows:
        raise ValueError(
            f"'{path}' has no rows, only a header. Received: path={str(path)!r}"
        )

    def records():
        for number, (line, row) in enumerate(rows, start=1):
            where = f"Row {number} (line {line}) of '{path}'"
            if len(row) != len(header):
                missing = [
                    column
                    for _, column in wanted
                    if header.index(column) >= len(row)
                ]
                if len(row) > len(header):
                    detail = "; is there an unquoted delimiter in a value?"
                elif missing:
                    detail = f", so column {missing[0]!r} has no value"
                else:
                    detail = ""
                values = "1 value" if len(row) == 1 else f"{len(row)} values"
                raise ValueError(
                    f"{where} has {values} but the header has "
                    f"{len(header)} columns{detail}. Received: row={row!r}"
                )
            texts = [row[index] for index in text_indices]
            yield where, texts, row[label_index], True

    return _labelled_texts(
        path,
        records(),
        text_column,
        label_column,
        classes,
        encoding,
        multi_label,
        separator,
    )


def from_jsonl(
    path,
    text_column,
    label_column,
    classes=None,
    *,
    encoding="utf-8",
    errors="strict",
    multi_label=False,
):
    """Reads labelled texts (or sentence pairs) from a JSON Lines file, one
    object per line.

    Blank lines are skipped. Labels may be strings or integers; they are
    compared as strings, so `1` and `"1"` are the same class. Errors name
    the file, the key, the row (counting objects from 1) and its line.

    Sentence pairs: `text_column=("premise", "hypothesis")` reads two keys,
    and the texts are `(premise, hypothesis)` pairs.

    Multi-label (`multi_label=True`): the label is a JSON list of the
    object's class names, e.g. `{"text": "...", "topics": ["sports",
    "politics"]}`; `[]` is a text with none of the classes.

    Args:
        path: the JSON Lines file.
        text_column: the key of the text in each object, or a tuple of two
            keys for sentence pairs.
        label_column: the key of the label in each object.
        classes: the class names, in label order; every label must be one
            of them. `None` infers them: the sorted unique labels, sorted
            numerically when every label is an integer. Defaults to `None`.
        encoding: the file's text encoding. Defaults to `"utf-8"`.
        errors: what to do with bytes that are not valid `encoding`:
            `"strict"` raises, `"replace"` replaces them with U+FFFD and then
            removes those, `"ignore"` drops them. Defaults to `"strict"`.
        multi_label: whether the labels are lists of class names. Defaults
            to `False`.

    Returns:
        A `LabelledTexts` whose `source` is `str(path)`.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if an argument is invalid, the file is empty, a line is
            not a JSON object, no object has a key, an object lacks a key,
            a text is empty or not a string, a label is empty or neither a
            string nor an integer, a multi-label label is not a list or
            repeats a name, a label is not in `classes`, no object has a
            label, or (with `errors="strict"`) a value has undecodable
            bytes.

    Example:

    ```python
    texts = kfinetune.data.from_jsonl("reviews.jsonl", "review", "stars")
    data = texts.split(validation=0.1, test=0.1)

    topics = kfinetune.data.from_jsonl(
        "news.jsonl", "headline", "topics", multi_label=True)
    ```
    """
    classes = _check_options(encoding, errors, classes)
    columns = _text_columns(text_column)
    checks.boolean("multi_label", multi_label)
    content = read_text(path, encoding, errors)
    objects = []
    # Only "\n" ends a line: JSON strings may hold U+2028 and other
    # characters that `str.splitlines` would also split on.
    for line_number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"Line {line_number} of '{path}' is not valid JSON: "
                f"{error.msg} (character {error.colno}). "
                f"Received: {line[:80]!r}"
            ) from None
        if not isinstance(value, dict):
            raise ValueError(
                f"Line {line_number} of '{path}' is a JSON "
                f"{JSON_TYPES[type(value)]}, not an object. "
                f"Received: {line[:80]!r}"
            )
        where = f"Row {len(objects) + 1} (line {line_number}) of '{path}'"
        objects.append((where, value, bool(ESCAPED_BYTES.search(line))))
    keys = dict.fromkeys(key for _, value, _ in objects for key in value)
    wanted = [("text_column", column) for column in columns]
    wanted.append(("label_column", label_column))
    for name, column in wanted:
        if column not in keys:
            raise _missing_column(path, name, text_column, column, keys)

    def records():
        for where, value, from_bytes in objects:
            for _, column in wanted:
                if column not in value:
                    raise ValueError(
                        f"{where} has no key {column!r}. "
                        f"Received: keys {list(value)}"
                    )
            texts = [value[column] for column in columns]
            yield where, texts, value[label_column], from_bytes

    return _labelled_texts(
        path,
        records(),
        text_column,
        label_column,
        classes,
        encoding,
        multi_label,
    )
