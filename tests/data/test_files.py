import json
import re

import pytest

from kfinetune.data import from_csv
from kfinetune.data import from_jsonl


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def jsonl(*objects):
    return "".join(json.dumps(value) + "\n" for value in objects)


def where(path, row, line):
    return re.escape(f"Row {row} (line {line}) of '{path}'")


def test_csv_reads_texts_and_infers_sorted_classes(tmp_path):
    path = write(
        tmp_path,
        "reviews.csv",
        'id,text,label\n1,"good, really",pos\n2,"two\nlines",neg\n3,ok,pos\n',
    )
    texts = from_csv(path, "text", "label")
    assert texts.texts.tolist() == ["good, really", "two\nlines", "ok"]
    assert texts.class_names == ("neg", "pos")
    assert texts.labels.tolist() == [1, 0, 1]
    assert texts.source == str(path)
    assert from_csv(str(path), "text", "label").source == str(path)


def test_csv_sorts_integer_labels_numerically(tmp_path):
    path = write(tmp_path, "f.csv", "text,label\na,10\nb,2\nc,1\nd,2\n")
    texts = from_csv(path, "text", "label")
    assert texts.class_names == ("1", "2", "10")
    assert texts.labels.tolist() == [2, 1, 0, 1]


def test_csv_declared_classes_set_the_label_order(tmp_path):
    path = write(tmp_path, "f.csv", "text,label\na,1\nb,0\n")
    texts = from_csv(path, "text", "label", classes=[1, 0, 2])
    assert texts.class_names == ("1", "0", "2")
    assert texts.labels.tolist() == [0, 1]
    assert texts.class_counts() == {"1": 1, "0": 1, "2": 0}


def test_csv_delimiter_bom_and_blank_lines(tmp_path):
    path = write(
        tmp_path, "f.tsv", b"\xef\xbb\xbftext\tlabel\n\na b\tx\n\nc\ty\n"
    )
    texts = from_csv(path, "text", "label", delimiter="\t")
    assert texts.texts.tolist() == ["a b", "c"]
    assert texts.class_names == ("x", "y")


def test_csv_encoding_and_decoding_errors(tmp_path):
    path = write(tmp_path, "f.csv", b"text,label\ncaf\xe9 ok,x\n\xff\xfeb,y\n")
    assert from_csv(path, "text", "label", encoding="latin-1").texts[0] == (
        "caf\xe9 ok"
    )
    replaced = from_csv(path, "text", "label", errors="replace")
    assert replaced.texts.tolist() == ["caf ok", "b"]
    ignored = from_csv(path, "text", "label", errors="ignore")
    assert ignored.texts.tolist() == ["caf ok", "b"]


def test_csv_undecodable_bytes_below_128_name_the_byte(tmp_path):
    path = write(tmp_path, "f.csv", "text,label\nab,x\n".encode("utf-16")[:-1])
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"'{path}' has bytes that are not valid utf-16 at byte 32. Pass "
        )
        + r".*Received: b'\\n'$",
    ):
        from_csv(path, "text", "label", encoding="utf-16")


def test_csv_missing_file(tmp_path):
    path = tmp_path / "missing.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(f"'{path}'")):
        from_csv(path, "text", "label")


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_csv_empty_file(tmp_path, content):
    path = write(tmp_path, "empty.csv", content)
    with pytest.raises(ValueError, match=re.escape(f"'{path}' is empty")):
        from_csv(path, "text", "label")


def test_csv_header_without_rows(tmp_path):
    path = write(tmp_path, "header.csv", "text,label\n\n")
    with pytest.raises(ValueError, match=re.escape(f"'{path}' has no rows")):
        from_csv(path, "text", "label")


