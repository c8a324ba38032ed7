"""Chat messages: checks, and the template that renders them as text.

A conversation is a list of messages `{"role": ..., "content": ...}` with
the roles `"system"`, `"user"` and `"assistant"`. A chat template maps
each role to a string holding `{content}` once; a message is rendered as
its role's string with `{content}` replaced by the message's text.

The loss is on the assistant's turns only: for an assistant message, the
template's text before `{content}` is prompt (not learned); the content,
the template's text after `{content}`, and the tokenizer's end token that
follows every assistant turn are learned. The end token after each turn
is what makes a keras-hub `CausalLM.generate` stop after one reply.

The default, `CHAT_TEMPLATE`, renders

```
System: Be brief.
User: What is 2 + 2?
Assistant: 4<end>User: And 3 + 3?
Assistant: 6<end>
```

where `<end>` is the tokenizer's end token. At generation time, prompt the
model with the same text up to the reply: `"User: What is 2 + 2?\\n
Assistant: "`.
"""

ROLES = ("system", "user", "assistant")

CHAT_TEMPLATE = {
    "system": "System: {content}\n",
    "user": "User: {content}\n",
    "assistant": "Assistant: {content}",
}


def _describe(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_template(template):
    """Checks a chat template and returns each role's text around
    `{content}`.

    Args:
        template: a dict mapping each of `ROLES` to a string that holds
            `{content}` exactly once.

    Returns:
        A dict mapping each role to `(before, after)`, the template's text
        before and after `{content}`.

    Raises:
        ValueError: if a role is missing or unknown, or a string does not
            hold `{content}` exactly once.

    Example:

    ```python
    kfinetune.data.chat.check_template(kfinetune.data.CHAT_TEMPLATE)
    # {"system": ("System: ", "\\n"), ...}
    ```
    """
    if not isinstance(template, dict) or set(template) != set(ROLES):
        keys = list(template) if isinstance(template, dict) else None
        raise ValueError(
            f"`chat_template` must be a dict with exactly the keys "
            f"{list(ROLES)}. Received: chat_template={template!r}"
            + ("" if keys is None else f" (keys {keys})")
        )
    parts = {}
    for role in ROLES:
        text = template[role]
        if not isinstance(text, str) or text.count("{content}") != 1:
            raise ValueError(
                f"`chat_template[{role!r}]` must be a string holding "
                f"`{{content}}` exactly once. "
                f"Received: chat_template[{role!r}]={text!r}"
            )
        before, after = text.split("{content}")
        parts[role] = (before, after)
    return parts


def check_messages(messages, where, name="messages"):
    """Checks one conversation.

    Args:
        messages: the conversation, a list of `{"role", "content"}` dicts.
        where: the place of the conversation, to start messages with, e.g.
            `"Line 3 of 'chat.jsonl'"` or `"Example 2"`.
        name: the conversation's key, for messages. Defaults to
            `"messages"`.

    Raises:
        ValueError: if `messages` is not a non-empty list, a message is not
            a dict with a string `content` and a `role` in `ROLES`, or no
            assistant message has non-blank content (nothing to learn).

    Example:

    ```python
    kfinetune.data.chat.check_messages(
        [{"role": "user", "content": "hi"}], "Example 0")
    # ValueError: Example 0: `messages` has no assistant message ...
    ```
    """
    if not isinstance(messages, list) or not messages:
        raise ValueError(
            f"{where}: `{name}` must be a non-empty list of messages. "
            f"Received: {name}={_describe(messages)}"
        )
    for number, message in enumerate(messages):
        at = f"{name}[{number}]"
        if not isinstance(message, dict):
            raise ValueError(
                f"{where}: `{at}` must be an object with a `role` and a "
                f"`content`. Received: {at}={_describe(message)}"
            )
        for key in ("role", "content"):
            if key not in message:
                raise ValueError(
                    f"{where}: `{at}` has no `{key}`. "
                    f"Received: {at}={_describe(message)}"
                )
        role = message["role"]
        if not isinstance(role, str) or role not in ROLES:
            raise ValueError(
                f"{where}: `{at}.role` must be one of {list(ROLES)}. "
                f"Received: role={_describe(role)}"
            )
        content = message["content"]
        if not isinstance(content, str):
            raise ValueError(
                f"{where}: `{at}.content` must be a string. "
                f"Received: content={_describe(content)}"
            )
    if not any(
        message["role"] == "assistant" and message["content"].strip()
        for message in messages
    ):
        raise ValueError(
            f"{where}: `{name}` has no assistant message with content, so "
            "there is nothing to learn (the loss is on assistant turns "
            f"only). Received: {name}={_describe(messages)}"
        )


def chat_segments(messages, template=None):
    """The conversation as text segments, each marked learned or not.

    Args:
        messages: a conversation (see `check_messages`).
        template: a chat template (see `check_template`). Defaults to
            `CHAT_TEMPLATE`.

    Returns:
        A list of `(text, learned)` pairs in order; `text` is `None` where
        the tokenizer's end token goes (after every assistant turn, learned).

    Example:

    ```python
    kfinetune.data.chat.chat_segments(
        [{"role": "user", "content": "hi"},
         {"role": "assistant", "content": "hello"}])
    # [("User: hi\\nAssistant: ", False), ("hello", True), (None, True)]
    ```
    """
    parts = check_template(CHAT_TEMPLATE if template is None else template)
    segments = []
    for message in messages:
        role = message["role"]
        before, after = parts[role]
        if role != "assistant":
            segments.append((before + message["content"] + after, False))
            continue
        segments += [
            (before, False),
            (message["content"] + after, True),
            (None, True),
        ]
    # One text from the end of a reply to the start of the next, so the
    # prompt is tokenized as a whole, as it is at generation time.
    merged = []
    for text, learned in segments:
        if merged and not learned and not merged[-1][1]:
            merged[-1] = (merged[-1][0] + text, False)
        else:
            merged.append((text, learned))
    return merged
