import keras
import numpy as np
import pytest

from kfinetune import inspect
from kfinetune import peft
from kfinetune import testing

TEXTS = ["the movie was really good", "bad day"]


def classifier(**kwargs):
    return testing.small_bert_classifier(sequence_length=12, **kwargs)


def check_rows(found):
    for item in found:
        total = item.weights.sum(-1) + item.prefix.sum(-1)
        np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_attention_is_aligned_with_word_pieces_and_rows_sum_to_one():
    found = inspect.attention(classifier(), TEXTS)
    assert found[0].tokens == (
        "[CLS]",
        "the",
        "movie",
        "was",
        "really",
        "good",
        "[SEP]",
    )
    assert found[0].weights.shape == (2, 4, 7, 7)
    assert found[1].weights.shape == (2, 4, 4, 4)
    assert found[0].prefix.shape == (2, 4, 7, 0)
    check_rows(found)


def test_padded_keys_get_no_attention():
    # Softmax rows over all positions sum to 1; the rows over the real keys
    # alone summing to 1 means the padded keys got 0. Unmasking the same
    # ids shows the padded keys would otherwise take weight.
    model = testing.small_bert_classifier()
    x = testing.small_bert_inputs(batch_size=2, sequence_length=10)
    real = x["padding_mask"][0].astype(bool)
    masked = inspect.attention(model, x)[0]
    assert masked.weights.shape[-1] == real.sum()
    check_rows([masked])
    full = dict(x, padding_mask=np.ones_like(x["padding_mask"]))
    unmasked = inspect.attention(model, full)[0]
    assert unmasked.weights[..., ~real].sum() > 0.01


def test_preprocessed_inputs_name_tokens_by_id_or_tokenizer():
    model = testing.small_bert_classifier()
    x = testing.small_bert_preprocessor(12)(TEXTS)
    by_id = inspect.attention(model, x)
    assert by_id[1].tokens == (
        "2",
        str(testing.VOCABULARY.index("bad")),
        str(testing.VOCABULARY.index("day")),
        "3",
    )
    named = inspect.attention(
        model, x, tokenizer=testing.small_bert_preprocessor().tokenizer
    )
    assert named[1].tokens == ("[CLS]", "bad", "day", "[SEP]")
    np.testing.assert_allclose(named[0].weights, by_id[0].weights)


def test_attention_with_lora_changes_the_weights():
    model = classifier()
    before = inspect.attention(model, TEXTS)[0].weights
    model = peft.apply(model, peft.LoRAConfig(rank=2))
    for variable in model.trainable_weights:
        if "lora_b" in variable.path:
            variable.assign(np.full(variable.shape, 0.5, variable.dtype))
    after = inspect.attention(model, TEXTS)
    check_rows(after)
    assert after[0].weights.shape == before.shape
    assert not np.allclose(after[0].weights, before)


def test_attention_with_prefix_reports_the_prefix_keys():
    model = peft.apply(classifier(), peft.PrefixConfig(length=3, hidden=8))
    found = inspect.attention(model, TEXTS)
    assert found[0].weights.shape == (2, 4, 7, 7)
    assert found[0].prefix.shape == (2, 4, 7, 3)
    assert found[0].prefix.sum() > 0
    check_rows(found)


def test_attention_with_prompts_labels_the_prompt_positions():
    model = peft.apply(classifier(), peft.PromptConfig(length=2))
    found = inspect.attention(model, TEXTS)
    assert found[1].tokens == (
        "[CLS]",
        "<prompt 0>",
        "<prompt 1>",
        "bad",
        "day",
        "[SEP]",
    )
    assert found[1].weights.shape == (2, 4, 6, 6)
    check_rows(found)


def test_attention_errors():
    model = classifier()
    with pytest.raises(ValueError, match="preprocessor"):
        inspect.attention(testing.small_bert_classifier(), TEXTS)
    with pytest.raises(ValueError, match="non-empty list of strings"):
        inspect.attention(model, [])
    with pytest.raises(ValueError, match="padding_mask"):
        inspect.attention(model, {"token_ids": np.zeros((1, 4), "int32")})
    with pytest.raises(ValueError, match="token_embedding"):
        inspect.attention(keras.Sequential([keras.layers.Dense(2)]), TEXTS)