@pytest.mark.parametrize(
    ("text_column", "label_column", "name", "missing"),
    [
        ("body", "label", "text_column", "body"),
        ("text", "stars", "label_column", "stars"),
    ],
)
def test_csv_missing_column(tmp_path, text_column, label_column, name, missing):
    path = write(tmp_path, "f.csv", "text,label\na,x\n")
    message = (
        f"'{path}' has no column '{missing}'. Available columns: "
        f"['text', 'label']. Received: {name}='{missing}'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        from_csv(path, text_column, label_column)


def test_csv_short_row_names_row_line_and_column(tmp_path):
    path = write(tmp_path, "f.csv", 'text,label\na,x\n\n"b"\n')
    with pytest.raises(
        ValueError,
        match=where(path, 2, 4)
        + re.escape(
            " has 1 value but the header has 2 columns, so column 'label' "
            "has no value. Received: row=['b']"
        ),
    ):
        from_csv(path, "text", "label")


def test_csv_short_row_with_the_needed_columns(tmp_path):
    path = write(tmp_path, "f.csv", "text,label,notes\na,x,n\nb,y\n")
    with pytest.raises(
        ValueError,
        match=where(path, 2, 3)
        + re.escape(
            " has 2 values but the header has 3 columns. "
            "Received: row=['b', 'y']"
        ),
    ):
        from_csv(path, "text", "label")


def test_csv_long_row_suggests_an_unquoted_delimiter(tmp_path):
    path = write(tmp_path, "f.csv", "text,label\ngood, really,x\n")
    with pytest.raises(
        ValueError,
        match=where(path, 1, 2) + ".*unquoted delimiter.*"
        r"Received: row=\['good', ' really', 'x'\]",
    ):
        from_csv(path, "text", "label")


def test_csv_line_numbers_count_multiline_values_and_blank_lines(tmp_path):
    path = write(tmp_path, "f.csv", 'text,label\n"one\ntwo",x\n\n,y\n')
    with pytest.raises(
        ValueError,
        match=where(path, 2, 5)
        + re.escape(": column 'text' is empty. Received: text=''"),
    ):
        from_csv(path, "text", "label")


def test_csv_blank_text_and_empty_label(tmp_path):
    path = write(tmp_path, "f.csv", "label,text\nx,a\ny,  \n")
    with pytest.raises(
        ValueError,
        match=where(path, 2, 3) + re.escape(": column 'text' is empty."),
    ):
        from_csv(path, "text", "label")
    path = write(tmp_path, "g.csv", "text,label\na,x\nb,\n")
    with pytest.raises(
        ValueError,
        match=where(path, 2, 3)
        + re.escape(": column 'label' is empty. Received: label=''"),
    ):
        from_csv(path, "text", "label")


def test_csv_label_outside_declared_classes(tmp_path):
    path = write(tmp_path, "f.csv", "text,label\na,neg\nb,maybe\n")
    with pytest.raises(
        ValueError,
        match=where(path, 2, 3)
        + re.escape(
            ": column 'label' has a label that is not one of the declared "
            "classes ['neg', 'pos']. Received: label='maybe'"
        ),
    ):
        from_csv(path, "text", "label", classes=["neg", "pos"])


def test_csv_undecodable_text_names_row_column_and_bytes(tmp_path):
    path = write(tmp_path, "f.csv", b"text,label\nfine,x\ncaf\xe9\xff ok,y\n")
    with pytest.raises(
        ValueError,
        match=where(path, 2, 3)
        + re.escape(
            ": column 'text' has bytes that are not valid utf-8, after "
            "'caf'. Pass `errors=\"replace\"`"
        )
        + r".*Received: b'\\xe9\\xff'$",
    ):
        from_csv(path, "text", "label")


def test_csv_undecodable_label_at_its_start(tmp_path):
    path = write(tmp_path, "f.csv", b"text,label\nfine,\xffx\n")
    with pytest.raises(
        ValueError,
        match=where(path, 1, 2)
        + re.escape(": column 'label' has bytes that are not valid utf-8, at")
        + r" its start.*Received: b'\\xff'$",
    ):
        from_csv(path, "text", "label")


def test_csv_invalid_csv(tmp_path):
    path = write(tmp_path, "f.csv", "text,label\n" + "a" * 200_000 + ",x\n")
    with pytest.raises(
        ValueError, match=re.escape(f"'{path}' is not valid CSV at line 2")
    ):
        from_csv(path, "text", "label")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"errors": "surrogateescape"}, "Received: errors='surrogateescape'"),
        ({"encoding": "utf-99"}, "Received: encoding='utf-99'"),
        ({"classes": ["a"]}, r"at least 2.*Received: classes=\['a'\]"),
        (
            {"classes": ["a", "b", "a"]},
            r"\['a'\] appear more than once. Received: classes=",
        ),
        ({"classes": "ab"}, "single string. Received: classes='ab'"),
        ({"delimiter": ";;"}, "single character. Received: delimiter=';;'"),
    ],
)
def test_csv_rejects_bad_options(tmp_path, kwargs, match):
    path = write(tmp_path, "f.csv", "text,label\na,x\n")
    with pytest.raises(ValueError, match=match):
        from_csv(path, "text", "label", **kwargs)


