"""Tests of `instructions`: causal LM rows with response-only loss."""

import json
import logging

import keras
import keras_hub
import numpy as np
import pytest

import kfinetune as kft
from kfinetune import testing


@pytest.fixture(scope="module")
def tokenizer():
    return keras_hub.models.BertTokenizer(
        vocabulary=list(testing.VOCABULARY), lowercase=True
    )


def ids(tokenizer, text):
    return [int(i) for i in tokenizer(text)]


PAIR = {"prompt": "was the movie good", "response": "it was great"}
CHAT = {
    "messages": [
        {"role": "system", "content": "be happy"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "i love it"},
        {"role": "user", "content": "and you"},
        {"role": "assistant", "content": "so fun"},
    ]
}


def test_layout_matches_keras_hub_causal_lm_preprocessor(tokenizer):
    data = kft.data.instructions([PAIR], tokenizer, sequence_length=12)
    preprocessor = keras_hub.models.CausalLMPreprocessor(
        tokenizer, sequence_length=12
    )
    x, y, sample_weight = preprocessor(
        [PAIR["prompt"] + " " + PAIR["response"]]
    )
    np.testing.assert_array_equal(data.inputs["token_ids"], x["token_ids"])
    np.testing.assert_array_equal(
        data.inputs["padding_mask"], x["padding_mask"]
    )
    np.testing.assert_array_equal(data.labels, y)
    # keras-hub weighs every real label; we keep the response and end only.
    response = len(ids(tokenizer, PAIR["response"])) + 1
    expected = np.asarray(sample_weight, "float32")
    first = int(expected.sum()) - response
    expected[0, :first] = 0
    np.testing.assert_array_equal(data.sample_weight, expected)
    assert data.labels[0][data.sample_weight[0] == 1].tolist() == ids(
        tokenizer, PAIR["response"]
    ) + [tokenizer.end_token_id]
    assert data.row_examples == ((0,),)


def test_prompt_labels_do_not_change_the_compiled_loss(tokenizer):
    data = kft.data.instructions([PAIR, CHAT], tokenizer, sequence_length=16)
    model = testing.small_causal_lm("llama")
    model.compile(optimizer="adam")
    y_pred = model(data.inputs)

    def loss(labels):
        return float(
            model.compute_loss(
                x=data.inputs,
                y=labels,
                y_pred=y_pred,
                sample_weight=data.sample_weight,
            )
        )

    prompt = (data.sample_weight == 0) & (data.inputs["padding_mask"] == 1)
    response = data.sample_weight == 1
    assert prompt.sum() and response.sum()
    relabelled = np.where(prompt, (data.labels + 7) % 40, data.labels)
    assert loss(relabelled) == loss(data.labels)
    relabelled = np.where(response, (data.labels + 7) % 40, data.labels)
    assert loss(relabelled) != loss(data.labels)


def test_chat_loss_is_on_assistant_turns_and_their_end_tokens(tokenizer):
    data = kft.data.instructions([CHAT], tokenizer, sequence_length=32)
    end = tokenizer.end_token_id
    learned = data.labels[0][data.sample_weight[0] == 1].tolist()
    assert learned == ids(tokenizer, "i love it") + [end] + ids(
        tokenizer, "so fun"
    ) + [end]
    # The default template, rendered and tokenized prompt by prompt.
    row = data.inputs["token_ids"][0]
    prompt = ids(tokenizer, "System: be happy\nUser: hi\nAssistant: ")
    assert row[: len(prompt) + 1].tolist() == [tokenizer.start_token_id] + (
        prompt
    )


def test_custom_chat_template_learns_the_text_after_the_content(tokenizer):
    template = {
        "system": "{content}",
        "user": "you {content} we",
        "assistant": "{content} today",
    }
    data = kft.data.instructions(
        [CHAT], tokenizer, sequence_length=32, chat_template=template
    )
    learned = data.labels[0][data.sample_weight[0] == 1].tolist()
    end = tokenizer.end_token_id
    assert learned == ids(tokenizer, "i love it today") + [end] + ids(
        tokenizer, "so fun today"
    ) + [end]
    for bad in ({"user": "{content}"}, {**template, "user": "no content"}):
        with pytest.raises(ValueError, match="chat_template"):
            kft.data.instructions([CHAT], tokenizer, 32, chat_template=bad)


def test_packing_fills_rows_and_keeps_the_sample_weights(tokenizer):
    examples = [PAIR, ("the day", "a very good day"), CHAT, PAIR]
    plain = kft.data.instructions(examples, tokenizer, sequence_length=24)
    packed = kft.data.instructions(
        examples, tokenizer, sequence_length=24, pack=True
    )
    assert packed.row_examples == ((0, 1), (2,), (3,))
    assert packed.sample_weight.sum() == plain.sample_weight.sum()
    # Row 0 is example 0 (n0 tokens) then example 1 (n1): after the shift,
    # example 0's labels, example 1's start token, example 1's labels.
    n0, n1 = (int(m.sum()) for m in plain.inputs["padding_mask"][:2])
    assert packed.inputs["padding_mask"][0].sum() == n0 + n1
    for name in ("labels", "sample_weight"):
        row, ones = getattr(packed, name)[0], getattr(plain, name)
        np.testing.assert_array_equal(row[: n0 - 1], ones[0, : n0 - 1])
        np.testing.assert_array_equal(row[n0 : n0 + n1 - 1], ones[1, : n1 - 1])
    assert packed.labels[0, n0 - 1] == tokenizer.start_token_id
    assert packed.sample_weight[0, n0 - 1] == 0
    assert packed.labels[0, n0 - 2] == tokenizer.end_token_id
    assert packed.sample_weight[0, n0 - 2] == 1


