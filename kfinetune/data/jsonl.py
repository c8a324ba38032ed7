"""`from_generation_jsonl`: prompts and responses, chats, or source and
target texts from a JSON Lines file, for generative fine-tuning."""

import json

from kfinetune import checks
from kfinetune.data import chat as chat_lib
from kfinetune.data import files

FORMATS = ("prompt_response", "chat", "source_target")


def _describe(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_decoded(value, where, key, encoding):
    """Rejects text holding bytes that `surrogateescape` kept undecoded."""
    escaped = files.ESCAPED_BYTES.search(value)
    if escaped:
        raw = escaped.group().encode("utf-8", "surrogateescape")
        raise ValueError(
            f"{where}: `{key}` has bytes that are not valid {encoding}. "
            f"{files.ERRORS_HINT} Received: {raw!r}"
        )


def _string(value, where, key, encoding, blank_ok=False):
    if not isinstance(value, str):
        raise ValueError(
            f"{where}: `{key}` must be a string. "
            f"Received: {key}={_describe(value)}"
        )
    _check_decoded(value, where, key, encoding)
    if not blank_ok and not value.strip():
        raise ValueError(
            f"{where}: `{key}` is empty, so there is nothing to learn. "
            f"Received: {key}={value!r}"
        )
    return value


def _detect(value, where, keys):
    prompt_key, response_key, messages_key, source_key, target_key = keys
    if messages_key in value:
        return "chat"
    if prompt_key in value and response_key in value:
        return "prompt_response"
    if source_key in value and target_key in value:
        return "source_target"
    raise ValueError(
        f"{where}: cannot tell the format: the object has neither "
        f"`{messages_key}`, nor `{prompt_key}` and `{response_key}`, nor "
        f"`{source_key}` and `{target_key}`. Pass `format` and the keys "
        f"your file uses (e.g. `prompt_key=...`). Received: keys "
        f"{list(value)}"
    )


def _example(value, where, format, keys, encoding):
    prompt_key, response_key, messages_key, source_key, target_key = keys
    needed = {
        "prompt_response": (prompt_key, response_key),
        "chat": (messages_key,),
        "source_target": (source_key, target_key),
    }[format]
    for key in needed:
        if key not in value:
            raise ValueError(
                f"{where} has no key `{key}` (format {format!r}). "
                f"Received: keys {list(value)}"
            )
    if format == "prompt_response":
        return {
            "prompt": _string(
                value[prompt_key], where, prompt_key, encoding, blank_ok=True
            ),
            "response": _string(
                value[response_key], where, response_key, encoding
            ),
        }
    if format == "source_target":
        return {
            "source": _string(value[source_key], where, source_key, encoding),
            "target": _string(value[target_key], where, target_key, encoding),
        }
    messages = value[messages_key]
    chat_lib.check_messages(messages, where, name=messages_key)
    for number, message in enumerate(messages):
        _check_decoded(
            message["content"],
            where,
            f"{messages_key}[{number}].content",
            encoding,
        )
    return {
        "messages": [
            {"role": message["role"], "content": message["content"]}
            for message in messages
        ]
    }


def from_generation_jsonl(
    path,
    format=None,
    *,
    prompt_key="prompt",
    response_key="response",
    messages_key="messages",
    source_key="source",
    target_key="target",
    encoding="utf-8",
    errors="strict",
):
    """Reads examples for generative fine-tuning from a JSON Lines file.

    One JSON object per line, in one of three formats:

    - `"prompt_response"`: `{"prompt": ..., "response": ...}`, for
      `kfinetune.data.instructions`. The prompt may be empty, the response
      not.
    - `"chat"`: `{"messages": [{"role": "user", "content": ...},
      {"role": "assistant", "content": ...}, ...]}` with the roles
      `"system"`, `"user"` and `"assistant"`, for
      `kfinetune.data.instructions` (see `kfinetune.data.CHAT_TEMPLATE`).
      At least one assistant message must have content.
    - `"source_target"`: `{"source": ..., "target": ...}`, for
      `kfinetune.data.seq2seq`. Neither may be empty.

    Other keys are ignored. Blank lines are skipped; line numbers in
    errors count them.

    Args:
        path: the JSON Lines file.
        format: one of `"prompt_response"`, `"chat"`, `"source_target"`,
            or `None` to tell from the first object's keys (`messages_key`
            means a chat). Defaults to `None`.
        prompt_key: the key of the prompt. Defaults to `"prompt"`.
        response_key: the key of the response. Defaults to `"response"`.
        messages_key: the key of a chat's messages. Defaults to
            `"messages"`.
        source_key: the key of the source text. Defaults to `"source"`.
        target_key: the key of the target text. Defaults to `"target"`.
        encoding: the file's text encoding. Defaults to `"utf-8"`.
        errors: what to do with bytes that are not valid `encoding`:
            `"strict"` raises, `"replace"` replaces them with U+FFFD and then
            removes those, `"ignore"` drops them. Defaults to `"strict"`.

    Returns:
        A list of dicts, one per line, with the keys of the format whatever
        the file calls them: `{"prompt", "response"}`, `{"messages"}` (each
        message `{"role", "content"}`) or `{"source", "target"}`.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: naming the file, the line and the value, if a line is
            not a JSON object, lacks a key of the format, has a value that
            is not a string, an empty response, source or target, a
            malformed message or a chat without an assistant reply, or
            (with `errors="strict"`) undecodable bytes; also for an empty
            file, an unknown `format` or a format that cannot be told.

    Example:

    ```python
    examples = kfinetune.data.from_generation_jsonl("train.jsonl")
    data = kfinetune.data.instructions(examples, tokenizer, 256)
    model.fit(data.dataset().shuffle(1000).batch(8))
    ```
    """
    if format is not None:
        checks.one_of("format", format, FORMATS)
    checks.one_of("errors", errors, files.ERRORS)
    checks.text_encoding("encoding", encoding)
    keys = (prompt_key, response_key, messages_key, source_key, target_key)
    names = (
        "prompt_key",
        "response_key",
        "messages_key",
        "source_key",
        "target_key",
    )
    for name, key in zip(names, keys, strict=True):
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"`{name}` must be a non-empty string. Received: {name}={key!r}"
            )
    content = files.read_text(path, encoding, errors)
    examples = []
    # Only "\n" ends a line: JSON strings may hold U+2028 and other
    # characters that `str.splitlines` would also split on.
    for line_number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"Line {line_number} of '{path}'"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{where} is not valid JSON: {error.msg} (character "
                f"{error.colno}). Received: {line[:80]!r}"
            ) from None
        if not isinstance(value, dict):
            raise ValueError(
                f"{where} is a JSON {files.JSON_TYPES[type(value)]}, not an "
                f"object. Received: {line[:80]!r}"
            )
        if format is None:
            format = _detect(value, where, keys)
        examples.append(_example(value, where, format, keys, encoding))
    return examples