def test_jsonl_reads_texts_with_int_and_string_labels(tmp_path):
    content = (
        jsonl({"text": "a", "label": 1, "extra": [1]})
        + "\n   \n"
        + jsonl({"label": "0", "text": "b\u2028c"}, {"text": "d", "label": 10})
    )
    path = write(tmp_path, "f.jsonl", content)
    texts = from_jsonl(path, "text", "label")
    assert texts.texts.tolist() == ["a", "b\u2028c", "d"]
    assert texts.class_names == ("0", "1", "10")
    assert texts.labels.tolist() == [1, 0, 2]
    assert texts.source == str(path)
    declared = from_jsonl(path, "text", "label", classes=["10", "1", "0"])
    assert declared.labels.tolist() == [1, 2, 0]


def test_jsonl_decoding_errors(tmp_path):
    path = write(tmp_path, "f.jsonl", b'{"text": "caf\xe9", "label": "x"}\n')
    assert from_jsonl(path, "text", "label", errors="replace").texts[0] == "caf"
    with pytest.raises(
        ValueError,
        match=where(path, 1, 1)
        + re.escape(": column 'text' has bytes that are not valid utf-8")
        + r".*Received: b'\\xe9'$",
    ):
        from_jsonl(path, "text", "label")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udce9"])
def test_jsonl_unpaired_surrogate_escape_is_not_reported_as_bytes(
    tmp_path, escape
):
    path = write(
        tmp_path, "f.jsonl", '{"text": "a' + escape + '", "label": "x"}\n'
    )
    with pytest.raises(
        ValueError,
        match=where(path, 1, 1)
        + re.escape(": column 'text' has an unpaired surrogate"),
    ):
        from_jsonl(path, "text", "label")


def test_jsonl_missing_file_and_empty_file(tmp_path):
    path = tmp_path / "missing.jsonl"
    with pytest.raises(FileNotFoundError, match=re.escape(f"'{path}'")):
        from_jsonl(path, "text", "label")
    path = write(tmp_path, "empty.jsonl", "\n \n")
    with pytest.raises(ValueError, match=re.escape(f"'{path}' is empty")):
        from_jsonl(path, "text", "label")


def test_jsonl_invalid_json_names_the_line(tmp_path):
    path = write(
        tmp_path,
        "f.jsonl",
        jsonl({"text": "a", "label": 1}) + '\n{"text": "b", label: 1}\n',
    )
    with pytest.raises(
        ValueError,
        match=re.escape(f"Line 3 of '{path}' is not valid JSON: ")
        + '.*Received: \'{"text": "b", label: 1}\'',
    ):
        from_jsonl(path, "text", "label")


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path, "f.jsonl", '{"text": "a", "label": 1}\n["b", 1]\n')
    with pytest.raises(
        ValueError,
        match=re.escape(f"Line 2 of '{path}' is a JSON array, not an object."),
    ):
        from_jsonl(path, "text", "label")