def test_plot_attention_writes_pngs(tmp_path):
    found = inspect.attention(classifier(), TEXTS)
    one = inspect.plot_attention(found[0], tmp_path / "mean.png", dpi=50)
    every = found[0].plot(tmp_path / "all.png", layer=0, head="all", dpi=50)
    for path in (one, every):
        assert path.stat().st_size > 1000
    from matplotlib.image import imread

    small, wide = imread(one), imread(every)
    assert small.shape[2] == 4 and wide.shape[1] > 3 * small.shape[1]
    with pytest.raises(ValueError, match="layer=2"):
        inspect.plot_attention(found[0], tmp_path / "x.png", layer=2)
    with pytest.raises(ValueError, match="head=4"):
        inspect.plot_attention(found[0], tmp_path / "x.png", head=4)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("baseline", ["pad", "zeros"])
def test_integrated_gradients_are_complete(baseline):
    # Completeness: the scores sum to f(x) - f(baseline). With 50
    # trapezoid steps the integration error stays under 1% of the
    # difference (plus 1e-3): the documented tolerance.
    found = inspect.attributions(
        classifier(), TEXTS, steps=50, baseline=baseline
    )
    for item in found:
        difference = item.output - item.baseline_output
        assert abs(item.delta) <= 0.01 * abs(difference) + 1e-3
        assert len(item.scores) == len(item.tokens)
    assert [w for w, _ in found[0].words] == [
        "the",
        "movie",
        "was",
        "really",
        "good",
    ]


def test_attributions_explain_the_predicted_or_given_class():
    model = classifier()
    predicted = np.argmax(model.predict(TEXTS, verbose=0), -1)
    found = inspect.attributions(model, TEXTS, steps=4)
    assert [item.target for item in found] == predicted.tolist()
    other = inspect.attributions(model, TEXTS, steps=4, target=[1, 0])
    assert [item.target for item in other] == [1, 0]


def test_gradient_x_input_and_peft_models():
    model = peft.apply(classifier(), peft.PromptConfig(length=2))
    found = inspect.attributions(
        model, TEXTS, method="gradient_x_input", baseline="zeros"
    )
    assert found[1].tokens == ("[CLS]", "bad", "day", "[SEP]")
    assert np.all(np.isfinite(found[1].scores))
    model = peft.apply(classifier(), peft.PrefixConfig(length=2, hidden=8))
    found = inspect.attributions(model, TEXTS, steps=20)
    assert (
        abs(found[0].delta)
        <= 0.01 * abs(found[0].output - found[0].baseline_output) + 1e-3
    )


def test_words_join_word_pieces():
    assert inspect.inputs.words(
        ["[CLS]", "fine", "##tun", "##ing", "rocks", "[SEP]"],
        [9.0, 1.0, 2.0, 3.0, 4.0, 9.0],
        special={"[CLS]", "[SEP]"},
    ) == [("finetuning", 6.0), ("rocks", 4.0)]
    assert inspect.inputs.words(
        ["▁fine", "tun", "▁rocks"], [1.0, 2.0, 4.0]
    ) == [("finetun", 3.0), ("rocks", 4.0)]


def test_html_and_png(tmp_path):
    found = inspect.attributions(classifier(), ["good day"], steps=2)
    html = found[0].to_html(class_name="<positive>")
    assert html.startswith("<p>") and html.count("<span") == 2
    assert "towards &lt;positive&gt;" in html
    path = inspect.plot_attributions(found, tmp_path / "a.png", ["pos"])
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="class_names"):
        inspect.plot_attributions(found, tmp_path / "b.png", ["a", "b"])
    with pytest.raises(ValueError, match="found"):
        inspect.plot_attributions([], tmp_path / "b.png")


def test_attribution_errors():
    model = classifier()
    for kwargs, match in [
        ({"method": "saliency"}, "method"),
        ({"steps": 0}, "steps"),
        ({"baseline": "mask"}, "baseline"),
        ({"target": [0]}, "target"),
        ({"target": -1}, "target"),
    ]:
        with pytest.raises(ValueError, match=match):
            inspect.attributions(model, TEXTS, **kwargs)