def test_truncation_report_is_returned_and_logged(tokenizer, caplog):
    # Responses of 1 to 10 words: rows of 1 + 2 + n + 1 tokens.
    examples = [("the movie", " ".join(["good"] * n)) for n in range(1, 11)]
    examples = examples * 10
    with caplog.at_level(logging.INFO, "kfinetune.data.truncation"):
        data = kft.data.instructions(examples, tokenizer, sequence_length=10)
    report = data.truncation
    assert isinstance(report, kft.data.TruncationReport)
    assert (report.num_examples, report.num_truncated) == (100, 30)
    assert (report.length_99, report.longest) == (13, 13)
    assert report.dropped == ()
    assert "30 of 100 examples" in caplog.text
    assert "sequence_length=13 would hold 99%" in str(report)
    # A truncated example keeps its first tokens and has no end token.
    longest = data.labels[9]
    assert tokenizer.end_token_id not in longest.tolist()
    # 11 tokens in a row: start, 2 prompt tokens, 8 response tokens.
    assert data.sample_weight[9].sum() == 8
    assert data.inputs["padding_mask"][9].all()


def test_a_prompt_leaving_no_response_token_raises_or_is_dropped(tokenizer):
    long_prompt = ("the " * 8, "good")
    examples = [PAIR, long_prompt]
    message = (
        "Example 1: its prompt takes 9 tokens with the start token, so none "
        "of its 1 response tokens fits in sequence_length=8"
    )
    with pytest.raises(ValueError, match=message):
        kft.data.instructions(examples, tokenizer, sequence_length=8)
    data = kft.data.instructions(
        examples, tokenizer, sequence_length=8, drop_long_prompts=True
    )
    assert data.row_examples == ((0,),)
    assert data.truncation.dropped == (1,)
    # Nine prompt tokens: one response token fits in a row of 9 + 1.
    data = kft.data.instructions([long_prompt], tokenizer, sequence_length=9)
    assert data.sample_weight.sum() == 1
    with pytest.raises(ValueError, match="Every example was dropped"):
        kft.data.instructions(
            [long_prompt], tokenizer, 8, drop_long_prompts=True
        )


@pytest.mark.parametrize(
    "example, message",
    [
        (
            {"prompt": "the", "response": "  \t"},
            r"Example 1: the response \(a chat's assistant turns\) has no "
            "tokens once tokenized",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}]},
            "Example 1: `messages` has no assistant message with content",
        ),
        (
            {"messages": [{"role": "robot", "content": "hi"}]},
            r"Example 1: `messages\[0\].role` must be one of",
        ),
        ({"text": "hi"}, "Example 1 must be a dict with `prompt` and"),
        (("the", 3), "Example 1: `response` must be a string"),
    ],
)
def test_malformed_examples_are_named(tokenizer, example, message):
    with pytest.raises(ValueError, match=message):
        kft.data.instructions([PAIR, example], tokenizer, sequence_length=16)


def test_argument_errors(tokenizer):
    with pytest.raises(ValueError, match="Received: sequence_length=1"):
        kft.data.instructions([PAIR], tokenizer, 1)
    with pytest.raises(ValueError, match="Received: examples=\\[\\]"):
        kft.data.instructions([], tokenizer, 16)
    with pytest.raises(ValueError, match="keras-hub tokenizer"):
        kft.data.instructions([PAIR], "gpt2", 16)
    with pytest.raises(ValueError, match="Received: pack=1"):
        kft.data.instructions([PAIR], tokenizer, 16, pack=1)
    no_end = keras_hub.models.BertTokenizer(vocabulary=list(testing.VOCABULARY))
    no_end.end_token_id = None
    with pytest.raises(ValueError, match="has no end token"):
        kft.data.instructions([PAIR], no_end, 16)


def test_a_preprocessor_is_followed_and_a_short_fit_trains(tokenizer):
    preprocessor = keras_hub.models.CausalLMPreprocessor(
        tokenizer, sequence_length=16, add_start_token=False
    )
    data = kft.data.instructions([PAIR, CHAT] * 2, preprocessor, 16)
    assert data.inputs["token_ids"][0, 0] == ids(tokenizer, "was")[0]
    model = testing.small_causal_lm("llama")
    # Eager: tracing a train step costs seconds, and trains the same.
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(data.dataset().batch(4), epochs=2, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[1] < losses[0]
    after = model.trainable_weights
    assert any(
        not np.allclose(a, b.numpy())
        for a, b in zip(before, after, strict=True)
    )


def test_reads_what_from_generation_jsonl_gives(tokenizer, tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps(CHAT) + "\n\n" + json.dumps(CHAT) + "\n")
    examples = kft.data.from_generation_jsonl(path)
    from_file = kft.data.instructions(examples, tokenizer, 32)
    in_memory = kft.data.instructions([CHAT, CHAT], tokenizer, 32)
    np.testing.assert_array_equal(from_file.labels, in_memory.labels)
    np.testing.assert_array_equal(
        from_file.sample_weight, in_memory.sample_weight
    )