def test_jsonl_key_in_no_object(tmp_path):
    path = write(tmp_path, "f.jsonl", jsonl({"body": "a", "label": 1}))
    message = (
        f"'{path}' has no column 'text'. Available columns: ['body', "
        "'label']. Received: text_column='text'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        from_jsonl(path, "text", "label")


def test_jsonl_object_without_a_key(tmp_path):
    path = write(
        tmp_path,
        "f.jsonl",
        jsonl({"text": "a", "label": 1}) + "\n" + jsonl({"text": "b"}),
    )
    with pytest.raises(
        ValueError,
        match=where(path, 2, 3)
        + re.escape(" has no key 'label'. Received: keys ['text']"),
    ):
        from_jsonl(path, "text", "label")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (
            {"text": None, "label": 1},
            ": column 'text' must be a string. Received: text=None",
        ),
        (
            {"text": "a", "label": 1.5},
            ": column 'label' must be a string or an integer. "
            "Received: label=1.5",
        ),
        (
            {"text": "a", "label": True},
            ": column 'label' must be a string or an integer. "
            "Received: label=True",
        ),
        (
            {"text": " ", "label": 1},
            ": column 'text' is empty. Received: text=' '",
        ),
        (
            {"text": "a", "label": 2},
            ": column 'label' has a label that is not one of the declared "
            "classes ['0', '1']. Received: label='2'",
        ),
    ],
)
def test_jsonl_bad_values_name_row_line_and_column(tmp_path, value, match):
    path = write(tmp_path, "f.jsonl", jsonl({"text": "ok", "label": 0}, value))
    with pytest.raises(ValueError, match=where(path, 2, 2) + re.escape(match)):
        from_jsonl(path, "text", "label", classes=[0, 1])


def test_jsonl_rejects_bad_options(tmp_path):
    path = write(tmp_path, "f.jsonl", jsonl({"text": "a", "label": 1}))
    with pytest.raises(ValueError, match="Received: errors='backslash'"):
        from_jsonl(path, "text", "label", errors="backslash")
    with pytest.raises(ValueError, match=r"Received: classes=\[1, '1'\]"):
        from_jsonl(path, "text", "label", classes=[1, "1"])


def test_csv_and_jsonl_read_sentence_pairs(tmp_path):
    path = write(
        tmp_path,
        "nli.csv",
        "premise,hypothesis,label\na man sleeps,a person rests,yes\n"
        "it rains,it is dry,no\n",
    )
    texts = from_csv(path, ("premise", "hypothesis"), "label")
    assert texts.pairs and not texts.multi_label
    assert texts.texts.tolist() == [
        ["a man sleeps", "a person rests"],
        ["it rains", "it is dry"],
    ]
    assert texts.labels.tolist() == [1, 0]
    path = write(
        tmp_path,
        "nli.jsonl",
        jsonl({"q": "who?", "a": "me", "label": 1}, {"q": "why", "a": "so"}),
    )
    with pytest.raises(
        ValueError,
        match=where(path, 2, 2)
        + re.escape(" has no key 'label'. Received: keys ['q', 'a']"),
    ):
        from_jsonl(path, ["q", "a"], "label")


