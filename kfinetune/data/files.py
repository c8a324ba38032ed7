"""`from_csv` and `from_jsonl`: labelled texts from local files."""

import csv
import io
import json
import numbers
import pathlib
import re

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


def _labelled_texts(
    path, records, text_column, label_column, classes, encoding
):
    texts, labels = [], []
    for where, text, label, from_bytes in records:
        if not isinstance(text, str):
            raise ValueError(
                f"{where}: column {text_column!r} must be a string. "
                f"Received: {text_column}={text!r}"
            )
        _check_unicode(text, where, text_column, encoding, from_bytes)
        if not text.strip():
            raise ValueError(
                f"{where}: column {text_column!r} is empty. "
                f"Received: {text_column}={text!r}"
            )
        if isinstance(label, bool) or not isinstance(
            label, (str, numbers.Integral)
        ):
            raise ValueError(
                f"{where}: column {label_column!r} must be a string or an "
                f"integer. Received: {label_column}={label!r}"
            )
        label = str(label)
        _check_unicode(label, where, label_column, encoding, from_bytes)
        if not label.strip():
            raise ValueError(
                f"{where}: column {label_column!r} is empty. "
                f"Received: {label_column}={label!r}"
            )
        if classes is not None and label not in classes:
            raise ValueError(
                f"{where}: column {label_column!r} has a label that is not "
                f"one of the declared classes {list(classes)}. "
                f"Received: {label_column}={label!r}"
            )
        texts.append(text)
        labels.append(label)
    class_names = classes or infer_class_names(labels)
    index = {name: i for i, name in enumerate(class_names)}
    return LabelledTexts(
        texts,
        [index[label] for label in labels],
        class_names,
        source=str(path),
    )


def _missing_column(path, name, column, available):
    return ValueError(
        f"'{path}' has no column {column!r}. Available columns: "
        f"{list(available)}. Received: {name}={column!r}"
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
):
    """Reads labelled texts from a CSV file with a header line.

    Blank lines are skipped. Errors name the file, the column, the row
    (counting data rows from 1) and its line in the file (the header is
    line 1 when the file starts with it).

    Args:
        path: the CSV file.
        text_column: the header name of the text column.
        label_column: the header name of the label column.
        classes: the class names, in label order; every label must be one
            of them. `None` infers them: the sorted unique labels, sorted
            numerically when every label is an integer. Defaults to `None`.
        delimiter: the one-character field separator. Defaults to `","`.
        encoding: the file's text encoding. Defaults to `"utf-8"`.
        errors: what to do with bytes that are not valid `encoding`:
            `"strict"` raises, `"replace"` replaces them with U+FFFD and then
            removes those, `"ignore"` drops them. Defaults to `"strict"`.

    Returns:
        A `LabelledTexts` whose `source` is `str(path)`.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if an argument is invalid, the file is empty or has no
            rows, a column is missing, a row has too few or too many values,
            a text or label is empty, a label is not in `classes`, or (with
            `errors="strict"`) a value has undecodable bytes.

    Example:

    ```python
    texts = kfinetune.data.from_csv(
        "reviews.csv", "review", "stars", classes=["1", "2", "3", "4", "5"])
    data = texts.split(validation=0.1, test=0.1)
    ```
    """
    classes = _check_options(encoding, errors, classes)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(
            "`delimiter` must be a single character. "
            f"Received: delimiter={delimiter!r}"
        )
    content = read_text(path, encoding, errors)
    rows = _csv_rows(path, content, delimiter)
    _, header = next(rows)
    for name, column in (
        ("text_column", text_column),
        ("label_column", label_column),
    ):
        if column not in header:
            raise _missing_column(path, name, column, header)
    text_index = header.index(text_column)
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
                    for column in (text_column, label_column)
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
            yield where, row[text_index], row[label_index], True

    return _labelled_texts(
        path, records(), text_column, label_column, classes, encoding
    )


def from_jsonl(
    path,
    text_column,
    label_column,
    classes=None,
    *,
    encoding="utf-8",
    errors="strict",
):
    """Reads labelled texts from a JSON Lines file, one object per line.

    Blank lines are skipped. Labels may be strings or integers; they are
    compared as strings, so `1` and `"1"` are the same class. Errors name
    the file, the key, the row (counting objects from 1) and its line.

    Args:
        path: the JSON Lines file.
        text_column: the key of the text in each object.
        label_column: the key of the label in each object.
        classes: the class names, in label order; every label must be one
            of them. `None` infers them: the sorted unique labels, sorted
            numerically when every label is an integer. Defaults to `None`.
        encoding: the file's text encoding. Defaults to `"utf-8"`.
        errors: what to do with bytes that are not valid `encoding`:
            `"strict"` raises, `"replace"` replaces them with U+FFFD and then
            removes those, `"ignore"` drops them. Defaults to `"strict"`.

    Returns:
        A `LabelledTexts` whose `source` is `str(path)`.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if an argument is invalid, the file is empty, a line is
            not a JSON object, no object has a key, an object lacks a key,
            a text is empty or not a string, a label is empty or neither a
            string nor an integer, a label is not in `classes`, or (with
            `errors="strict"`) a value has undecodable bytes.

    Example:

    ```python
    texts = kfinetune.data.from_jsonl("reviews.jsonl", "review", "stars")
    data = texts.split(validation=0.1, test=0.1)
    ```
    """
    classes = _check_options(encoding, errors, classes)
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
    for name, column in (
        ("text_column", text_column),
        ("label_column", label_column),
    ):
        if column not in keys:
            raise _missing_column(path, name, column, keys)

    def records():
        for where, value, from_bytes in objects:
            for column in (text_column, label_column):
                if column not in value:
                    raise ValueError(
                        f"{where} has no key {column!r}. "
                        f"Received: keys {list(value)}"
                    )
            yield where, value[text_column], value[label_column], from_bytes

    return _labelled_texts(
        path, records(), text_column, label_column, classes, encoding
    )
