"""Tests of `from_generation_jsonl`."""

import json
import re

import pytest

import kfinetune as kft


def write(tmp_path, content, name="train.jsonl"):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def jsonl(*objects):
    return "".join(json.dumps(value) + "\n" for value in objects)


CHAT = [
    {"role": "system", "content": "be kind"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello", "name": "bot"},
]


def test_reads_prompt_response_pairs_with_custom_keys(tmp_path):
    path = write(
        tmp_path,
        "\n"
        + jsonl({"q": "2 + 2?", "a": "4", "id": 1})
        + "  \n"
        + jsonl({"q": "", "a": "once upon a time"}),
    )
    examples = kft.data.from_generation_jsonl(
        path, prompt_key="q", response_key="a"
    )
    assert examples == [
        {"prompt": "2 + 2?", "response": "4"},
        {"prompt": "", "response": "once upon a time"},
    ]


def test_detects_chats_and_keeps_only_role_and_content(tmp_path):
    path = write(tmp_path, jsonl({"messages": CHAT, "prompt": "ignored"}))
    (example,) = kft.data.from_generation_jsonl(path)
    assert example == {
        "messages": CHAT[:2] + [{"role": "assistant", "content": "hello"}]
    }


def test_reads_source_target_pairs_with_bom_and_other_encodings(tmp_path):
    text = jsonl({"source": "café", "target": "coffee"})
    path = write(tmp_path, "\ufeff" + text)
    assert kft.data.from_generation_jsonl(path, "source_target") == [
        {"source": "café", "target": "coffee"}
    ]
    path = write(tmp_path, text.encode("utf-8").decode().encode("latin-1"))
    assert kft.data.from_generation_jsonl(path, encoding="latin-1") == [
        {"source": "café", "target": "coffee"}
    ]


def test_undecodable_bytes_name_the_line_or_are_replaced(tmp_path):
    path = write(
        tmp_path,
        b'{"prompt": "a", "response": "b"}\n\n'
        b'{"prompt": "a", "response": "caf\xe9 ok"}\n',
    )
    message = "Line 3 of .*`response` has bytes that are not valid utf-8"
    with pytest.raises(ValueError, match=message + r".*Received: b'\\xe9'"):
        kft.data.from_generation_jsonl(path)
    examples = kft.data.from_generation_jsonl(path, errors="replace")
    assert examples[1] == {"prompt": "a", "response": "caf ok"}


PAIR = {"prompt": "p", "response": "r"}
FIRST = {
    "prompt_response": json.dumps(PAIR),
    "chat": json.dumps({"messages": CHAT}),
    "source_target": json.dumps({"source": "s", "target": "t"}),
    None: "",
}


@pytest.mark.parametrize(
    "lines, kwargs, message",
    [
        (['{"prompt": "p",'], {}, "Line 3 of .* is not valid JSON"),
        (["[1, 2]"], {}, "Line 3 of .* is a JSON array, not an object"),
        (
            [json.dumps({"prompt": "p"})],
            {},
            "Line 3 of .* has no key `response` .*Received: keys",
        ),
        (
            [json.dumps({"prompt": "p", "response": 5})],
            {},
            "Line 3 of .*`response` must be a string. Received: response=5",
        ),
        (
            [json.dumps({"prompt": "p", "response": "  "})],
            {},
            "Line 3 of .*`response` is empty.*Received: response='  '",
        ),
        (
            [json.dumps({"messages": "hi"})],
            {"format": "chat"},
            "Line 3 of .*`messages` must be a non-empty list",
        ),
        (
            [json.dumps({"messages": [{"role": "bot", "content": "x"}]})],
            {"format": "chat"},
            r"Line 3 of .*`messages\[0\].role` must be one of .*"
            "Received: role='bot'",
        ),
        (
            [json.dumps({"messages": [{"role": "user"}]})],
            {"format": "chat"},
            r"Line 3 of .*`messages\[0\]` has no `content`",
        ),
        (
            [json.dumps({"messages": [{"role": "user", "content": 3}]})],
            {"format": "chat"},
            r"`messages\[0\].content` must be a string. Received: content=3",
        ),
        (
            [json.dumps({"messages": [{"role": "user", "content": "x"}]})],
            {"format": "chat"},
            "Line 3 of .*`messages` has no assistant message with content",
        ),
        (
            [json.dumps({"source": "s", "target": ""})],
            {"format": "source_target"},
            "Line 3 of .*`target` is empty",
        ),
        (
            [json.dumps({"text": "t"})],
            {"format": None},
            "Line 3 of .*cannot tell the format.*Received: keys",
        ),
    ],
)
def test_malformed_lines_name_the_file_line_and_value(
    tmp_path, lines, kwargs, message
):
    # A good first line of the format, then a blank line 2 that still
    # counts: the bad object is on line 3.
    first = FIRST[kwargs.get("format", "prompt_response")]
    path = write(tmp_path, first + "\n\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message) as error:
        kft.data.from_generation_jsonl(path, **kwargs)
    assert f"of '{path}'" in str(error.value)


def test_file_and_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        kft.data.from_generation_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="is empty"):
        kft.data.from_generation_jsonl(write(tmp_path, "\n \n"))
    path = write(tmp_path, jsonl(PAIR))
    with pytest.raises(ValueError, match="Received: format='pairs'"):
        kft.data.from_generation_jsonl(path, "pairs")
    with pytest.raises(ValueError, match="Received: errors='skip'"):
        kft.data.from_generation_jsonl(path, errors="skip")
    with pytest.raises(ValueError, match="Received: prompt_key=''"):
        kft.data.from_generation_jsonl(path, prompt_key="")
    with pytest.raises(
        ValueError, match=re.escape(f"Line 1 of '{path}' has no key `messages`")
    ):
        kft.data.from_generation_jsonl(path, "chat")