def test_multi_label_csv_cells_and_jsonl_lists(tmp_path):
    path = write(
        tmp_path,
        "news.csv",
        "text,topics\nfirst,sport|music\nsecond,\nthird,music\n",
    )
    texts = from_csv(path, "text", "topics", multi_label=True)
    assert texts.multi_label and texts.class_names == ("music", "sport")
    # An empty cell is a text with none of the classes.
    assert texts.labels.tolist() == [[1, 1], [0, 0], [1, 0]]
    # One label a row unless asked: "sport|music" is then one class.
    path = write(tmp_path, "one.csv", "text,topics\nfirst,sport|music\n")
    assert from_csv(path, "text", "topics").class_names == ("sport|music",)
    path = write(tmp_path, "news.tsv", "text\ttopics\na\tsport; music\n")
    texts = from_csv(
        path,
        "text",
        "topics",
        ["sport", "music", "arts"],
        delimiter="\t",
        multi_label=True,
        label_separator="; ",
    )
    assert texts.labels.tolist() == [[1, 1, 0]]
    path = write(
        tmp_path,
        "news.jsonl",
        jsonl(
            {"text": "a", "topics": ["sport", 2]},
            {"text": "b", "topics": []},
        ),
    )
    texts = from_jsonl(path, "text", "topics", multi_label=True)
    assert texts.class_names == ("2", "sport")
    assert texts.labels.tolist() == [[1, 1], [0, 0]]


@pytest.mark.parametrize(
    ("content", "kwargs", "match"),
    [
        (
            "text,l\na,x | y\n",
            {"multi_label": True},
            ": column 'l' has a label with spaces around it, 'x '; join the "
            "labels with label_separator='|' alone, or pass the separator "
            "with its spaces. Received: l='x | y'",
        ),
        (
            "text,l\na,x|x\n",
            {"multi_label": True},
            ": column 'l' repeats a label. Received: l='x|x'",
        ),
        (
            "text,l\na,x||y\n",
            {"multi_label": True},
            ": column 'l' must hold labels that are non-empty strings or "
            "integers. Received: l='x||y'",
        ),
        (
            "text,l\na,x|z\n",
            {"multi_label": True, "classes": ["x", "y"]},
            ": column 'l' has a label that is not one of the declared "
            "classes ['x', 'y']. Received: l='x|z'",
        ),
    ],
)
def test_multi_label_csv_cells_name_the_row(tmp_path, content, kwargs, match):
    path = write(tmp_path, "f.csv", content)
    with pytest.raises(ValueError, match=where(path, 1, 2) + re.escape(match)):
        from_csv(path, "text", "l", **kwargs)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("x", "must be a list of labels for multi-label texts"),
        (["x", True], "must hold labels that are non-empty strings"),
        (["x", ""], "must hold labels that are non-empty strings"),
        (["x", "x"], "repeats a label"),
    ],
)
def test_multi_label_jsonl_lists_name_the_row(tmp_path, value, match):
    path = write(tmp_path, "f.jsonl", jsonl({"text": "a", "l": value}))
    with pytest.raises(ValueError, match=where(path, 1, 1) + ".*" + match):
        from_jsonl(path, "text", "l", multi_label=True)


def test_multi_label_file_without_any_label(tmp_path):
    path = write(tmp_path, "f.csv", "text,l\na,\nb,\n")
    with pytest.raises(
        ValueError, match="No row of .* has a label.*Received: label_column='l'"
    ):
        from_csv(path, "text", "l", multi_label=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"text_column": ("text",)},
            r"two different column names for sentence pairs. "
            r"Received: text_column=\('text',\)",
        ),
        (
            {"text_column": ["text", "text"]},
            r"Received: text_column=\['text', 'text'\]",
        ),
        (
            {"text_column": ("text", "body")},
            r"has no column 'body'.*Received: text_column=\('text', 'body'\)",
        ),
        (
            {"label_separator": "|"},
            r"pass `multi_label=True` with it. Received: label_separator='\|'",
        ),
        (
            {"multi_label": True, "label_separator": ""},
            "non-empty string. Received: label_separator=''",
        ),
        ({"multi_label": 1}, "True or False. Received: multi_label=1"),
    ],
)
def test_pair_and_multi_label_options_are_checked(tmp_path, kwargs, match):
    path = write(tmp_path, "f.csv", "text,label\na,x\n")
    kwargs = {"text_column": "text", **kwargs}
    with pytest.raises(ValueError, match=match):
        from_csv(path, label_column="label", **kwargs)
